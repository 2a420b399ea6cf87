"""`crane index register | list | remove`: the registry of private indexes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import httpx

from crane_launch.auth import Endpoints, TokenStore, discover
from crane_launch.config import DEFAULT_SCOPES, PrivateIndex, Registry, normalise_url
from crane_launch.errors import UsageError

__all__ = ["Registration", "register", "remove", "split_scopes"]


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


@dataclass(frozen=True)
class _Endpoints:
    """The OAuth side of a registration, from the positional form, options or discovery."""

    client_id: str | None
    token_url: str | None
    device_url: str | None
    revocation_url: str | None
    issuer: str | None


def register(registry: Registry, req: Registration) -> tuple[PrivateIndex, bool]:
    """Add or update an index; returns it and whether it existed. Does not save."""
    url = normalise_url(req.url)
    endpoints = _discovered(_typed_endpoints(req))
    existing = registry.find(url)
    if existing is not None:
        index = _updated(existing, req, endpoints)
    else:
        index = _new(url, req, endpoints)
    existed = registry.put(index)
    return registry.get(url), existed


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


def _discovered(given: _Endpoints) -> _Endpoints:
    """`given`, with what the issuer's metadata says filling the gaps."""
    if not given.issuer:
        return given
    with httpx.Client(trust_env=True, timeout=30.0) as client:
        found: Endpoints = discover(given.issuer, client)
    return _Endpoints(
        client_id=given.client_id,
        token_url=given.token_url or found.token_url,
        device_url=given.device_url or found.device_url,
        revocation_url=given.revocation_url or found.revocation_url,
        issuer=found.issuer or given.issuer,
    )


def _updated(existing: PrivateIndex, req: Registration, given: _Endpoints) -> PrivateIndex:
    return replace(
        existing,
        client_id=given.client_id or existing.client_id,
        token_url=given.token_url or existing.token_url,
        device_url=given.device_url or existing.device_url,
        issuer=given.issuer or existing.issuer,
        revocation_url=given.revocation_url or existing.revocation_url,
        scopes=req.scopes or existing.scopes,
        resource=req.resource or existing.resource,
        audience=req.audience or existing.audience,
        public_index=_public(req.public_index) or existing.public_index,
        probe_path=req.probe_path or existing.probe_path,
    )


def _new(url: str, req: Registration, given: _Endpoints) -> PrivateIndex:
    if not given.client_id:
        raise UsageError("a client id is needed: --client-id ID (or the positional form)")
    if not (given.token_url and given.device_url):
        raise UsageError(
            "the token and device endpoints are needed: --issuer ISSUER to discover them, "
            "or TOKEN_URL DEVICE_URL"
        )
    return PrivateIndex(
        url=url,
        client_id=given.client_id,
        token_url=_http_url(given.token_url),
        device_url=_http_url(given.device_url),
        issuer=given.issuer,
        scopes=req.scopes or DEFAULT_SCOPES,
        resource=req.resource,
        audience=req.audience,
        public_index=_public(req.public_index),
        revocation_url=given.revocation_url,
        probe_path=req.probe_path,
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


def split_scopes(values: Sequence[str]) -> tuple[str, ...] | None:
    """`--scope` values, each possibly space- or comma-separated; None when none given."""
    scopes = tuple(part for value in values for part in value.replace(",", " ").split())
    return scopes or None
