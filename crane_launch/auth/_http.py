"""HTTP plumbing shared by discovery, the device flow, refresh and revocation.

Every OAuth form request (device authorization, token, refresh) goes through `post_form`,
so the translation of its failures into `UpstreamError` lives in one place; discovery
describes its own transport failures with `describe_transport_error`. Messages name the
URL and the failure, never a request or response body: a body may carry a token.
"""

from __future__ import annotations

import base64
import logging
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx

from crane_launch import __version__
from crane_launch.errors import UpstreamError

__all__ = [
    "DEFAULT_TIMEOUT",
    "OAuthReply",
    "basic_credentials",
    "describe_transport_error",
    "make_client",
    "post_form",
    "printable",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


def make_client(
    *, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The client crane uses to talk to identity providers.

    `trust_env=True` so that the user's own proxy and CA settings apply; redirects are not
    followed by default (token requests must never be re-sent elsewhere).
    """
    return httpx.Client(
        trust_env=True,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        headers={"User-Agent": f"crane/{__version__}", "Accept": "application/json"},
        transport=transport,
    )


def printable(text: str, limit: int = 300) -> str:
    """`text` without control characters, on one line, at most `limit` characters.

    Provider-supplied strings (error descriptions, user codes) reach the user's terminal.
    """
    cleaned = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def describe_transport_error(exc: httpx.HTTPError) -> str:
    """One printable line for a transport failure: "timed out", or httpx's own words."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = printable(str(exc), 200)
    return text or type(exc).__name__


@dataclass(frozen=True)
class OAuthReply:
    """A parsed JSON answer from an OAuth endpoint: a success (2xx) or an OAuth error (4xx)."""

    status: int
    body: Mapping[str, Any] = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str | None:
        if self.ok:
            return None
        error = self.body.get("error")
        return error if isinstance(error, str) else "invalid_response"

    def describe_error(self) -> str:
        """`error` and `error_description`, cleaned for a terminal. Descriptions are safe."""
        code = printable(self.error or "unknown_error", 80)
        description = self.body.get("error_description")
        if isinstance(description, str) and description.strip():
            return f"{code} ({printable(description)})"
        return code


def basic_credentials(user: str, password: str, *, form_encoded: bool = False) -> str:
    """The value of an `Authorization: Basic` header for `user` and `password`.

    `form_encoded` applies RFC 6749 section 2.3.1 (OAuth client authentication): the
    client id and secret are form-urlencoded before they are joined, so a secret with a
    colon or a non-ASCII character reaches the provider as it was typed.
    """
    if form_encoded:
        user, password = quote_plus(user), quote_plus(password)
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def post_form(
    client: httpx.Client,
    url: str,
    form: Mapping[str, str],
    *,
    client_secret: str | None = None,
) -> OAuthReply:
    """POST `form` to an OAuth endpoint and return its JSON answer.

    With `client_secret`, the client authenticates with HTTP Basic (`client_secret_basic`,
    RFC 6749 section 2.3.1) as `form["client_id"]`; the id stays in the form as well, which
    providers accept when the two agree.
    Raises `UpstreamError` for transport failures, redirects (never followed: the form may
    carry a refresh token), 5xx, and answers that are not an OAuth JSON object.
    """
    headers = {}
    if client_secret is not None:
        headers["Authorization"] = basic_credentials(
            form.get("client_id", ""), client_secret, form_encoded=True
        )
    try:
        response = client.post(url, data=dict(form), headers=headers, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{url}: {describe_transport_error(exc)}") from None
    status = response.status_code
    if 300 <= status < 400:
        raise UpstreamError(
            f"{url} answered HTTP {status} (a redirect); crane does not follow redirects "
            "for token requests: register the endpoint's final URL"
        )
    if status >= 500:
        raise UpstreamError(f"{url} answered HTTP {status}")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if 200 <= status < 300:
            return OAuthReply(status, body)
        if 400 <= status < 500 and isinstance(body.get("error"), str):
            return OAuthReply(status, body)
    log.debug("%s answered HTTP %s with %s", url, status, response.headers.get("content-type"))
    raise UpstreamError(f"{url} answered HTTP {status} without a JSON OAuth response")
