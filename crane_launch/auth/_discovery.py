"""Endpoint discovery: OpenID Connect Discovery 1.0, then RFC 8414 metadata.

For an issuer `https://idp.example/realms/r` the documents tried, in order, are::

    https://idp.example/realms/r/.well-known/openid-configuration           (OIDC)
    https://idp.example/.well-known/oauth-authorization-server/realms/r     (RFC 8414)
    https://idp.example/realms/r/.well-known/oauth-authorization-server     (path appended)

The first JSON document found is used; a later one is not consulted. The document must
name the issuer it was fetched for (RFC 8414 section 3.3), which stops a misconfigured
or hostile document from pointing crane's tokens elsewhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from crane_launch.errors import ConfigError, UpstreamError, UsageError

from ._http import describe_transport_error, make_client

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

__all__ = ["Endpoints", "discover", "discovery_urls"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    """What registration needs from an identity provider."""

    issuer: str
    token_url: str
    device_url: str
    """"" when the provider names no device endpoint and none was needed."""
    revocation_url: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    """What the metadata lists as `scopes_supported`; None when it lists nothing."""


def _split_issuer(issuer: str) -> tuple[str, str, str]:
    parts = urlsplit(issuer.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{issuer!r} is not an http:// or https:// issuer URL")
    if parts.query or parts.fragment:
        raise UsageError(f"{issuer!r}: an issuer URL has no query or fragment")
    return parts.scheme.lower(), parts.netloc, parts.path.rstrip("/")


def discovery_urls(issuer: str) -> list[str]:
    """The metadata URLs tried for `issuer`, in order."""
    scheme, netloc, path = _split_issuer(issuer)
    base = urlunsplit((scheme, netloc, path, "", ""))
    urls = [f"{base}/.well-known/openid-configuration"]
    if path:
        origin = urlunsplit((scheme, netloc, "", "", ""))
        urls.append(f"{origin}/.well-known/oauth-authorization-server{path}")
    urls.append(f"{base}/.well-known/oauth-authorization-server")
    return urls


def _same_issuer(a: str, b: str) -> bool:
    def key(url: str) -> tuple[str, str, str]:
        parts = urlsplit(url.strip())
        return parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/")

    return key(a) == key(b)


def _metadata_url(document: dict[str, Any], name: str, source: str) -> str | None:
    """The http(s) URL the metadata `document` (fetched from `source`) names as `name`;
    None when absent, `ConfigError` when it is not an http(s) URL."""
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme.lower() not in ("http", "https"):
        raise ConfigError(f"{source}: {name} is not an http:// or https:// URL")
    return value


def _device_missing(document: dict[str, Any], issuer: str, source: str) -> ConfigError:
    """The error for metadata without `device_authorization_endpoint`: what is missing,
    and how to give it (django-oauth-toolkit lists the grant but not its endpoint)."""
    grants = document.get("grant_types_supported")
    if isinstance(grants, list) and DEVICE_CODE_GRANT in grants:
        return ConfigError(
            f"{source} lists the device authorization grant but no "
            "device_authorization_endpoint; give the endpoint with --device-url URL "
            f"(with --issuer {issuer})"
        )
    return ConfigError(
        f"{source} has no device_authorization_endpoint, so the identity provider {issuer} "
        "may not offer the device authorization grant (RFC 8628): give its endpoint with "
        "--device-url URL, ask its administrator to enable the device flow for crane's "
        "client, or use --auth client-credentials"
    )


def _scopes_supported(document: dict[str, Any]) -> tuple[str, ...] | None:
    scopes = document.get("scopes_supported")
    if isinstance(scopes, list) and scopes and all(isinstance(s, str) for s in scopes):
        return tuple(scopes)
    return None


def _endpoints_from(
    document: dict[str, Any], issuer: str, source: str, *, need_device: bool
) -> Endpoints:
    named = document.get("issuer")
    if not isinstance(named, str):
        raise ConfigError(f"{source} names no issuer; it is not a valid discovery document")
    if not _same_issuer(named, issuer):
        raise ConfigError(
            f"{source} describes the issuer {named}, not {issuer}; "
            f"register the index with --issuer {named}"
        )
    token_url = _metadata_url(document, "token_endpoint", source)
    if token_url is None:
        raise ConfigError(f"{source} has no token_endpoint")
    device_url = _metadata_url(document, "device_authorization_endpoint", source)
    if device_url is None and need_device:
        raise _device_missing(document, issuer, source)
    return Endpoints(
        issuer=named,
        token_url=token_url,
        device_url=device_url or "",
        revocation_url=_metadata_url(document, "revocation_endpoint", source),
        scopes_supported=_scopes_supported(document),
    )


class _ServerFailure(Exception):
    """A metadata URL answered 5xx."""


def _fetch_document(client: httpx.Client, url: str) -> dict[str, Any] | None:
    """The JSON object at `url`; None when there is none (4xx, not JSON). Raises
    `UpstreamError` when unreachable and `_ServerFailure` on 5xx."""
    try:
        # A GET of public metadata: following redirects is safe here.
        response = client.get(url, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{url}: {describe_transport_error(exc)}") from None
    if response.status_code >= 500:
        raise _ServerFailure(f"{url} answered HTTP {response.status_code}")
    if response.status_code != 200:
        log.debug("discovery: %s answered HTTP %s", url, response.status_code)
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


_COMPLETING = ("device_authorization_endpoint", "revocation_endpoint", "grant_types_supported")
"""Fields an OpenID Connect document may lack that the RFC 8414 document of the same
issuer has (django-oauth-toolkit: its OIDC document names no revocation endpoint, no
grants, no device endpoint). The first two are looked for; the grants come along, for the
message that says a device endpoint is missing."""


def _completed(
    document: dict[str, Any], issuer: str, client: httpx.Client, later: list[str]
) -> dict[str, Any]:
    """`document`, with the fields of `_COMPLETING` it lacks taken from the later metadata
    documents of the same issuer. A later document that cannot be had is passed over."""
    merged = dict(document)
    for url in later:
        if all(name in merged for name in _COMPLETING[:2]):
            break
        try:
            other = _fetch_document(client, url)
        except (UpstreamError, _ServerFailure) as exc:
            log.debug("discovery: passing over %s (%s)", url, exc)
            continue
        named = None if other is None else other.get("issuer")
        if other is None or not isinstance(named, str) or not _same_issuer(named, issuer):
            continue
        for name in _COMPLETING:
            if name not in merged and name in other:
                log.debug("discovery: %s from %s", name, url)
                merged[name] = other[name]
    return merged


def discover(
    issuer: str,
    client: httpx.Client | None = None,
    *,
    need_device: bool = True,
    complete: bool | None = None,
) -> Endpoints:
    """Fetch the provider's metadata and return its endpoints.

    `complete` (default: `need_device`) completes a document that lacks the device or
    revocation endpoint from the issuer's later documents (`_completed`).
    Raises `ConfigError` when no document is found or it lacks the device endpoint (unless
    not `need_device`), `UpstreamError` (naming the URL) when the provider cannot be
    reached or fails with 5xx.
    """
    urls = discovery_urls(issuer)
    if client is None:
        with make_client() as own:
            return discover(issuer, own, need_device=need_device, complete=complete)
    failures: list[str] = []
    for position, url in enumerate(urls):
        try:
            document = _fetch_document(client, url)
        except _ServerFailure as exc:
            failures.append(str(exc))
            continue
        if document is not None:
            log.debug("discovery: using the metadata at %s", url)
            merged = document
            if need_device if complete is None else complete:
                merged = _completed(document, issuer, client, urls[position + 1 :])
            return _endpoints_from(merged, issuer, url, need_device=need_device)
    if failures:
        raise UpstreamError(f"discovery for {issuer} failed: {'; '.join(failures)}")
    raise ConfigError(
        f"no OpenID Connect or OAuth 2.0 metadata found for the issuer {issuer} "
        f"(tried {', '.join(urls)}); check the issuer URL or register the endpoints "
        "explicitly (URL CLIENT_ID TOKEN_URL DEVICE_URL)"
    )
