"""The lean client against a scripted HTTP/1.1 server on 127.0.0.1: framing, reuse,
and every malformed answer refused rather than guessed at."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from crane_launch.proxy.upstream import Upstream, _unproxied_prefixes
from crane_launch.proxy.wire import LeanPool
from tests.proxy.fakes import FakeTokens

Answer = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Scripted:
    """Answers requests in order; counts connections and keeps the request heads."""

    answers: list[Answer]
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                answer = self.answers.pop(0)
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                else:
                    await answer(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def scripted(*answers: Answer) -> AsyncIterator[Scripted]:
    script = Scripted(list(answers))
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    script.port = server.sockets[0].getsockname()[1]
    try:
        yield script
    finally:
        server.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode() + body


async def fetch(pool: LeanPool, url: str, method: str = "GET") -> httpx.Response:
    response = await pool.request(method, url, [("Accept", "*/*")])
    await response.aread()
    return response


def test_a_connection_is_kept_alive_and_reused() -> None:
    async def main() -> None:
        async with scripted(ok(b"one"), ok(b"two")) as server:
            pool = LeanPool()
            first = await fetch(pool, server.url + "/a/")
            second = await fetch(pool, server.url + "/b/?q=1")
            await pool.aclose()
        assert (first.content, second.content) == (b"one", b"two")
        assert server.connections == 1
        assert server.heads[1].startswith(b"GET /b/?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")

    asyncio.run(main())


def test_chunked_bodies_with_extensions_and_trailers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0004\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    async def main() -> None:
        async with scripted(answer, ok(b"next")) as server:
            pool = LeanPool()
            first = await fetch(pool, server.url + "/")
            second = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert (first.content, second.content) == (b"abcdefg", b"next")
        assert server.connections == 1

    asyncio.run(main())


def test_a_body_to_the_end_of_the_connection_is_read_and_not_reused() -> None:
    async def close_delimited(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with scripted(close_delimited) as first_server:
            pool = LeanPool()
            response = await fetch(pool, first_server.url + "/")
            assert response.content == b"all of it"
            assert not pool._idle.get(("http", "127.0.0.1", first_server.port))
            await pool.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ],
)
def test_answers_without_a_body_leave_the_connection_in_step(method: str, answer: bytes) -> None:
    async def main() -> None:
        async with scripted(answer, ok(b"after")) as server:
            pool = LeanPool()
            first = await fetch(pool, server.url + "/", method)
            second = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert first.content == b""
        assert second.content == b"after"
        assert server.connections == 1

    asyncio.run(main())


def test_informational_answers_are_skipped() -> None:
    answer = b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok(b"real")

    async def main() -> None:
        async with scripted(answer) as server:
            pool = LeanPool()
            response = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert (response.status_code, response.content) == (200, b"real")

    asyncio.run(main())


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n folded\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n" + ok(b"hidden"),
        b"HTTP/1.1 000 Odd\r\n\r\n",
    ],
)
def test_malformed_heads_are_protocol_errors(answer: bytes) -> None:
    async def main() -> None:
        async with scripted(answer) as server:
            pool = LeanPool()
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(pool, server.url + "/")
            await pool.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"3abc\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"3\nabc\r\n0\r\n\r\n",
    ],
)
def test_malformed_chunks_are_protocol_errors(body: bytes) -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body

    async def main() -> None:
        async with scripted(answer) as server:
            pool = LeanPool()
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(pool, server.url + "/")
            await pool.aclose()

    asyncio.run(main())


def test_a_body_cut_short_is_an_error_and_the_connection_is_dropped() -> None:
    async def cut(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with scripted(cut) as server:
            pool = LeanPool()
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(pool, server.url + "/")
            assert not pool._idle.get(("http", "127.0.0.1", server.port))
            await pool.aclose()

    asyncio.run(main())


def test_a_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    async def then_close(writer: asyncio.StreamWriter) -> None:
        writer.write(ok(b"one"))
        await writer.drain()
        writer.close()

    async def main() -> None:
        async with scripted(then_close, ok(b"two")) as server:
            pool = LeanPool()
            first = await fetch(pool, server.url + "/")
            await asyncio.sleep(0.05)
            second = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert (first.content, second.content) == (b"one", b"two")
        assert server.connections == 2

    asyncio.run(main())


def test_an_abandoned_body_closes_its_connection() -> None:
    async def main() -> None:
        async with scripted(ok(b"x" * 100_000), ok(b"fresh")) as server:
            pool = LeanPool()
            response = await pool.request("GET", server.url + "/", [])
            await response.aclose()  # not read
            second = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert second.content == b"fresh"
        assert server.connections == 2

    asyncio.run(main())


def test_bytes_after_a_complete_answer_make_the_connection_unusable() -> None:
    smuggled = ok(b"one") + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"

    async def main() -> None:
        async with scripted(smuggled, ok(b"real")) as server:
            pool = LeanPool()
            first = await fetch(pool, server.url + "/")
            await asyncio.sleep(0.05)
            second = await fetch(pool, server.url + "/")
            await pool.aclose()
        assert (first.content, second.content) == (b"one", b"real")
        assert server.connections == 2

    asyncio.run(main())


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://127.0.0.1:1/a b", []),
        ("http://127.0.0.1:1/a\r\nX: y", []),
        ("http://127.0.0.1:1/", [("Accept", "a\r\nX-Injected: 1")]),
        ("http://127.0.0.1:1/", [("Bad Name", "x")]),
        ("ftp://127.0.0.1:1/", []),
        ("http://127.0.0.1:1/f\u00e9", []),
        ("http://127.0.0.1:1/\u20ac", []),
        ("http://127.0.0.1:1/", [("User-Agent", "\u20ac")]),
    ],
)
def test_requests_that_cannot_be_written_safely_are_refused(
    url: str, headers: list[tuple[str, str]]
) -> None:
    async def main() -> None:
        pool = LeanPool()
        with pytest.raises((httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL)):
            await pool.request("GET", url, headers)

    asyncio.run(main())


def test_a_refused_connection_is_a_connect_error() -> None:
    async def main() -> None:
        async with scripted() as server:
            port = server.port
        pool = LeanPool()
        with pytest.raises(httpx.ConnectError):
            await pool.request("GET", f"http://127.0.0.1:{port}/", [])

    asyncio.run(main())


def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def main() -> None:
        async with scripted(silent) as server:
            pool = LeanPool(read_timeout=0.2)
            with pytest.raises(httpx.ReadTimeout):
                await pool.request("GET", server.url + "/", [])
            await pool.aclose()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("proxies", "prefixes"),
    [
        ({}, ("http://", "https://")),
        ({"https": "http://corp:3128"}, ("http://",)),
        ({"http": "http://corp:3128", "no": "localhost"}, ("https://",)),
        ({"all": "socks5://corp:1080"}, ()),
        ({"all": "", "http": ""}, ("http://", "https://")),
    ],
)
def test_schemes_a_proxy_covers_stay_with_httpx(
    proxies: dict[str, str], prefixes: tuple[str, ...]
) -> None:
    assert _unproxied_prefixes(proxies) == prefixes


def test_a_reset_is_not_the_end_of_a_body_read_to_the_close() -> None:
    async def reset(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 3000)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def main() -> None:
        async with scripted(reset) as server:
            pool = LeanPool()
            with pytest.raises(httpx.ReadError):
                await fetch(pool, server.url + "/")
            await pool.aclose()

    asyncio.run(main())


def test_an_answer_without_a_body_that_says_close_is_not_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"

    async def main() -> None:
        async with scripted(head, ok(b"fresh")) as server:
            pool = LeanPool()
            await fetch(pool, server.url + "/", "HEAD")
            assert not pool._idle.get(("http", "127.0.0.1", server.port))
            await pool.aclose()

    asyncio.run(main())


def test_bytes_waiting_in_the_kernel_make_an_idle_connection_unusable() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        # A server in a thread of its own: it sends the stray bytes while the client's
        # event loop does not run, so that only a look at the socket itself sees them.
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.recv(65536)
                if len(accepted) == 1:
                    conn.sendall(ok(b"one"))
                    time.sleep(0.02)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
                else:
                    conn.sendall(ok(b"real"))
                time.sleep(0.3)

    threading.Thread(target=serve, daemon=True).start()

    async def main() -> tuple[bytes, bytes]:
        pool = LeanPool()
        first = await fetch(pool, f"http://127.0.0.1:{port}/")
        time.sleep(0.1)  # blocking: the loop reads nothing meanwhile
        second = await fetch(pool, f"http://127.0.0.1:{port}/")
        await pool.aclose()
        return first.content, second.content

    try:
        assert asyncio.run(main()) == (b"one", b"real")
    finally:
        listener.close()
    assert len(accepted) == 2


def test_a_url_that_is_not_ascii_goes_the_httpx_way() -> None:
    async def main() -> list[bytes]:
        async with scripted(ok(b"lean"), ok(b"httpx")) as server:
            upstream = Upstream(server.url + "/simple/", FakeTokens())
            await upstream.get(server.url + "/simple/a/")
            await upstream.get(server.url + "/simple/f\u00e9/")
            await upstream.aclose()
            return server.heads

    heads = asyncio.run(main())
    assert heads[0].startswith(b"GET /simple/a/ HTTP/1.1")
    assert heads[1].startswith(b"GET /simple/f%C3%A9/ HTTP/1.1")


def test_an_upstream_closed_refuses_further_requests() -> None:
    async def main() -> None:
        async with scripted(ok(b"x")) as server:
            upstream = Upstream(server.url + "/simple/", FakeTokens())
            await upstream.aclose()
            with pytest.raises(httpx.ConnectError):
                await upstream.get(server.url + "/simple/a/")

    asyncio.run(main())


def test_a_length_beside_chunked_is_ignored_and_the_connection_dropped() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )

    async def main() -> None:
        async with scripted(answer, ok(b"next")) as server:
            pool = LeanPool()
            response = await fetch(pool, server.url + "/")
            assert response.content == b"hello"
            assert not pool._idle.get(("http", "127.0.0.1", server.port))
            await pool.aclose()

    asyncio.run(main())
