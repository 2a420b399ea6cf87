"""The OAuth 2.0 device authorization grant (RFC 8628) and how it talks to the user.

`DeviceFlow.run(ui)` asks the provider for a code, tells the user through a `DeviceFlowUI`,
optionally opens a browser, then polls the token endpoint until the user approves, denies,
or the code expires. `sleep` and `clock` are injectable, so tests run a five-minute flow
in microseconds. The flow returns a `TokenSet` and stores nothing: `Credentials.login`
stores it under the index's lock.

Polling follows RFC 8628 section 3.5: wait `interval` seconds (5 when absent) before every
request; `slow_down` adds 5 seconds to the interval for good; `authorization_pending`
keeps polling; the code's `expires_in` is a hard deadline.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import httpx

from crane_launch.config import PrivateIndex
from crane_launch.console import PREFIX
from crane_launch.errors import AuthError, UpstreamError

from ._discovery import DEVICE_CODE_GRANT
from ._http import OAuthReply, post_form, printable
from ._tokens import TokenSet, parse_seconds

__all__ = [
    "DEFAULT_INTERVAL",
    "DEVICE_CODE_GRANT",
    "SLOW_DOWN_STEP",
    "DeviceAuthorization",
    "DeviceFlow",
    "DeviceFlowUI",
    "TerminalUI",
    "browser_available",
    "format_remaining",
    "oauth_error_hint",
]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
SLOW_DOWN_STEP = 5.0
# RFC 8628 requires expires_in; for a provider that omits it, its own expired_token ends
# the wait sooner or later anyway.
DEFAULT_CODE_LIFETIME = 600.0


MIN_INTERVAL = 1.0  # a provider that says 0 would otherwise be polled in a tight loop


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


@dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 section 3.2). `device_code` is secret."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> DeviceAuthorization:
        device_code = data.get("device_code")
        user_code = data.get("user_code")
        # "verification_url" is what some providers sent before RFC 8628 was final.
        uri = data.get("verification_uri", data.get("verification_url"))
        complete = data.get("verification_uri_complete")
        if not isinstance(device_code, str) or not device_code:
            raise ValueError("the answer has no device_code")
        if not isinstance(user_code, str) or not user_code:
            raise ValueError("the answer has no user_code")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise ValueError("the answer has no http(s) verification_uri")
        if complete is not None and (
            not isinstance(complete, str) or not complete.startswith(("https://", "http://"))
        ):
            complete = None
        return cls(
            device_code=device_code,
            user_code=user_code,
            verification_uri=uri,
            verification_uri_complete=complete,
            expires_in=_or(
                parse_seconds(data.get("expires_in"), "expires_in"), DEFAULT_CODE_LIFETIME
            ),
            interval=max(
                MIN_INTERVAL, _or(parse_seconds(data.get("interval"), "interval"), DEFAULT_INTERVAL)
            ),
        )


class DeviceFlowUI(Protocol):
    """What the device flow tells the user. Implementations must never block for long."""

    def prompt(
        self,
        index_url: str,
        verification_uri: str,
        user_code: str,
        verification_uri_complete: str | None,
        expires_in: float,
    ) -> None:
        """The user must now visit `verification_uri` and enter `user_code`."""

    def waiting(self, remaining_seconds: float) -> None:
        """Called about once a second while waiting; `remaining_seconds` until the code expires."""

    def finished(self, ok: bool) -> None:
        """The flow ended (also on error or interrupt); `ok` when tokens were obtained."""


def format_remaining(seconds: float) -> str:
    """`4:59`, or `1:02:03` past an hour."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TerminalUI:
    """Prints the prompt to `stream`; with `live`, also a countdown rewritten in place.

    The prompt lines are a contract (tests and people parse them)::

        crane: to log in to <index_url>, open <verification_uri> and enter the code <user_code>
        crane: or open <verification_uri_complete>

    the second only when the provider sent that URI. `live` defaults to `stream.isatty()`.
    Every line starts with `console.PREFIX`, like every other line crane prints; the UI
    writes them itself because the countdown rewrites its line in place.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty()) if callable(isatty) else False
        self.live = live
        self._shown = 0  # width of the countdown currently on screen

    def prompt(
        self,
        index_url: str,
        verification_uri: str,
        user_code: str,
        verification_uri_complete: str | None,
        expires_in: float,
    ) -> None:
        lines = [
            f"{PREFIX}to log in to {printable(index_url)}, open {printable(verification_uri)} "
            f"and enter the code {printable(user_code)}"
        ]
        if verification_uri_complete:
            lines.append(f"{PREFIX}or open {printable(verification_uri_complete)}")
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()

    def waiting(self, remaining_seconds: float) -> None:
        if not self.live:
            return
        text = f"{PREFIX}waiting for the login, {format_remaining(remaining_seconds)} left"
        self.stream.write("\r" + text.ljust(self._shown))
        self.stream.flush()
        self._shown = len(text)

    def finished(self, ok: bool) -> None:
        if self.live and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0


def browser_available(environ: Mapping[str, str], platform: str) -> bool:
    """Whether opening a browser can show the user anything.

    Linux and the BSDs need an X11 or Wayland display. macOS and Windows always have one,
    except (macOS) over SSH, where the browser would open on a screen nobody is watching.
    """
    if platform.startswith("win"):
        return True
    if platform == "darwin":
        return not environ.get("SSH_CONNECTION")
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def oauth_error_hint(index: PrivateIndex, error: str | None) -> str:
    """What to change, for the OAuth errors a registration can cause: "" for others.

    `invalid_scope` names the scopes that were asked for (the default, `openid
    offline_access`, suits OpenID Connect providers only); `invalid_client` and
    `unauthorized_client` name the client and where its secret comes from.
    """
    if error == "invalid_scope":
        asked = " ".join(index.scopes) or "(none)"
        if index.from_environment:
            return f"; crane asked for the scopes {asked!r}: set CRANE_SCOPE to ones it offers"
        return (
            f"; crane asked for the scopes {asked!r}: register the index again with the "
            f"scopes this provider offers, e.g. `crane index register {index.url} --scope S`"
        )
    if error in ("invalid_client", "unauthorized_client"):
        where = f" and the secret in ${index.client_secret_env}" if index.client_secret_env else ""
        return f"; check the client id {index.client_id!r}{where}"
    return ""


class DeviceFlow:
    """One device login to `index`, using `client` for every request."""

    def __init__(
        self,
        index: PrivateIndex,
        client: httpx.Client,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.time,
        browser: Callable[[str], object] = webbrowser.open,
        environ: Mapping[str, str] | None = None,
        platform: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.index = index
        self.client = client
        self._client_secret = client_secret
        self._sleep = sleep
        self._clock = clock
        self._browser = browser
        self._environ = environ
        self._platform = platform

    def run(self, ui: DeviceFlowUI, *, open_browser: bool = True) -> TokenSet:
        """Authorize, prompt, poll; the tokens on success, `AuthError`/`UpstreamError` else."""
        authorization = self.authorize()
        ok = False
        try:
            ui.prompt(
                self.index.url,
                authorization.verification_uri,
                authorization.user_code,
                authorization.verification_uri_complete,
                authorization.expires_in,
            )
            if open_browser:
                self.open_browser(
                    authorization.verification_uri_complete or authorization.verification_uri
                )
            tokens = self.wait_for_tokens(authorization, ui)
            ok = True
            return tokens
        finally:
            ui.finished(ok)

    def authorize(self) -> DeviceAuthorization:
        """POST the device authorization request (RFC 8628 section 3.1)."""
        index = self.index
        form = {"client_id": index.client_id}
        if index.scopes:
            form["scope"] = " ".join(index.scopes)
        if index.resource:
            form["resource"] = index.resource
        if index.audience:
            form["audience"] = index.audience
        log.debug("%s: asking %s for a device code", index.url, index.device_url)
        reply = post_form(self.client, index.device_url, form, client_secret=self._client_secret)
        if not reply.ok:
            raise AuthError(
                f"{index.url}: the identity provider refused to start a login: "
                f"{reply.describe_error()}{oauth_error_hint(index, reply.error)}"
            )
        try:
            authorization = DeviceAuthorization.from_response(reply.body)
        except ValueError as exc:
            raise UpstreamError(f"{index.device_url}: unusable answer ({exc})") from None
        log.debug(
            "%s: got a device code, valid for %g s, polling every %g s",
            index.url,
            authorization.expires_in,
            authorization.interval,
        )
        return authorization

    def open_browser(self, url: str) -> bool:
        """Try to show `url` in a browser; never raises. True when one was asked to."""
        environ = os.environ if self._environ is None else self._environ
        platform = sys.platform if self._platform is None else self._platform
        if not browser_available(environ, platform):
            return False
        try:
            self._browser(url)
        except Exception as exc:  # a missing or broken browser must not end the login
            log.debug("could not open a browser: %s", type(exc).__name__)
            return False
        log.debug("asked a browser to open the verification page")
        return True

    def wait_for_tokens(self, authorization: DeviceAuthorization, ui: DeviceFlowUI) -> TokenSet:
        """Poll the token endpoint until the login ends (RFC 8628 section 3.4-3.5)."""
        url = self.index.url
        expired = AuthError(
            f"the code expired before the login was completed; run `crane login {url}` again"
        )
        deadline = self._clock() + authorization.expires_in
        interval = authorization.interval
        form = {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": authorization.device_code,
            "client_id": self.index.client_id,
        }
        while True:
            self._wait(min(interval, deadline - self._clock()), deadline, ui)
            if self._clock() >= deadline:
                log.debug("%s: the device code expired while waiting", url)
                raise expired
            reply = post_form(
                self.client, self.index.token_url, form, client_secret=self._client_secret
            )
            if reply.ok:
                log.debug("%s: the login was approved", url)
                return self._tokens_from(reply)
            if reply.error == "authorization_pending":
                continue
            if reply.error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.debug("slow_down: polling every %g s", interval)
                continue
            raise self._poll_failure(reply, expired)

    def _tokens_from(self, reply: OAuthReply) -> TokenSet:
        try:
            return TokenSet.from_response(reply.body, self._clock())
        except ValueError as exc:
            raise UpstreamError(f"{self.index.token_url}: unusable token answer ({exc})") from None

    def _poll_failure(self, reply: OAuthReply, expired: AuthError) -> AuthError:
        """The error that ends the login for a poll answered with an OAuth error other
        than `authorization_pending` and `slow_down`."""
        url = self.index.url
        log.debug("%s: the login ended with %s", url, printable(reply.error or "", 80))
        if reply.error == "access_denied":
            return AuthError(f"{url}: the login was denied")
        if reply.error == "expired_token":
            return expired
        hint = oauth_error_hint(self.index, reply.error)
        return AuthError(f"{url}: the login failed: {reply.describe_error()}{hint}")

    def _wait(self, seconds: float, deadline: float, ui: DeviceFlowUI) -> None:
        """Sleep `seconds` in steps of at most one second, telling `ui` each step."""
        end = self._clock() + seconds
        while True:
            now = self._clock()
            if now >= end:
                return
            ui.waiting(deadline - now)
            self._sleep(min(1.0, end - now))
