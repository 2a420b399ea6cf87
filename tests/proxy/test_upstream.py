"""Upstream: the bearer token goes to the private origin and nowhere else."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from crane_launch.proxy.upstream import Upstream, UpstreamResponse, cookieless

if TYPE_CHECKING:
    from tests.proxy.fakes import FakeTokens, ScriptedOrigins

PRIVATE = "https://crane.example/pypi/simple/"


def _get(upstream: Upstream, url: str, **kwargs: Any) -> UpstreamResponse:
    return asyncio.run(upstream.get(url, **kwargs))


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("https://crane.example/pypi/simple/demo/", True),
        ("https://CRANE.Example:443/repo/demo-1.0.tar.gz", True),
        ("https://crane.example:8443/pypi/simple/demo/", False),
        ("http://crane.example/pypi/simple/demo/", False),
        ("http://crane.example:443/pypi/simple/demo/", False),
        ("https://crane.example.evil.test/pypi/simple/demo/", False),
        ("https://evil.test/crane.example/pypi/simple/demo/", False),
    ],
)
def test_authorization_only_for_the_private_origin(
    origins: ScriptedOrigins, tokens: FakeTokens, url: str, private: bool
) -> None:
    origins.answer(str(httpx.URL(url)), 200, b"ok")
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, url)

    assert answer.response.status_code == 200
    [request] = origins.requests
    if private:
        assert request.headers["authorization"] == "Bearer tok-1"
    else:
        assert "authorization" not in request.headers
        assert tokens.access_calls == 0


def test_a_redirect_to_another_origin_is_returned_not_followed(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    origins.answer(
        "https://crane.example/pypi/simple/demo/",
        302,
        headers={"location": "https://login.example/authorize?state=x"},
    )
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/pypi/simple/demo/")

    assert answer.response.status_code == 302
    assert origins.to("login.example") == []


@pytest.mark.parametrize(
    "location",
    ["https://cdn.example/blob/demo?sig=1", "http://crane.example/blob/demo?sig=1"],
    ids=["other-host", "same-host-plain-http"],
)
def test_a_followed_foreign_redirect_carries_no_credentials(
    origins: ScriptedOrigins, tokens: FakeTokens, location: str
) -> None:
    origins.answer("https://crane.example/repo/demo.tar.gz", 302, headers={"location": location})
    origins.answer(str(httpx.URL(location).copy_with(query=None)), 200, b"bytes")
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/repo/demo.tar.gz", follow_foreign=True)

    assert answer.response.status_code == 200
    assert answer.url == location
    first, second = origins.requests
    assert first.headers["authorization"] == "Bearer tok-1"
    assert "authorization" not in second.headers


def test_a_same_origin_redirect_keeps_the_credentials(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    origins.answer("https://crane.example/pypi/simple/Demo/", 301, headers={"location": "../demo/"})
    origins.answer("https://crane.example/pypi/simple/demo/", 200, b"page")
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/pypi/simple/Demo/")

    assert answer.url == "https://crane.example/pypi/simple/demo/"
    assert [r.headers["authorization"] for r in origins.requests] == ["Bearer tok-1"] * 2


def test_a_redirect_loop_ends(origins: ScriptedOrigins, tokens: FakeTokens) -> None:
    origins.answer("https://crane.example/loop", 302, headers={"location": "/loop"})
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/loop")

    assert answer.response.status_code == 302
    assert len(origins.requests) == 6


def test_a_401_refreshes_the_token_once_and_retries(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        ok = request.headers["authorization"] == "Bearer tok-2"
        return httpx.Response(200 if ok else 401, content=b"page")

    origins.answers["https://crane.example/pypi/simple/demo/"] = page
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/pypi/simple/demo/")

    assert answer.response.status_code == 200
    assert tokens.refreshed == ["tok-1"]
    assert [r.headers["authorization"] for r in origins.requests] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


def test_a_second_401_is_returned_without_another_refresh(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    origins.answer("https://crane.example/pypi/simple/demo/", 401)
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/pypi/simple/demo/")

    assert answer.response.status_code == 401
    assert tokens.refreshed == ["tok-1"]
    assert len(origins.requests) == 2


def test_a_401_from_another_origin_refreshes_nothing(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    origins.answer(
        "https://crane.example/repo/demo.tar.gz", 302, headers={"location": "https://cdn.x/b"}
    )
    origins.answer("https://cdn.x/b", 401)
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    answer = _get(upstream, "https://crane.example/repo/demo.tar.gz", follow_foreign=True)

    assert answer.response.status_code == 401
    assert tokens.refreshed == []


def test_concurrent_401s_refresh_once(origins: ScriptedOrigins, tokens: FakeTokens) -> None:
    # uv opens dozens of connections at once: an expired token must not cost dozens of
    # refreshes (each one rotates the refresh token).
    def page(request: httpx.Request) -> httpx.Response:
        ok = request.headers["authorization"] == "Bearer tok-2"
        return httpx.Response(200 if ok else 401)

    origins.answers["https://crane.example/pypi/simple/demo/"] = page
    upstream = Upstream(PRIVATE, tokens, client=origins.client())

    async def many() -> list[UpstreamResponse]:
        url = "https://crane.example/pypi/simple/demo/"
        return await asyncio.gather(*(upstream.get(url) for _ in range(20)))

    answers = asyncio.run(many())

    assert {a.response.status_code for a in answers} == {200}
    assert tokens.refreshed == ["tok-1"]


def test_a_cookie_the_private_index_sets_is_never_sent_again(tokens: FakeTokens) -> None:
    # A session cookie of the private index would reach the public index (cookies ignore
    # ports), and the request that must go without credentials would carry one.
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"set-cookie": "sid=S1; Path=/"}, content=b"x")

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(handle), cookies=cookieless(), follow_redirects=False
    )
    upstream = Upstream("https://crane.example/simple/", tokens, client=client)

    async def two() -> None:
        await upstream.get("https://crane.example/simple/")
        await upstream.get("https://crane.example:8443/simple/other/")
        await upstream.get("https://crane.example/simple/", anonymous=True)
        await upstream.aclose()

    asyncio.run(two())
    assert [request.headers.get("cookie") for request in seen] == [None, None, None]
