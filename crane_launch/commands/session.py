"""`crane login`, `crane logout` and `crane status`: the login state of each index."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from crane_launch.auth import Credentials, LoginPolicy, TerminalUI, TokenStore, login_policy
from crane_launch.config import PrivateIndex, Registry

__all__ = ["IndexStatus", "describe_expiry", "login", "logout", "statuses"]


@dataclass(frozen=True)
class IndexStatus:
    """One registered index as `crane status` and `crane index list` show it."""

    url: str
    logged_in: bool
    access_expires: str
    refresh_expires: str


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


def statuses(registry: Registry) -> list[IndexStatus]:
    """The login state of every registered index, read from the token store."""
    store = TokenStore()
    rows = []
    for index in registry:
        status = Credentials(index, store).status()
        if not status.logged_in:
            rows.append(IndexStatus(index.url, False, "-", "-"))
            continue
        access = describe_expiry(status.access_expires_at)
        refresh = describe_expiry(status.refresh_expires_at, never=status.refresh_never_expires)
        rows.append(IndexStatus(index.url, True, access, refresh))
    return rows


def login(
    index: PrivateIndex, *, open_browser: bool, environ: Mapping[str, str], no_input: bool
) -> None:
    """Run the device flow for `index` now (an explicit login always runs it)."""
    policy = login_policy(
        explicit=True,
        no_input=no_input,
        environ=environ,
        stderr_isatty=sys.stderr.isatty(),
    )
    ui = TerminalUI(live=sys.stderr.isatty() and policy is LoginPolicy.RUN_LIVE)
    Credentials(index, TokenStore()).login(ui, open_browser=open_browser)


def logout(index: PrivateIndex) -> str:
    """Delete the tokens of `index`, revoking them where the provider allows, and say
    what happened in one line (what was revoked, and what stays valid until when)."""
    result = Credentials(index, TokenStore()).logout()
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
