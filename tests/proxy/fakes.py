"""Fakes for the proxy's upstream side: a token source and scripted upstream origins.

`ScriptedOrigins` stands for every server crane may talk to (the private index, the
public index, a CDN, a login page) behind one `httpx.MockTransport`. A URL nobody
scripted fails the test: crane asking somewhere unexpected is itself a finding.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from crane_launch.proxy.server import Door, Reply, Request

Answer = Callable[[httpx.Request], httpx.Response] | type[httpx.TransportError]


class FakeTokens:
    """A `TokenSource` handing out `tok-1`, then `tok-2` after the first refresh, ..."""

    def __init__(self) -> None:
        self.current = "tok-1"
        self.access_calls = 0
        self.refreshed: list[str] = []
        """The stale token in each `reauthorized` call (without `Bearer `)."""

    def authorization(self) -> str:
        self.access_calls += 1
        return f"Bearer {self.current}"

    def reauthorized(self, stale: str) -> str:
        self.refreshed.append(stale.removeprefix("Bearer "))
        self.current = f"tok-{len(self.refreshed) + 1}"
        return f"Bearer {self.current}"


class ScriptedOrigins:
    """Upstream answers by URL (query left out, default port dropped, as httpx prints it).

    An answer is a function of the request, or a `httpx.TransportError` subclass to raise
    (a timeout, a refused connection). Every request is recorded, answered or not.

    The origins in `closed_origins` (the private index's, `https://crane.example`) answer
    401 to any request without an `Authorization` header, as a real private index does;
    empty it to play an index that shows its pages to anybody.
    """

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[httpx.Request] = []
        self.closed_origins: set[str] = {"https://crane.example:443"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = request.url
        origin = f"{url.scheme}://{url.host}:{url.port or {'https': 443, 'http': 80}[url.scheme]}"
        if origin in self.closed_origins and "authorization" not in request.headers:
            return httpx.Response(401, headers={"www-authenticate": "Bearer"})
        answer = self.answers.get(str(request.url.copy_with(query=None)))
        if answer is None:
            raise AssertionError(f"crane asked an unscripted URL: {request.method} {request.url}")
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)
        response = answer(request)
        # A response built with `content=` is already read, which a real transport's
        # never is: hand crane an unread stream of the same bytes.
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(response.content),
        )

    def answer(
        self, url: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Answer `url` with a fresh response each time (a response is read only once)."""

        def fresh(request: httpx.Request) -> httpx.Response:
            if request.method == "HEAD":
                return httpx.Response(status, headers=headers)
            return httpx.Response(status, headers=headers, content=body)

        self.answers[url] = fresh

    def to(self, host: str) -> list[httpx.Request]:
        return [request for request in self.requests if request.url.host == host]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


async def read_reply(door: Door, request: Request) -> tuple[Reply, bytes]:
    """`door`'s reply to `request`, its body read whole, and the reply closed."""
    reply = await door(request)
    try:
        if isinstance(reply.body, bytes):
            body = reply.body
        else:
            body = b"".join([chunk async for chunk in reply.body])
    finally:
        if reply.close is not None:
            await reply.close()
    return reply, body
