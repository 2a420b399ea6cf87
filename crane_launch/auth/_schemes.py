"""One `Authorizer` per scheme: the `Authorization` header crane sends to one index.

The proxy asks `authorization()` before a request to the private origin and
`reauthorized(stale)` once after a 401; both return a whole header value. The schemes:

- ``device``: the OAuth 2.0 device flow, tokens kept and refreshed by `Credentials`.
- ``client-credentials``: OAuth 2.0 client credentials (RFC 6749 section 4.4). The secret
  is read from its variable when the authorizer is made and kept in memory only; the
  access token too (the grant has no refresh token: a new one is fetched when it expires,
  or once after the index refuses it).
- ``token``: a static bearer token from a variable or a file. A refusal is final.
- ``basic``: HTTP Basic, the password from a variable or from the 0600 store (asked for
  once on a terminal). A refusal is final.

`authorizer_for` makes the one an index needs, proving what can be proven before a tool
runs: a missing variable, a refused client secret, a login nobody can answer are errors
now (exit 4), never a half-started run. No secret ever reaches a message, a log or a repr.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import httpx

from crane_launch.config import PrivateIndex, normalise_url, origin_of, origin_url
from crane_launch.errors import AuthError, CraneError, LoginRequiredError, UpstreamError

from ._credentials import DEFAULT_SKEW, Credentials
from ._device import DeviceFlowUI, oauth_error_hint
from ._discovery import discover
from ._http import basic_credentials, describe_transport_error, make_client, post_form
from ._policy import LoginPolicy
from ._store import TokenStore
from ._tokens import TokenSet

__all__ = [
    "CI_SCHEMES_HINT",
    "Authorizer",
    "BasicAuthorizer",
    "BearerAuthorizer",
    "ClientCredentials",
    "StaticToken",
    "TokenProvider",
    "ask_password",
    "authorizer_for",
    "check_basic_password",
    "client_secret_for",
    "describe_scheme",
    "read_secret",
]

log = logging.getLogger(__name__)

CLIENT_CREDENTIALS_GRANT = "client_credentials"

CI_SCHEMES_HINT = (
    "the device flow needs a person at a terminal; in CI, register the index with "
    "--auth client-credentials, --auth token or --auth basic "
    "(secrets from variables), or describe it for the run with CRANE_INDEX_URL and "
    "CRANE_AUTH=client-credentials (CRANE_CLIENT_ID, CRANE_CLIENT_SECRET, CRANE_TOKEN_URL), "
    "CRANE_AUTH=token (CRANE_TOKEN) or CRANE_AUTH=basic (CRANE_USERNAME, CRANE_PASSWORD)"
)
"""What works where nobody can log in, for the error that says the device flow cannot."""

STORED = "crane's store"

# RFC 6750 section 2.1: the characters of a bearer token (b64token).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class Authorizer(Protocol):
    """What the proxy needs from authentication: whole `Authorization` header values."""

    def authorization(self) -> str: ...

    def reauthorized(self, stale: str) -> str:
        """A value other than `stale`, which the index has just refused (HTTP 401), or
        `AuthError` when there is none to try."""
        ...


class TokenProvider(Protocol):
    """Bearer tokens: `Credentials` and `ClientCredentials` both fit."""

    def access_token(self) -> str: ...

    def refreshed_token(self, stale: str) -> str: ...


class BearerAuthorizer:
    """`Authorization: Bearer` from a `TokenProvider`."""

    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens

    def __repr__(self) -> str:
        return f"BearerAuthorizer({self.tokens!r})"

    def authorization(self) -> str:
        return "Bearer " + self.tokens.access_token()

    def reauthorized(self, stale: str) -> str:
        return "Bearer " + self.tokens.refreshed_token(stale.removeprefix("Bearer "))


class StaticToken:
    """A bearer token that cannot be renewed: the index refusing it ends the run."""

    def __init__(self, index_url: str, token: str, source: str) -> None:
        self.index_url = index_url
        self._value = "Bearer " + token
        self._source = source

    def __repr__(self) -> str:
        return f"StaticToken({self.index_url!r}, <redacted>, {self._source!r})"

    def authorization(self) -> str:
        return self._value

    def reauthorized(self, stale: str) -> str:
        raise AuthError(
            f"{self.index_url} refused the token from {self._source}: it is wrong, expired "
            "or lacks the index's scope; set a valid one"
        )


class BasicAuthorizer:
    """HTTP Basic: a refusal is final (a wrong password does not become right)."""

    def __init__(self, index_url: str, username: str, password: str, source: str) -> None:
        self.index_url = index_url
        self.username = username
        self._value = basic_credentials(username, password)
        self._source = source

    def __repr__(self) -> str:
        return f"BasicAuthorizer({self.index_url!r}, {self.username!r}, <redacted>)"

    def authorization(self) -> str:
        return self._value

    def reauthorized(self, stale: str) -> str:
        fix = "check both"
        if self._source == STORED:
            fix = f"run `crane login {self.index_url}` to type the password again"
        raise AuthError(
            f"{self.index_url} refused the username {self.username!r} with the password "
            f"from {self._source}; {fix}"
        )


class ClientCredentials:
    """Access tokens from the client credentials grant, kept in memory for one run.

    Thread-safe; the proxy calls it from worker threads. `http` is used for every token
    request (made and owned here when None).
    """

    def __init__(
        self,
        index: PrivateIndex,
        secret: str,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        skew: float = DEFAULT_SKEW,
    ) -> None:
        self.index = index
        self.url = normalise_url(index.url)
        self._secret = secret
        self._http = http
        self._clock = clock
        self._skew = skew
        self._lock = threading.Lock()
        self._tokens: TokenSet | None = None
        self._token_url = index.token_url

    def __repr__(self) -> str:
        return f"ClientCredentials({self.url!r}, client_id={self.index.client_id!r})"

    def access_token(self) -> str:
        with self._lock:
            tokens = self._tokens
            if tokens is not None and tokens.is_fresh(self._clock(), self._skew):
                return tokens.access_token
            return self._fetch().access_token

    def refreshed_token(self, stale: str) -> str:
        with self._lock:
            tokens = self._tokens
            if tokens is not None and tokens.access_token != stale:
                return tokens.access_token
            log.debug("%s: the index refused the token; asking for a new one", self.url)
            return self._fetch().access_token

    def _endpoint(self, http: httpx.Client) -> str:
        if not self._token_url:
            if not self.index.issuer:
                raise CraneError(f"{self.url}: no token endpoint and no issuer to discover it")
            self._token_url = discover(self.index.issuer, http, need_device=False).token_url
        return self._token_url

    def _fetch(self) -> TokenSet:
        index = self.index
        if self._http is None:
            self._http = make_client()
        token_url = self._endpoint(self._http)
        form = {"grant_type": CLIENT_CREDENTIALS_GRANT, "client_id": index.client_id}
        if index.scopes:
            form["scope"] = " ".join(index.scopes)
        if index.resource:
            form["resource"] = index.resource
        if index.audience:
            form["audience"] = index.audience
        log.debug("%s: asking %s for a token (client credentials)", self.url, token_url)
        reply = post_form(self._http, token_url, form, client_secret=self._secret)
        if not reply.ok:
            raise AuthError(
                f"{self.url}: the identity provider refused crane's client credentials: "
                f"{reply.describe_error()}{oauth_error_hint(index, reply.error)}"
            )
        try:
            tokens = TokenSet.from_response(reply.body, self._clock())
        except ValueError as exc:
            raise UpstreamError(f"{token_url}: unusable token answer ({exc})") from None
        self._tokens = tokens
        return tokens


def read_secret(environ: Mapping[str, str], name: str, what: str, index_url: str) -> str:
    """The value of the variable `name`, which holds `what` for `index_url`.

    Surrounding whitespace is dropped (a secret pasted with its newline). Raises
    `AuthError` (exit 4) naming the variable, never its value.
    """
    value = environ.get(name, "").strip()
    if not value:
        raise AuthError(
            f"{index_url}: the {what} is read from ${name}, which is not set; set it "
            "(in CI, as a masked secret variable)"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise AuthError(f"{index_url}: ${name} holds a control character; set it again")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a byte that is not UTF-8, kept by Python as a surrogate
        raise AuthError(f"{index_url}: ${name} is not UTF-8 text; set it again") from None
    return value


_TOKEN_FILE_LIMIT = 64 * 1024


def _read_token_file(path_text: str, index_url: str) -> str:
    """The token in the regular file at `path_text`: opened without blocking (a FIFO
    would hang the run), at most 64 KiB read (a device or a huge file is not a token)."""
    path = Path(path_text).expanduser()

    def refuse(problem: str) -> AuthError:
        return AuthError(f"{index_url}: the token file {path} {problem}")

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        raise refuse("is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(_TOKEN_FILE_LIMIT + 1)
    if len(raw) > _TOKEN_FILE_LIMIT:
        raise refuse(f"is larger than {_TOKEN_FILE_LIMIT // 1024} KiB: it holds no token")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise refuse("is not UTF-8 text") from None
    if not value:
        raise refuse("is empty")
    return value


def _bearer_token(value: str, source: str, index_url: str) -> str:
    if not _BEARER_TOKEN.fullmatch(value):
        hint = " (without the word Bearer)" if value.lower().startswith("bearer ") else ""
        raise AuthError(
            f"{index_url}: {source} does not hold a bearer token{hint}: a token is one word "
            "of letters, digits and -._~+/ (RFC 6750)"
        )
    return value


def client_secret_for(index: PrivateIndex, environ: Mapping[str, str]) -> str | None:
    """The client secret of `index` (from its variable); None for a public client."""
    if not index.client_secret_env:
        return None
    return read_secret(environ, index.client_secret_env, "client secret", index.url)


def describe_scheme(index: PrivateIndex) -> str:
    """The scheme and where its secret comes from, for `crane status` (no secret)."""
    if index.auth == "client-credentials":
        return (
            f"client credentials: client {index.client_id}, secret from ${index.client_secret_env}"
        )
    if index.auth == "token":
        source = f"${index.token_env}" if index.token_env else f"file {index.token_file}"
        return f"static token from {source}"
    if index.auth == "basic":
        source = f"${index.password_env}" if index.password_env else "crane's store"
        return f"HTTP Basic: user {index.username}, password from {source}"
    confidential = ", confidential client" if index.client_secret_env else ""
    return f"OAuth device flow{confidential}"


def _basic_password(
    index: PrivateIndex,
    environ: Mapping[str, str],
    store: TokenStore,
    policy: LoginPolicy,
    *,
    ask: Callable[[str], str],
    terminal: bool,
) -> tuple[str, str]:
    """The Basic password of `index` and where it came from."""
    if index.password_env:
        source = f"${index.password_env}"
        return read_secret(environ, index.password_env, "password", index.url), source
    stored = store.load_password(index.url)
    if stored is not None:
        return stored, STORED
    if policy is LoginPolicy.REFUSE or not terminal:
        raise AuthError(
            f"{index.url}: no password is stored and nobody can type one here; run "
            f"`crane login {index.url}` on a terminal, or register the index with "
            "--password-env VAR (in CI: CRANE_INDEX_URL, CRANE_AUTH=basic, CRANE_USERNAME, "
            "CRANE_PASSWORD)"
        )
    password = ask_password(index, store, ask, keep=False)
    check_basic_password(index, password, store)  # stored only once the index takes it
    return password, STORED


def ask_password(
    index: PrivateIndex, store: TokenStore, ask: Callable[[str], str], *, keep: bool = True
) -> str:
    """Ask for the Basic password of `index` on the terminal; `keep` stores it."""
    try:
        password = ask(f"crane: password for {index.username} at {index.url}: ")
    except (EOFError, getpass.GetPassWarning):
        raise AuthError(f"{index.url}: no password was typed") from None
    if not password:
        raise AuthError(f"{index.url}: no password was typed")
    if keep:
        store.save_password(index.url, password)
    return password


def check_basic_password(index: PrivateIndex, password: str, store: TokenStore) -> None:
    """Ask the index whether it takes `password` (a GET of its root, or of its probe
    path) and keep it in the store only when it is accepted (a 2xx answer). A refusal is
    `AuthError`; anything else (a redirect to a login page, a server error) proves
    nothing and is `UpstreamError`; either way nothing is stored."""
    authorization = basic_credentials(index.username or "", password)
    target = index.url
    if index.probe_path:
        target = origin_url(origin_of(index.url)) + "/" + index.probe_path.lstrip("/")
    try:
        with make_client() as client:
            response = client.get(target, headers={"Authorization": authorization})
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{index.url}: {describe_transport_error(exc)}") from None
    status = response.status_code
    if status in (401, 403):
        raise AuthError(
            f"{index.url} refused the username {index.username!r} with that password "
            f"(HTTP {status}); nothing was stored"
        )
    if not 200 <= status < 300:
        raise UpstreamError(
            f"{index.url} answered HTTP {status} to the password check, which proves "
            "nothing; nothing was stored"
        )
    store.save_password(index.url, password)


def authorizer_for(
    index: PrivateIndex,
    environ: Mapping[str, str],
    *,
    store: TokenStore,
    policy: LoginPolicy,
    ui: DeviceFlowUI | None = None,
    ask: Callable[[str], str] = getpass.getpass,
    terminal: bool | None = None,
) -> Authorizer:
    """The authorizer `index` needs, ready now.

    device: a login when needed and `policy` allows it; in CI the error names what works
    there. client-credentials: the first token is fetched now, so a wrong secret fails
    before the tool runs. token and basic: the secret is read now; the index's verdict
    comes with the door's probe. A Basic password is asked for only on a `terminal`
    (default: stdin is one), and kept once the index accepts it. Raises `AuthError`
    (exit 4) for every authentication failure, naming the variable or file involved.
    """
    if index.auth == "client-credentials":
        secret = client_secret_for(index, environ) if index.client_secret_env else None
        if secret is None:
            raise AuthError(f"{index.url}: client credentials need --client-secret-env VAR")
        tokens = ClientCredentials(index, secret)
        tokens.access_token()
        return BearerAuthorizer(tokens)
    if index.auth == "token":
        if index.token_env:
            source = f"${index.token_env}"
            value = read_secret(environ, index.token_env, "token", index.url)
        else:
            source = f"the file {index.token_file}"
            value = _read_token_file(index.token_file or "", index.url)
        return StaticToken(index.url, _bearer_token(value, source, index.url), source)
    if index.auth == "basic":
        if terminal is None:
            terminal = sys.stdin.isatty()
        password, source = _basic_password(
            index, environ, store, policy, ask=ask, terminal=terminal
        )
        return BasicAuthorizer(index.url, index.username or "", password, source)
    credentials = Credentials(index, store, client_secret=client_secret_for(index, environ))
    try:
        credentials.ensure(policy, ui, True)
    except LoginRequiredError as exc:
        if policy is LoginPolicy.REFUSE:
            raise LoginRequiredError(exc.index_url, exc.reason, CI_SCHEMES_HINT) from None
        raise
    return BearerAuthorizer(credentials)
