"""`Credentials`: a valid access token for one index, whatever it takes.

The proxy calls `access_token()` per upstream request and `refreshed_token(stale)` after a
401; the CLI calls `ensure`, `login`, `logout` and `status`. All methods block (file lock,
HTTP): call them from a worker thread in async code.

Refresh is the delicate part. Providers differ: some rotate the refresh token on every
use, and some (oidc-provider) revoke the whole grant when a used refresh token is
presented again. So every refresh runs under the index's cross-process lock, re-reads the
store after taking it (another process may have refreshed meanwhile, and its refresh
token is now the only valid one), and persists the newest refresh token before the lock
is released. Within one process a thread lock queues threads in front of the file lock,
and a fresh access token is served from memory without touching the disk.

One failure cannot be avoided: if the provider rotates the refresh token and the answer
is lost (a timeout after the provider committed), the new refresh token is lost with it
and the next refresh gets `invalid_grant`, i.e. `LoginRequiredError`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

import httpx

from crane_launch.config import PrivateIndex, normalise_url
from crane_launch.errors import AuthError, CorruptFileError, LoginRequiredError, UpstreamError

from ._device import DeviceFlow, DeviceFlowUI, TerminalUI, oauth_error_hint
from ._http import basic_credentials, make_client, post_form
from ._policy import LoginPolicy
from ._store import TokenStore
from ._tokens import TokenSet

__all__ = ["DEFAULT_SKEW", "Credentials", "LogoutResult", "TokenStatus"]

log = logging.getLogger(__name__)

DEFAULT_SKEW = 30.0
EXPIRED = "the login has expired"


@dataclass(frozen=True)
class TokenStatus:
    """What `crane status` shows for one index. Holds no token."""

    index_url: str
    logged_in: bool  # a usable access token, or a refresh token that may still work
    access_expires_at: float | None
    refresh_expires_at: float | None  # None: never, or unknown (see refresh_never_expires)
    refresh_never_expires: bool
    has_refresh_token: bool
    scope: str | None


class LogoutResult(NamedTuple):
    """What `Credentials.logout` did; its first two fields unpack as `(removed, revoked)`."""

    removed: bool
    """A local token file was removed."""
    revoked: bool
    """The provider confirmed every revocation (False: none attempted, or one failed)."""
    refresh_revoked: bool | None = None
    """The refresh token's revocation: confirmed, refused, or None (none attempted)."""
    access_revoked: bool | None = None
    """The access token's revocation: confirmed, refused, or None (none attempted)."""
    access_expires_at: float | None = None
    """When the access token stops working by itself (what a failed revocation leaves)."""
    access_self_contained: bool = False
    """The access token is a JWT: a provider that accepts its revocation may still not be
    able to revoke it (oidc-provider answers 200 and ignores it), so it stays valid until
    it expires whatever the answer."""


