"""`crane login`, `crane logout` and `crane status`: the login state of each index."""

from __future__ import annotations

import getpass
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from crane_launch.auth import (
    Credentials,
    LoginPolicy,
    TerminalUI,
    TokenStore,
    ask_password,
    authorizer_for,
    check_basic_password,
    client_secret_for,
    describe_scheme,
    in_ci,
    login_policy,
)
from crane_launch.config import PrivateIndex, Registry
from crane_launch.console import say
from crane_launch.errors import AuthError

__all__ = ["IndexStatus", "describe_expiry", "login", "logout", "statuses"]


@dataclass(frozen=True)
class IndexStatus:
    """One registered index as `crane status` and `crane index list` show it."""

    url: str
    logged_in: bool
    access_expires: str
    refresh_expires: str
    scheme: str = "device"
    scheme_detail: str = "OAuth device flow"
    state: str = ""
    """One phrase: logged in or not (device), or whether the secret is at hand."""


def describe_expiry(at: float | None, *, never: bool = False, now: float | None = None) -> str:
    """A moment as a person reads it: UTC time and how long from now, or never/unknown."""
    if never:
        return "never"
    if at is None:
        return "unknown"
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    left = at - now
    if left <= 0:
        return f"{stamp} (expired)"
    return f"{stamp} (in {_duration(left)})"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def statuses(registry: Registry, environ: Mapping[str, str]) -> list[IndexStatus]:
    """The state of every registered index (and of one the environment describes), read
    from the token store and the environment, without any network request."""
    store = TokenStore()
    rows = []
    for index in registry:
        detail = describe_scheme(index)
        if index.from_environment:
            detail += ", described by CRANE_INDEX_URL for this run"
        if index.auth != "device":
            state = _secret_state(index, environ, store)
            rows.append(IndexStatus(index.url, False, "-", "-", index.auth, detail, state))
            continue
        status = Credentials(index, store).status()
        if not status.logged_in:
            rows.append(IndexStatus(index.url, False, "-", "-", "device", detail, "not logged in"))
            continue
        access = describe_expiry(status.access_expires_at)
        refresh = describe_expiry(status.refresh_expires_at, never=status.refresh_never_expires)
        rows.append(IndexStatus(index.url, True, access, refresh, "device", detail, "logged in"))
    return rows


def _secret_state(index: PrivateIndex, environ: Mapping[str, str], store: TokenStore) -> str:
    """Whether the secret a non-device index needs is at hand (never the secret)."""
    variable = index.client_secret_env or index.token_env or index.password_env
    if variable:
        return (
            f"${variable} is set"
            if environ.get(variable, "").strip()
            else f"${variable} is not set"
        )
    if index.token_file:
        readable = os.access(index.token_file, os.R_OK)
        return "token file readable" if readable else "token file not readable"
    if index.auth == "basic":
        stored = store.password_path_for(index.url).is_file()
        return "password stored" if stored else f"no password stored: run `crane login {index.url}`"
    return "-"


def login(
    index: PrivateIndex, *, open_browser: bool, environ: Mapping[str, str], no_input: bool
) -> str:
    """Log in to `index` now and say so in one line.

    device: the device flow (an explicit login always runs it). basic without a password
    variable: ask for the password on the terminal, check it with the index, store it.
    client-credentials: fetch a token, which proves the client id and secret. token, and
    basic with a variable: nothing to do; the secret is read at run time.
    """
    if index.auth == "device":
        policy = login_policy(
            explicit=True,
            no_input=no_input,
            environ=environ,
            stderr_isatty=sys.stderr.isatty(),
        )
        ui = TerminalUI(live=sys.stderr.isatty() and policy is LoginPolicy.RUN_LIVE)
        secret = client_secret_for(index, environ)
        Credentials(index, TokenStore(), client_secret=secret).login(ui, open_browser=open_browser)
        return f"logged in to {index.url}"
    if index.auth == "client-credentials":
        authorizer_for(index, environ, store=TokenStore(), policy=LoginPolicy.REFUSE)
        return f"the identity provider accepted the client credentials for {index.url}"
    if index.auth == "basic" and not index.password_env:
        if no_input or in_ci(environ) or not sys.stdin.isatty():
            raise AuthError(
                f"{index.url}: the password is asked for on a terminal, and there is none "
                "here; register the index with --password-env VAR to read it from a variable"
            )
        store = TokenStore()
        password = ask_password(index, store, getpass.getpass, keep=False)
        check_basic_password(index, password, store)
        return f"logged in to {index.url} (the password is kept in crane's 0600 store)"
    return (
        f"nothing to log in: crane reads the credentials of {index.url} at run time "
        f"({describe_scheme(index)})"
    )


def logout(index: PrivateIndex, environ: Mapping[str, str]) -> str:
    """Delete the tokens of `index`, revoking them where the provider allows, and say
    what happened in one line (what was revoked, and what stays valid until when)."""
    if index.auth != "device":
        removed = TokenStore().delete(index.url)
        if removed:
            return f"forgot the password stored for {index.url}"
        return f"nothing stored for {index.url} ({describe_scheme(index)})"
    secret = None
    if index.client_secret_env:
        secret = environ.get(index.client_secret_env, "").strip() or None
        if secret is None:
            say(
                f"${index.client_secret_env} is not set: revoking without client "
                "authentication, which a provider of confidential clients may refuse"
            )
    result = Credentials(index, TokenStore(), client_secret=secret).logout()
    if not result.removed:
        return f"not logged in to {index.url}"
    done = f"logged out of {index.url}"
    until = f"which expires {describe_expiry(result.access_expires_at)}"
    if result.revoked and result.refresh_revoked is not None:
        if result.access_self_contained:
            return (
                f"{done}: refresh token revoked; the access token is self-contained (a JWT) "
                f"and stays valid until it expires, {until.removeprefix('which expires ')}"
            )
        return f"{done} (tokens revoked)"
    if not index.revocation_url:
        return (
            f"{done}: tokens deleted here; the index names no revocation endpoint, so the "
            f"access token stays valid until it expires, {until.removeprefix('which expires ')}"
        )
    parts = [_revocation(result.refresh_revoked, "refresh token")]
    if result.access_revoked is False:
        parts.append(f"this provider did not revoke the access token, {until}")
    elif result.access_revoked:
        parts.append("access token revoked")
    return f"{done}: " + "; ".join(part for part in parts if part)


def _revocation(outcome: bool | None, what: str) -> str:
    if outcome is None:
        return f"no {what} to revoke"
    if outcome:
        return f"{what} revoked"
    return f"the provider refused to revoke the {what}: revoke crane's access at the provider"
