"""The proxy's one way out: an httpx client that adds credentials for the private origin only.

- `trust_env=True`: the user's own proxy and CA settings apply to crane's upstream calls.
- Redirects are followed by hand: within the private origin with credentials; to another
  origin only where the caller allows it (file downloads), and then without credentials.
  The `Authorization` header is built per hop, so it can never leak across origins.
- On a 401 from the private origin the token is refreshed once and the request retried.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin
from urllib.request import getproxies

import httpx

from crane_launch.config import origin_of
from crane_launch.proxy.server import Reply
from crane_launch.proxy.wire import LeanPool, LeanStream, SocketBody

__all__ = [
    "CONTENT_HEADERS",
    "TokenSource",
    "Upstream",
    "UpstreamResponse",
    "cookieless",
    "end_to_end",
    "forwarded_headers",
    "streamed_reply",
]

CONTENT_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "content-encoding",
    "etag",
    "last-modified",
    "accept-ranges",
    "cache-control",
)
"""Response headers that describe the body; passed to the child as they came."""

log = logging.getLogger(__name__)

_MAX_REDIRECTS = 5
_TOKEN_REUSE_SECONDS = 5.0


def cookieless() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing. crane's clients must not carry a cookie from one
    answer to another request: a session cookie of the private index would reach the
    public index (cookies ignore ports, and may cover sibling hosts), and a request that
    must go without credentials would not."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class TokenSource(Protocol):
    """What the proxy needs from authentication: whole `Authorization` header values
    (`crane_launch.auth.Authorizer`: a bearer token, HTTP Basic, ...)."""

    def authorization(self) -> str: ...

    def reauthorized(self, stale: str) -> str: ...


@dataclass
class UpstreamResponse:
    """An answer from upstream; its body is read unless it was asked for as a stream."""

    response: httpx.Response
    url: str
    """The URL that finally answered (after same-origin redirects)."""

    async def aclose(self) -> None:
        await self.response.aclose()


class Upstream:
    """Requests for one private origin (that of `private_url`, any URL on it) and for
    whatever else the proxy must ask; `tokens` supplies the private origin's `Authorization`.
    """

    def __init__(
        self,
        private_url: str,
        tokens: TokenSource,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._private_origin = origin_of(private_url)
        self._tokens = tokens
        # The lean client where the user's proxy settings do not apply (they are httpx's
        # to honour); a client given by the caller (tests) is used for everything.
        self._lean = LeanPool() if client is None else None
        self._lean_prefixes = _unproxied_prefixes(getproxies()) if client is None else ()
        self._given_client = client
        self._made_client: httpx.AsyncClient | None = None
        self._closed = False
        self._token: str | None = None
        self._token_at = 0.0
        self._token_lock = asyncio.Lock()

    async def aclose(self) -> None:
        self._closed = True
        if self._lean is not None:
            await self._lean.aclose()
        client = self._given_client or self._made_client
        if client is not None:
            await client.aclose()

    @property
    def _client(self) -> httpx.AsyncClient:
        """httpx, made on first use: loading its CA bundle costs 15 ms of every run, and
        a run whose requests all go the lean way never needs it."""
        if self._given_client is not None:
            return self._given_client
        if self._made_client is None:
            self._made_client = httpx.AsyncClient(
                trust_env=True,
                cookies=cookieless(),
                follow_redirects=False,
                timeout=httpx.Timeout(30.0, connect=10.0),
                limits=httpx.Limits(max_connections=128, max_keepalive_connections=64),
            )
        return self._made_client

    def is_private(self, url: str) -> bool:
        """Whether `url` is on the private origin, the only one that gets credentials."""
        return origin_of(url) == self._private_origin

    async def _current_token(self) -> str:
        # Asking the token source means a hop to a worker thread (it may block on the
        # lock or the provider); within a few seconds the answer is the same, and a token
        # that went stale meanwhile costs one 401 and one refresh.
        async with self._token_lock:
            now = time.monotonic()
            if self._token is None or now - self._token_at > _TOKEN_REUSE_SECONDS:
                self._token = await asyncio.to_thread(self._tokens.authorization)
                self._token_at = now
            return self._token

    async def _refresh(self, stale: str) -> str:
        async with self._token_lock:
            if self._token is not None and self._token != stale:
                return self._token
            self._token = await asyncio.to_thread(self._tokens.reauthorized, stale)
            self._token_at = time.monotonic()
            return self._token

    async def get(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        stream: bool = False,
        follow_foreign: bool = False,
        within: str | None = None,
        anonymous: bool = False,
    ) -> UpstreamResponse:
        """Send `method url`; credentials for the private origin, one refresh on 401.

        A redirect to another origin is returned as it is unless `follow_foreign`; with
        `within`, so is a same-origin redirect that leaves that URL prefix (an index page
        that redirects to a login page is an error, not an empty project).
        `anonymous` sends no credentials at all (what does the index show to anybody?).
        Raises httpx.HTTPError on transport failures: the caller decides what that means.
        """
        base_headers = dict(headers or {})
        refreshed = False
        hops = 0
        while True:
            private = self.is_private(url) and not anonymous
            token = await self._current_token() if private else None
            response = await self._send(method, url, base_headers, token)
            if response.status_code == 401 and token is not None and not refreshed:
                await response.aclose()
                log.debug("%s answered 401: asking for new credentials once", url.partition("?")[0])
                await self._refresh(token)
                refreshed = True
                continue
            target = None
            if hops < _MAX_REDIRECTS:
                target = self._redirect_to_follow(url, response, within, follow_foreign)
            if target is not None:
                await response.aclose()
                url = target
                hops += 1
                continue
            if not stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            return UpstreamResponse(response, url)

    async def _send(
        self, method: str, url: str, headers: dict[str, str], token: str | None
    ) -> httpx.Response:
        # The Authorization header is built per hop, so it never leaves the private origin.
        if self._closed:
            raise httpx.ConnectError("crane's connection to the index is closed")
        send_headers = dict(headers)
        if token is not None:
            send_headers["Authorization"] = token
        # Non-ASCII URLs (an IDN host, a redirect to an unencoded path) stay with httpx,
        # which encodes them as it always has.
        if self._lean is not None and url.startswith(self._lean_prefixes) and url.isascii():
            present = {name.lower() for name in send_headers}
            for name, value in _LEAN_DEFAULTS:
                if name.lower() not in present:
                    send_headers[name] = value
            return await self._lean.request(method, url, list(send_headers.items()))
        request = self._client.build_request(method, url, headers=send_headers)
        return await self._client.send(request, stream=True)

    def _redirect_to_follow(
        self, url: str, response: httpx.Response, within: str | None, follow_foreign: bool
    ) -> str | None:
        """Where to follow `response`'s redirect; None hands the response to the caller."""
        location: str | None = response.headers.get("location")
        if not response.is_redirect or not location:
            return None
        target = urljoin(url, location)
        inside = within is None or target.startswith(within)
        if (self.is_private(target) and inside) or (
            follow_foreign and target.startswith(("https://", "http://"))
        ):
            return target
        return None


