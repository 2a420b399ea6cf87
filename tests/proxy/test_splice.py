"""Large plain-HTTP bodies cross the loopback server socket to socket (`splice(2)`):
every byte arrives, the upstream connection is reused only after a whole body, and a
child that goes away mid-body costs the upstream connection, never the next answer."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crane_launch.proxy import splice
from crane_launch.proxy.server import ProxyServer, Reply, Request
from crane_launch.proxy.upstream import Upstream, streamed_reply
from tests.proxy.fakes import FakeTokens

pytestmark = pytest.mark.skipif(not splice.AVAILABLE, reason="splice(2) is Linux only")

BODY = bytes(range(256)) * (12 * 1024)  # 3 MiB, every byte value


class Origin:
    """A plain-HTTP server in a thread of its own: answers GET /<n> with BODY, counts
    connections."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            try:
                while True:
                    line = reader.readline()
                    if not line:
                        return
                    while reader.readline() not in (b"\r\n", b""):
                        pass
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode())
                    conn.sendall(BODY)
            except OSError:
                return

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(params=["uvloop", "asyncio"])
def door(
    request: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ProxyServer, Origin, list[int]]]:
    if request.param == "asyncio":
        monkeypatch.setenv("CRANE_EVENT_LOOP", "asyncio")
    origin = Origin()
    relayed: list[int] = []
    real_relay = splice.relay

    async def counting(source: int, target: int, count: int, timeout: float) -> None:
        relayed.append(count)
        await real_relay(source, target, count, timeout)

    monkeypatch.setattr(splice, "relay", counting)

    upstream: Upstream | None = None

    async def handler(req: Request) -> Reply:
        nonlocal upstream
        if upstream is None:
            upstream = Upstream(f"http://127.0.0.1:{origin.port}/simple/", FakeTokens())
        answer = await upstream.get(
            f"http://127.0.0.1:{origin.port}{req.target}", method=req.method, stream=True
        )
        return streamed_reply(answer.response)

    server = ProxyServer(handler)
    server.start()
    try:
        yield server, origin, relayed
    finally:
        server.stop()
        origin.close()


def test_a_large_body_is_relayed_whole_and_the_connection_reused(
    door: tuple[ProxyServer, Origin, list[int]],
) -> None:
    server, origin, relayed = door
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        for path in ("/1", "/2", "/3"):
            response = client.get(path)
            assert response.status_code == 200
            assert hashlib.sha256(response.content).digest() == hashlib.sha256(BODY).digest()
        head = client.head("/4")
        assert head.headers["content-length"] == str(len(BODY))
    assert len(relayed) == 3
    assert all(0 < count <= len(BODY) for count in relayed)
    assert origin.connections == 1


def test_a_child_that_leaves_mid_body_costs_only_that_upstream_connection(
    door: tuple[ProxyServer, Origin, list[int]],
) -> None:
    server, origin, _relayed = door
    with socket.socket() as child:
        # A small receive buffer: the body cannot all be on its way when the child leaves.
        child.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        child.connect(("127.0.0.1", server.port))
        child.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        got = child.recv(64 * 1024)
        assert got.startswith(b"HTTP/1.1 200")
    # The door may still be relaying into the closed socket; the next child is unharmed.
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = client.get("/2")
    assert response.content == BODY
    assert origin.connections == 2


def test_relay_moves_exactly_count_bytes() -> None:
    async def main() -> bytes:
        left, right = socket.socketpair()
        out_a, out_b = socket.socketpair()
        for sock in (left, right, out_a, out_b):
            sock.setblocking(False)
        loop = asyncio.get_running_loop()
        payload = BODY + b"NEXT"

        async def feed() -> None:
            await loop.sock_sendall(left, payload)

        async def drain() -> bytes:
            got = bytearray()
            while len(got) < len(BODY):
                got += await loop.sock_recv(out_b, 1 << 20)
            return bytes(got)

        feeder = asyncio.ensure_future(feed())
        reader = asyncio.ensure_future(drain())
        await splice.relay(right.fileno(), out_a.fileno(), len(BODY), 5.0)
        got = await reader
        await feeder
        rest = await loop.sock_recv(right, 16)
        for sock in (left, right, out_a, out_b):
            sock.close()
        assert rest == b"NEXT"
        return got

    assert asyncio.run(main()) == BODY


def test_relay_reports_a_source_that_ends_early() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        out_a, out_b = socket.socketpair()
        for sock in (left, right, out_a, out_b):
            sock.setblocking(False)
        left.sendall(b"short")
        left.close()
        with pytest.raises(splice.RelayError):
            await splice.relay(right.fileno(), out_a.fileno(), 100, 5.0)
        for sock in (right, out_a, out_b):
            sock.close()

    asyncio.run(main())


def test_relay_times_out_when_neither_side_moves() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        out_a, out_b = socket.socketpair()
        for sock in (left, right, out_a, out_b):
            sock.setblocking(False)
        with pytest.raises(TimeoutError):
            await splice.relay(right.fileno(), out_a.fileno(), 100, 0.3)
        for sock in (left, right, out_a, out_b):
            sock.close()

    asyncio.run(main())


def test_a_cancelled_relay_stops_its_thread() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        out_a, out_b = socket.socketpair()
        for sock in (left, right, out_a, out_b):
            sock.setblocking(False)
        task = asyncio.ensure_future(splice.relay(right.fileno(), out_a.fileno(), 100, 30.0))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(20):
            if not any(t.name == "crane-splice" for t in threading.enumerate()):
                break
            await asyncio.sleep(0.05)
        assert not any(t.name == "crane-splice" for t in threading.enumerate())
        for sock in (left, right, out_a, out_b):
            sock.close()

    asyncio.run(main())


def test_a_stalled_child_neither_spins_nor_outlives_the_timeout() -> None:
    """Small packets fill a pipe long before its nominal size; with the child not reading,
    the relay must sleep until the child's socket can take more, and give up in time."""

    async def main() -> None:
        left, right = socket.socketpair()
        out_a, out_b = socket.socketpair()
        for sock in (right, out_a, out_b):
            sock.setblocking(False)
        stop = threading.Event()

        def feed() -> None:
            packet = b"p" * 1448
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    left.sendall(packet)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        cpu = time.process_time()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await splice.relay(right.fileno(), out_a.fileno(), 1 << 30, 0.6)
        elapsed = time.monotonic() - started
        used = time.process_time() - cpu
        stop.set()
        for sock in (left, right, out_a, out_b):
            sock.close()
        feeder.join(5)
        assert elapsed < 3.0
        assert used < 0.5 * elapsed  # a spinning relay uses a whole core

    asyncio.run(main())
