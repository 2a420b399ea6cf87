"""The bookkeeping commands: register, list, remove, login, logout, status.

The CLI parses and prints; what these commands decide lives here so that it can be
tested without a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import httpx

from crane_launch.auth import (
    Credentials,
    LoginPolicy,
    TerminalUI,
    TokenStore,
    discover,
    login_policy,
)
from crane_launch.config import DEFAULT_SCOPES, PrivateIndex, Registry, normalise_url
from crane_launch.errors import UsageError

__all__ = [
    "IndexLine",
    "Registration",
    "describe_expiry",
    "index_lines",
    "login",
    "logout",
    "register",
    "remove",
]


@dataclass(frozen=True)
class Registration:
    """What the user typed at `crane index register`; None means "not given"."""

    url: str
    positional: tuple[str, ...] = ()
    client_id: str | None = None
    issuer: str | None = None
    token_url: str | None = None
    device_url: str | None = None
    revocation_url: str | None = None
    scopes: tuple[str, ...] | None = None
    resource: str | None = None
    audience: str | None = None
    public_index: str | None = None
    probe_path: str | None = None


def register(registry: Registry, req: Registration) -> tuple[PrivateIndex, bool]:
    """Add or update an index; returns it and whether it existed. Does not save."""
    url = normalise_url(req.url)
    client_id: str | None
    token_url: str | None
    device_url: str | None
    if req.positional:
        if len(req.positional) != 3:
            raise UsageError(
                "the positional form is `crane index register URL CLIENT_ID TOKEN_URL DEVICE_URL`"
            )
        if req.client_id or req.token_url or req.device_url:
            raise UsageError("give CLIENT_ID TOKEN_URL DEVICE_URL either as arguments or options")
        client_id, token_url, device_url = req.positional
    else:
        client_id, token_url, device_url = req.client_id, req.token_url, req.device_url
    existing = registry.find(url)
    revocation_url = req.revocation_url
    issuer = req.issuer
    if issuer:
        with httpx.Client(trust_env=True, timeout=30.0) as client:
            endpoints = discover(issuer, client)
        token_url = token_url or endpoints.token_url
        device_url = device_url or endpoints.device_url
        revocation_url = revocation_url or endpoints.revocation_url
        issuer = endpoints.issuer or issuer
    if existing is not None:
        index = replace(
            existing,
            client_id=client_id or existing.client_id,
            token_url=token_url or existing.token_url,
            device_url=device_url or existing.device_url,
            issuer=issuer or existing.issuer,
            revocation_url=revocation_url or existing.revocation_url,
            scopes=req.scopes or existing.scopes,
            resource=req.resource or existing.resource,
            audience=req.audience or existing.audience,
            public_index=_public(req.public_index) or existing.public_index,
            probe_path=req.probe_path or existing.probe_path,
        )
    else:
        if not client_id:
            raise UsageError("a client id is needed: --client-id ID (or the positional form)")
        if not (token_url and device_url):
            raise UsageError(
                "the token and device endpoints are needed: --issuer ISSUER to discover them, "
                "or TOKEN_URL DEVICE_URL"
            )
        index = PrivateIndex(
            url=url,
            client_id=client_id,
            token_url=_endpoint(token_url),
            device_url=_endpoint(device_url),
            issuer=issuer,
            scopes=req.scopes or DEFAULT_SCOPES,
            resource=req.resource,
            audience=req.audience,
            public_index=_public(req.public_index),
            revocation_url=revocation_url,
            probe_path=req.probe_path,
        )
    existed = registry.put(index)
    return registry.get(url), existed


def _endpoint(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    return url


def _public(url: str | None) -> str | None:
    return normalise_url(url) if url else None


def remove(registry: Registry, url: str) -> PrivateIndex:
    """Forget an index and its tokens (locally; no revocation). Does not save."""
    index = registry.remove(url)
    TokenStore().delete(index.url)
    return index


@dataclass(frozen=True)
class IndexLine:
    url: str
    logged_in: bool
    access_expires: str
    refresh_expires: str


def describe_expiry(at: float | None, *, never: bool = False, now: float | None = None) -> str:
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


def index_lines(registry: Registry) -> list[IndexLine]:
    store = TokenStore()
    lines = []
    for index in registry:
        status = Credentials(index, store).status()
        lines.append(
            IndexLine(
                url=index.url,
                logged_in=status.logged_in,
                access_expires=describe_expiry(status.access_expires_at)
                if status.logged_in
                else "-",
                refresh_expires=describe_expiry(
                    status.refresh_expires_at, never=status.refresh_never_expires
                )
                if status.logged_in
                else "-",
            )
        )
    return lines


def login(
    index: PrivateIndex, *, open_browser: bool, environ: Mapping[str, str], no_input: bool
) -> None:
    policy = login_policy(
        explicit=True,
        no_input=no_input,
        environ=environ,
        stdin_isatty=sys.stdin.isatty(),
        stderr_isatty=sys.stderr.isatty(),
    )
    ui = TerminalUI(live=sys.stderr.isatty() and policy is LoginPolicy.RUN_LIVE)
    Credentials(index, TokenStore()).login(ui, open_browser=open_browser)


def logout(index: PrivateIndex) -> tuple[bool, bool]:
    return Credentials(index, TokenStore()).logout()


def split_scopes(values: Sequence[str]) -> tuple[str, ...] | None:
    scopes = tuple(part for value in values for part in value.replace(",", " ").split())
    return scopes or None