class Credentials:
    """Tokens for `index`, kept in `store`.

    `http` is used for every request to the identity provider; when None, one is made
    (`trust_env=True`, 30 s timeouts) and closed by `close()`. `clock` is epoch seconds;
    `skew` is the margin an access token must still be valid for. `sleep` and `browser`
    are handed to the device flow.
    """

    def __init__(
        self,
        index: PrivateIndex,
        store: TokenStore,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        skew: float = DEFAULT_SKEW,
        sleep: Callable[[float], object] = time.sleep,
        browser: Callable[[str], object] = webbrowser.open,
        client_secret: str | None = None,
    ) -> None:
        self.index = index
        self._client_secret = client_secret
        self.url = normalise_url(index.url)
        self.store = store
        self._http = http
        self._own_http = http is None
        self._clock = clock
        self._skew = skew
        self._sleep = sleep
        self._browser = browser
        self._lock = threading.Lock()  # held around every refresh and store write
        self._login_lock = threading.Lock()  # one device flow at a time per process
        self._http_lock = threading.Lock()
        self._cached: TokenSet | None = None

    def __repr__(self) -> str:
        return f"Credentials({self.url!r})"

    @property
    def http(self) -> httpx.Client:
        with self._http_lock:  # made lazily: `status()` needs no client
            if self._http is None:
                self._http = make_client()
            return self._http

    def close(self) -> None:
        with self._http_lock:
            if self._own_http and self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> Credentials:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- tokens ---------------------------------------------------------------------------

    def access_token(self) -> str:
        """An access token valid for at least `skew` more seconds, refreshed if need be.

        Exception: with no way to refresh, a token that has not yet expired is returned
        rather than demanding a login early. A fresh token is served from memory, so a
        logout by another process takes effect here once that token nears its expiry or
        the index refuses it (`refreshed_token` re-reads the store).

        Raises `LoginRequiredError` when there is no login or it cannot be refreshed,
        `UpstreamError` when the provider is unreachable, `AuthError` when it refuses the
        refresh for another reason.
        """
        cached = self._cached
        if cached is not None and cached.is_fresh(self._clock(), self._skew):
            return cached.access_token
        with self._lock:
            tokens = self.store.load(self.url)
            if tokens is None:
                raise LoginRequiredError(self.url)
            now = self._clock()
            if tokens.is_fresh(now, self._skew):
                self._cached = tokens
                return tokens.access_token
            if not tokens.can_refresh(now) and not tokens.is_expired(now):
                return tokens.access_token
            return self._refresh_locked(stale=None)

    def refreshed_token(self, stale: str) -> str:
        """A token other than `stale`, which the index has just refused (HTTP 401).

        If another thread or process already replaced `stale`, that token is returned;
        otherwise the login is refreshed even though the clock says `stale` is still valid.
        """
        log.debug("%s: the index refused the access token", self.url)
        with self._lock:
            self._cached = None
            return self._refresh_locked(stale=stale)

    def _refresh_locked(self, *, stale: str | None) -> str:
        """Refresh under the file lock. The caller holds the thread lock."""
        with self.store.lock(self.url):
            # Re-read: the tokens read before the lock may already have been replaced, and
            # presenting a used refresh token can revoke the whole login.
            current = self.store.load(self.url)
            if current is None:
                raise LoginRequiredError(self.url)
            now = self._clock()
            if current.is_fresh(now, self._skew) and current.access_token != stale:
                log.debug("%s: the token was refreshed meanwhile", self.url)
                self._cached = current
                return current.access_token
            refresh_token = current.refresh_token
            if refresh_token is None or not current.can_refresh(now):
                log.debug("%s: the login cannot be refreshed", self.url)
                raise LoginRequiredError(self.url, EXPIRED)
            with self.store.reserved(self.url) as commit:
                log.debug("%s: refreshing the login at %s", self.url, self.index.token_url)
                tokens = self._refresh_request(current, refresh_token)
                self._cached = tokens
                try:
                    commit(tokens)
                except OSError as exc:
                    # The provider has rotated the refresh token: the new one lives in
                    # memory only. It serves this run; the next one will need a login.
                    log.warning(
                        "%s: the refreshed login could not be saved (%s); it works for "
                        "this run only, and the next run will ask you to log in again",
                        self.store.path_for(self.url),
                        exc.strerror or exc,
                    )
            log.debug("%s: refreshed the login", self.url)
            return tokens.access_token

    def _refresh_request(self, current: TokenSet, refresh_token: str) -> TokenSet:
        index = self.index
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": index.client_id,
        }
        if index.resource:
            form["resource"] = index.resource
        if index.audience:
            form["audience"] = index.audience
        reply = post_form(self.http, index.token_url, form, client_secret=self._client_secret)
        if reply.ok:
            try:
                return TokenSet.from_response(reply.body, self._clock(), previous=current)
            except ValueError as exc:
                raise UpstreamError(f"{index.token_url}: unusable token answer ({exc})") from None
        if reply.error == "invalid_grant":
            raise LoginRequiredError(self.url, f"{EXPIRED}: {reply.describe_error()}")
        hint = oauth_error_hint(index, reply.error)
        raise AuthError(
            f"{self.url}: refreshing the login failed: {reply.describe_error()}{hint}; "
            f"run `crane login {self.url}`"
        )

    # -- login and logout -----------------------------------------------------------------

    def ensure(
        self,
        policy: LoginPolicy,
        ui: DeviceFlowUI | None = None,
        open_browser: bool = True,
    ) -> str:
        """`access_token()`, but a missing or expired login runs the device flow if `policy`
        allows it (REFUSE re-raises `LoginRequiredError` at once). `ui` defaults to a
        `TerminalUI` on stderr, live when `policy` is RUN_LIVE. Threads of one process that
        need a login together share one device flow. A corrupt token file is an error here
        too, never a reason to log in again.
        """
        try:
            return self.access_token()
        except LoginRequiredError:
            if policy is LoginPolicy.REFUSE:
                log.debug("%s: a login is needed, and none may be started here", self.url)
                raise
        log.debug("%s: a login is needed (login policy: %s)", self.url, policy.value)
        with self._login_lock:
            try:  # another thread may have completed a login while this one waited
                return self.access_token()
            except LoginRequiredError:
                pass
            if ui is None:
                ui = TerminalUI(live=policy is LoginPolicy.RUN_LIVE)
            return self.login(ui, open_browser=open_browser).access_token

    def login(self, ui: DeviceFlowUI | None = None, open_browser: bool = True) -> TokenSet:
        """Run the device flow and store its tokens (replacing any). `ui` defaults to a
        `TerminalUI` on stderr. The lock is not held while the user is away, only to store.
        """
        flow = DeviceFlow(
            self.index,
            self.http,
            sleep=self._sleep,
            clock=self._clock,
            browser=self._browser,
            client_secret=self._client_secret,
        )
        tokens = flow.run(ui if ui is not None else TerminalUI(), open_browser=open_browser)
        with self._lock, self.store.lock(self.url):
            self.store.save(self.url, tokens)
            self._cached = tokens
        log.debug("%s: logged in; the login is stored", self.url)
        return tokens

    def logout(self) -> LogoutResult:
        """Forget the login: (removed locally, revoked at the provider).

        The local file is removed first, under the lock; then the refresh and access
        tokens are revoked (RFC 7009) when the index has a `revocation_url`. A revocation
        that fails (network, provider error) is reported as False, never raised. A token
        file that other users could read is still revoked and removed; one that cannot be
        read at all is removed (the user asked to be rid of it) and nothing is revoked.
        """
        with self._lock, self.store.lock(self.url):
            try:
                tokens = self.store.load(self.url, allow_insecure=True)
            except CorruptFileError:
                tokens = None  # logging out is how the user asks to be rid of it
            removed = self.store.delete(self.url)
            self._cached = None
        log.debug("%s: local login %s", self.url, "removed" if removed else "absent")
        if tokens is None:
            return LogoutResult(removed, revoked=False)
        expires = tokens.expires_at
        if not self.index.revocation_url:
            return LogoutResult(removed, revoked=False, access_expires_at=expires)
        url = self.index.revocation_url
        refresh = self._revoke(url, tokens.refresh_token, "refresh_token")
        access = self._revoke(url, tokens.access_token, "access_token")
        revoked = refresh is not False and access is not False
        jwt = _looks_like_jwt(tokens.access_token)
        return LogoutResult(removed, revoked, refresh, access, expires, jwt)

    def _revoke(self, url: str, token: str | None, hint: str) -> bool | None:
        if not token:
            return None
        # `hint` names the kind of token (RFC 7009 token_type_hint); it is logged in words
        # so that the redacting log formatter has nothing that looks like `name=value`.
        kind = hint.replace("_", " ")
        form = {"token": token, "token_type_hint": hint, "client_id": self.index.client_id}
        headers = {}
        if self._client_secret is not None:
            headers["Authorization"] = basic_credentials(
                self.index.client_id, self._client_secret, form_encoded=True
            )
        try:
            response = self.http.post(url, data=form, headers=headers, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.debug("%s: revoking the %s failed: %s", url, kind, type(exc).__name__)
            return False
        if response.status_code != 200:
            log.debug("%s: revoking the %s answered HTTP %s", url, kind, response.status_code)
            return False
        log.debug("%s: revoked the %s", url, kind)
        return True

    def status(self) -> TokenStatus:
        """What is stored, read without any network request. `CorruptFileError` as `load`."""
        tokens = self.store.load(self.url)
        if tokens is None:
            return TokenStatus(
                index_url=self.url,
                logged_in=False,
                access_expires_at=None,
                refresh_expires_at=None,
                refresh_never_expires=False,
                has_refresh_token=False,
                scope=None,
            )
        now = self._clock()
        return TokenStatus(
            index_url=self.url,
            logged_in=not tokens.is_expired(now) or tokens.can_refresh(now),
            access_expires_at=tokens.expires_at,
            refresh_expires_at=tokens.refresh_expires_at,
            refresh_never_expires=tokens.refresh_never_expires,
            has_refresh_token=tokens.refresh_token is not None,
            scope=tokens.scope,
        )


def _looks_like_jwt(token: str) -> bool:
    """Three base64url parts: a self-contained (structured) access token."""
    parts = token.split(".")
    return len(parts) == 3 and all(part and _B64URL.fullmatch(part) for part in parts)


_B64URL = re.compile(r"[A-Za-z0-9_-]+")