_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


_LEAN_DEFAULTS = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),
    ("User-Agent", f"python-httpx/{httpx.__version__}"),
)
"""What httpx would have sent by default."""


def _unproxied_prefixes(proxies: Mapping[str, str]) -> tuple[str, ...]:
    """The URL schemes (as prefixes) no proxy covers. `proxies` is what
    `urllib.request.getproxies()` says, which is what httpx (`trust_env`) asks: the
    `*_PROXY` variables in either case, and the system settings on macOS and Windows.
    Where a proxy is set for a scheme (or `all`), its requests stay with httpx, which
    honours it and `NO_PROXY`."""
    return tuple(
        f"{scheme}://"
        for scheme in ("http", "https")
        if not proxies.get(scheme) and not proxies.get("all")
    )


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` without the hop-by-hop ones (RFC 9110 7.6.1), names in lower case."""
    return [(k.lower(), v) for k, v in headers if k.lower() not in _HOP_BY_HOP]


def streamed_reply(
    response: httpx.Response, names: tuple[str, ...] | None = CONTENT_HEADERS
) -> Reply:
    """The upstream response as a reply streamed to the child: its raw bytes (never
    decoded, never held whole) and the named headers (None: every end-to-end header);
    the upstream stream is closed once the body has been sent or abandoned."""
    return Reply(
        response.status_code,
        forwarded_headers(response, names),
        RawBody(response),
        close=response.aclose,
    )


def forwarded_headers(
    response: httpx.Response, names: tuple[str, ...] | None = CONTENT_HEADERS
) -> list[tuple[str, str]]:
    """The named headers of `response` (None: every end-to-end one), as the child gets
    them. A `Content-Length` that came with a `Transfer-Encoding` is dropped: the body
    was framed by the coding (RFC 9112 6.3), and a length passed on would frame the
    child's copy by a number the index chose, so that a download the door holds back
    the end of (to verify it) could already look complete."""
    if names is None:
        headers = end_to_end(response.headers.multi_items())
    else:
        headers = [(n, value) for n in names if (value := response.headers.get(n)) is not None]
    if "transfer-encoding" in response.headers:
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    return headers


class RawBody:
    """A response's raw bytes as a reply body; from the lean client, a large plain-HTTP
    body can instead be handed to the server as its socket (`take_socket`)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._response.aiter_raw()

    def take_socket(self, min_bytes: int) -> SocketBody | None:
        stream = self._response.stream
        if isinstance(stream, LeanStream) and not self._response.is_stream_consumed:
            return stream.take_socket(min_bytes)
        return None
