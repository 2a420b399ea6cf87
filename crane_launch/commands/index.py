"""`crane index register | list | remove`: the registry of private indexes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from crane_launch.auth import Endpoints, TokenStore, describe_scheme, discover
from crane_launch.config import (
    AUTH_SCHEMES,
    DEFAULT_SCOPES,
    PrivateIndex,
    Registry,
    normalise_url,
)
from crane_launch.console import say
from crane_launch.errors import ConfigError, UsageError

__all__ = ["Registration", "describe", "forget_scheme", "register", "remove", "split_scopes"]


@dataclass(frozen=True)
class Registration:
    """What the user typed at `crane index register`; None means "not given"."""

    url: str
    positional: tuple[str, ...] = ()
    auth: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    issuer: str | None = None
    token_url: str | None = None
    device_url: str | None = None
    revocation_url: str | None = None
    scopes: tuple[str, ...] | None = None
    resource: str | None = None
    audience: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    public_index: str | None = None
    probe_path: str | None = None


@dataclass(frozen=True)
class _Endpoints:
    """The OAuth side of a registration, from the positional form, options or discovery."""

    client_id: str | None
    token_url: str | None
    device_url: str | None
    revocation_url: str | None
    issuer: str | None
    scopes_supported: tuple[str, ...] | None = None


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL = re.compile(r"[A-Z_][A-Z0-9_]*")
"""How environment variables are spelt; a mixed-case word that is not set may be a secret."""

_SCHEME_OPTIONS: dict[str, tuple[str, ...]] = {
    "device": ("client_id", "client_secret_env", "issuer", "token_url", "device_url",
               "revocation_url", "scopes", "resource", "audience"),
    "client-credentials": ("client_id", "client_secret_env", "issuer", "token_url", "scopes",
                           "resource", "audience"),
    "token": ("token_env", "token_file"),
    "basic": ("username", "password_env"),
}  # fmt: skip
"""The options each scheme takes; `--public-index` and `--probe-path` go with every one."""


def register(
    registry: Registry, req: Registration, environ: Mapping[str, str] | None = None
) -> tuple[PrivateIndex, bool]:
    """Add or update an index; returns it and whether it existed. Does not save.

    Updating keeps what is not given again; naming another `--auth` starts the scheme's
    part afresh (the old scheme's settings would not apply).
    """
    url = normalise_url(req.url)
    existing = registry.find(url)
    auth = req.auth or (existing.auth if existing is not None else "device")
    if auth not in AUTH_SCHEMES:
        raise UsageError(f"--auth must be one of {', '.join(AUTH_SCHEMES)}")
    _check_options(req, auth, os.environ if environ is None else environ)
    carried = existing
    if existing is not None and existing.auth != auth:
        existing = None  # the old scheme's settings do not apply to the new one
    if auth == "token":
        index = _token_index(url, req, existing)
    elif auth == "basic":
        index = _basic_index(url, req, existing)
    else:
        index = _oauth_index(url, req, existing, auth)
    if carried is not None:
        index = replace(
            index,
            public_index=index.public_index or carried.public_index,
            probe_path=index.probe_path or carried.probe_path,
        )
    existed = registry.put(index)
    return registry.get(url), existed


def _check_options(req: Registration, auth: str, environ: Mapping[str, str]) -> None:
    allowed = _SCHEME_OPTIONS[auth]
    for name in ("client_id", "client_secret_env", "issuer", "token_url", "device_url",
                 "revocation_url", "scopes", "resource", "audience", "token_env",
                 "token_file", "username", "password_env"):  # fmt: skip
        if getattr(req, name) is not None and name not in allowed:
            option = "--scope" if name == "scopes" else "--" + name.replace("_", "-")
            raise UsageError(f"{option} does not apply to --auth {auth}")
    if req.positional and auth != "device":
        raise UsageError(
            "the positional form `URL CLIENT_ID TOKEN_URL DEVICE_URL` is for --auth device"
        )
    for name in ("client_secret_env", "token_env", "password_env"):
        value = getattr(req, name)
        if value is None:
            continue
        option = "--" + name.replace("_", "-")
        # The value is never shown: a secret pasted in place of a name must not be echoed.
        if not _VARIABLE.fullmatch(value):
            raise UsageError(
                f"{option} takes the NAME of an environment variable (letters, digits, _), "
                "not its value"
            )
        if value not in environ and not _CONVENTIONAL.fullmatch(value):
            raise UsageError(
                f"{option} names a variable that is not set here and is not spelt like one "
                "(UPPER_CASE): it may be the secret itself; set the variable before "
                "registering, or give its NAME"
            )
    if req.resource and req.audience and auth == "client-credentials":
        raise UsageError("give --audience or --resource, not both")


def _token_index(url: str, req: Registration, existing: PrivateIndex | None) -> PrivateIndex:
    token_env, token_file = req.token_env, req.token_file
    if token_env and token_file:
        raise UsageError("give --token-env VAR or --token-file PATH, not both")
    if token_file:
        token_file = str(Path(token_file).expanduser().absolute())
    elif not token_env and existing is not None:
        token_env, token_file = existing.token_env, existing.token_file
    if not (token_env or token_file):
        raise UsageError("--auth token needs --token-env VAR or --token-file PATH")
    base = existing or PrivateIndex(url=url, scopes=())
    return replace(
        base,
        auth="token",
        token_env=token_env,
        token_file=token_file,
        public_index=_public(req.public_index) or base.public_index,
        probe_path=req.probe_path or base.probe_path,
    )


def _basic_index(url: str, req: Registration, existing: PrivateIndex | None) -> PrivateIndex:
    base = existing or PrivateIndex(url=url, scopes=())
    username = req.username or base.username
    if not username:
        raise UsageError("--auth basic needs --username U")
    if ":" in username or any(ord(ch) < 0x20 for ch in username):
        raise UsageError("a Basic username cannot hold a colon or a control character")
    return replace(
        base,
        auth="basic",
        username=username,
        password_env=req.password_env or base.password_env,
        public_index=_public(req.public_index) or base.public_index,
        probe_path=req.probe_path or base.probe_path,
    )


def _oauth_index(
    url: str, req: Registration, existing: PrivateIndex | None, auth: str
) -> PrivateIndex:
    device = auth == "device"
    given = _typed_endpoints(req)
    if existing is not None and not given.device_url:
        given = replace(given, device_url=existing.device_url or None)
    endpoints = _discovered(given, need_device=device)
    default_scopes = DEFAULT_SCOPES if device else ()
    scopes = req.scopes or (existing.scopes if existing is not None else default_scopes)
    _check_scopes(url, scopes, endpoints.scopes_supported, given_scopes=scopes != default_scopes)
    base = existing or PrivateIndex(url=url)
    index = replace(
        base,
        auth=auth,
        client_id=endpoints.client_id or base.client_id,
        client_secret_env=req.client_secret_env or base.client_secret_env,
        token_url=endpoints.token_url or base.token_url,
        device_url=(endpoints.device_url or base.device_url) if device else "",
        issuer=endpoints.issuer or base.issuer,
        revocation_url=endpoints.revocation_url or base.revocation_url,
        scopes=scopes,
        resource=req.resource or base.resource,
        audience=req.audience or base.audience,
        public_index=_public(req.public_index) or base.public_index,
        probe_path=req.probe_path or base.probe_path,
    )
    if not index.client_id:
        raise UsageError("a client id is needed: --client-id ID (or the positional form)")
    if device and not (index.token_url and index.device_url):
        raise UsageError(
            "the token and device endpoints are needed: --issuer ISSUER to discover them, "
            "or TOKEN_URL DEVICE_URL"
        )
    if not device:
        if not index.token_url:
            raise UsageError("client credentials need --token-url URL or --issuer ISSUER")
        if not index.client_secret_env:
            raise UsageError("client credentials need --client-secret-env VAR")
    return replace(
        index,
        token_url=_http_url(index.token_url),
        device_url=_http_url(index.device_url) if device else "",
    )


def _check_scopes(
    url: str,
    scopes: tuple[str, ...],
    supported: tuple[str, ...] | None,
    *,
    given_scopes: bool,
) -> None:
    """Refuse crane's default scopes where the provider's metadata lists others.

    A provider may leave scopes out of `scopes_supported` (RFC 8414 section 2), so scopes
    the user named are taken as given; but crane's default (`openid offline_access`)
    suits OpenID Connect providers only, and a provider that does not know it fails the
    login only after the user has approved it in the browser.
    """
    if supported is None:
        return
    missing = [scope for scope in scopes if scope not in supported]
    if not missing:
        return
    if given_scopes:
        say(
            f"note: the provider does not list {' '.join(missing)} among its scopes "
            f"({' '.join(supported)}); if the login fails with invalid_scope, register "
            "again with --scope"
        )
        return
    raise ConfigError(
        f"{url}: crane's default scopes {' '.join(scopes)!r} are not among the scopes this "
        f"provider offers ({' '.join(supported)}): register with --scope S (repeat it, or "
        "space-separate the scopes)"
    )


def _typed_endpoints(req: Registration) -> _Endpoints:
    if not req.positional:
        return _Endpoints(
            req.client_id, req.token_url, req.device_url, req.revocation_url, req.issuer
        )
    if len(req.positional) != 3:
        raise UsageError(
            "the positional form is `crane index register URL CLIENT_ID TOKEN_URL DEVICE_URL`"
        )
    if req.client_id or req.token_url or req.device_url:
        raise UsageError("give CLIENT_ID TOKEN_URL DEVICE_URL either as arguments or options")
    client_id, token_url, device_url = req.positional
    return _Endpoints(client_id, token_url, device_url, req.revocation_url, req.issuer)


def _discovered(given: _Endpoints, *, need_device: bool) -> _Endpoints:
    """`given`, with what the issuer's metadata says filling the gaps."""
    if not given.issuer:
        return given
    with httpx.Client(trust_env=True, timeout=30.0) as client:
        found: Endpoints = discover(
            given.issuer,
            client,
            need_device=need_device and not given.device_url,
            complete=need_device,  # a device login also revokes at logout
        )
    return _Endpoints(
        client_id=given.client_id,
        token_url=given.token_url or found.token_url,
        device_url=given.device_url or found.device_url,
        revocation_url=given.revocation_url or found.revocation_url,
        issuer=found.issuer or given.issuer,
        scopes_supported=found.scopes_supported,
    )


def _http_url(url: str) -> str:
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


def forget_scheme(previous: PrivateIndex, environ: Mapping[str, str]) -> str | None:
    """After an index changed scheme: what its old scheme stored (tokens, revoked where
    the provider allows; a password) is removed, and said; None when nothing was stored."""
    from crane_launch.commands import session

    store = TokenStore()
    if not (
        store.path_for(previous.url).exists() or store.password_path_for(previous.url).exists()
    ):
        return None
    return f"the previous scheme's login: {session.logout(previous, environ)}"


def describe(index: PrivateIndex) -> str:
    """How crane authenticates to `index`, for the user (names variables, never secrets)."""
    return describe_scheme(index)


def split_scopes(values: Sequence[str]) -> tuple[str, ...] | None:
    """`--scope` values, each possibly space- or comma-separated; None when none given."""
    scopes = tuple(part for value in values for part in value.replace(",", " ").split())
    return scopes or None
