from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from crane_launch.auth import Endpoints, discover, discovery_urls, make_client
from crane_launch.errors import ConfigError, UpstreamError, UsageError

Handler = Callable[[httpx.Request], httpx.Response]


def metadata(issuer: str, **overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "device_authorization_endpoint": f"{issuer}/device",
        "revocation_endpoint": f"{issuer}/revoke",
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def serving(documents: dict[str, dict[str, object]], seen: list[str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        document = documents.get(str(request.url))
        if document is None:
            return httpx.Response(404, text="<html>not found</html>")
        return httpx.Response(200, json=document)

    return make_client(transport=httpx.MockTransport(handle))


def test_candidate_urls() -> None:
    assert discovery_urls("https://idp.example.test/") == [
        "https://idp.example.test/.well-known/openid-configuration",
        "https://idp.example.test/.well-known/oauth-authorization-server",
    ]
    assert discovery_urls("https://idp.example.test/realms/crane/") == [
        "https://idp.example.test/realms/crane/.well-known/openid-configuration",
        "https://idp.example.test/.well-known/oauth-authorization-server/realms/crane",
        "https://idp.example.test/realms/crane/.well-known/oauth-authorization-server",
    ]
    with pytest.raises(UsageError):
        discovery_urls("idp.example.test")


def test_openid_configuration() -> None:
    issuer = "https://idp.example.test/realms/crane"
    seen: list[str] = []
    url = f"{issuer}/.well-known/openid-configuration"
    endpoints = discover(issuer, serving({url: metadata(issuer)}, seen))
    assert endpoints == Endpoints(
        issuer=issuer,
        token_url=f"{issuer}/token",
        device_url=f"{issuer}/device",
        revocation_url=f"{issuer}/revoke",
    )
    assert seen == [url]


def test_rfc8414_inserted_form_is_tried_next() -> None:
    issuer = "https://idp.example.test/tenant"
    seen: list[str] = []
    url = "https://idp.example.test/.well-known/oauth-authorization-server/tenant"
    endpoints = discover(issuer + "/", serving({url: metadata(issuer)}, seen))
    assert endpoints.device_url == f"{issuer}/device"
    assert seen == [f"{issuer}/.well-known/openid-configuration", url]


def test_rfc8414_appended_form_is_the_last_resort() -> None:
    issuer = "https://idp.example.test/tenant"
    seen: list[str] = []
    url = f"{issuer}/.well-known/oauth-authorization-server"
    endpoints = discover(issuer, serving({url: metadata(issuer, revocation_endpoint=None)}, seen))
    assert endpoints.revocation_url is None
    assert len(seen) == 3


def test_missing_device_endpoint_is_a_clear_config_error() -> None:
    issuer = "https://idp.example.test"
    url = f"{issuer}/.well-known/openid-configuration"
    client = serving({url: metadata(issuer, device_authorization_endpoint=None)}, [])
    with pytest.raises(ConfigError, match="device authorization grant") as info:
        discover(issuer, client)
    assert "device_authorization_endpoint" in str(info.value)


def test_document_for_another_issuer_is_refused() -> None:
    issuer = "https://idp.example.test"
    url = f"{issuer}/.well-known/openid-configuration"
    client = serving({url: metadata("https://evil.example.test")}, [])
    with pytest.raises(ConfigError, match=r"evil\.example\.test"):
        discover(issuer, client)


def test_nothing_found_names_the_urls_tried() -> None:
    with pytest.raises(ConfigError, match="tried") as info:
        discover("https://idp.example.test", serving({}, []))
    assert "/.well-known/oauth-authorization-server" in str(info.value)


def test_network_error_is_an_upstream_error_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = make_client(transport=httpx.MockTransport(refuse))
    with pytest.raises(UpstreamError, match="Connection refused") as info:
        discover("https://idp.example.test", client)
    assert "https://idp.example.test/.well-known/openid-configuration" in str(info.value)
    assert info.value.__cause__ is None


def test_server_errors_are_upstream_errors() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    client = make_client(transport=httpx.MockTransport(fail))
    with pytest.raises(UpstreamError, match="503"):
        discover("https://idp.example.test", client)


def test_an_oidc_document_without_device_and_revocation_is_completed_by_rfc8414() -> None:
    # django-oauth-toolkit 3.4: its OIDC document names neither; its RFC 8414 one does.
    issuer = "https://idp.example.test/o"
    oidc = f"{issuer}/.well-known/openid-configuration"
    rfc = "https://idp.example.test/.well-known/oauth-authorization-server/o"
    thin = metadata(issuer, device_authorization_endpoint=None, revocation_endpoint=None)
    seen: list[str] = []
    endpoints = discover(issuer, serving({oidc: thin, rfc: metadata(issuer)}, seen))
    assert endpoints.device_url == f"{issuer}/device"
    assert endpoints.revocation_url is not None
    assert seen == [oidc, rfc]


def test_a_later_document_of_another_issuer_completes_nothing() -> None:
    issuer = "https://idp.example.test/o"
    oidc = f"{issuer}/.well-known/openid-configuration"
    rfc = "https://idp.example.test/.well-known/oauth-authorization-server/o"
    thin = metadata(issuer, device_authorization_endpoint=None)
    other = metadata("https://evil.example.test/o")
    with pytest.raises(ConfigError, match="--device-url"):
        discover(issuer, serving({oidc: thin, rfc: other}, []))


def test_the_missing_device_endpoint_message_names_device_url_when_grants_list_it() -> None:
    issuer = "https://idp.example.test"
    url = f"{issuer}/.well-known/openid-configuration"
    document = metadata(issuer, device_authorization_endpoint=None)
    document["grant_types_supported"] = ["urn:ietf:params:oauth:grant-type:device_code"]
    with pytest.raises(ConfigError) as info:
        discover(issuer, serving({url: document}, []))
    message = str(info.value)
    assert "lists the device authorization grant but no device_authorization_endpoint" in message
    assert "--device-url" in message
