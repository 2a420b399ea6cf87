"""The loopback HTTP/1.1 server both proxy doors sit behind: asyncio + h11.

A door is an async function `Request -> Reply`. The server owns the connection:
keep-alive, `TCP_NODELAY`, streaming bodies with back-pressure, and the CONNECT
hand-over (a `Reply` with `takeover` set gets the raw streams after the 200).

`ProxyServer` runs its own event loop in a daemon thread so that the main thread
stays free to supervise the child process and own the signal handlers. It binds
127.0.0.1 only; nothing else is ever offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import h11

from crane_launch.proxy import splice
from crane_launch.proxy.peer import peer_uid
from crane_launch.proxy.wire import SocketBody

__all__ = ["CutReply", "Door", "ProxyServer", "Reply", "Request", "Takeover"]

log = logging.getLogger(__name__)

_READ_SIZE = 256 * 1024
_MAX_HEADER_BYTES = 64 * 1024
_IDLE_TIMEOUT = 120.0
_WRITE_BUFFER_HIGH = 1024 * 1024


class RequestBody:
    """The body of one request, read from the connection as the door consumes it.

    A door that forwards a body iterates it (`async for chunk in request.body`); what no
    door reads is drained once the reply is sent, so the connection stays in step.
    """

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        self._conn = conn
        self._reader = reader
        self.complete = False
        self.broken = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not (self.complete or self.broken):
            event = await _next_event(self._conn, self._reader)
            if event is None or isinstance(event, h11.ConnectionClosed):
                self.broken = True
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            elif isinstance(event, h11.Data) and event.data:
                yield bytes(event.data)

    async def drain(self) -> None:
        async for _chunk in self._chunks():
            pass


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    """Header names in lower case, in the order received."""
    body: RequestBody | None = field(default=None, compare=False, repr=False)
    """The request's body (empty for most requests); None where none can be read."""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class CutReply(Exception):
    """Raised from a reply's body to end the connection before the reply is complete, so
    that the child cannot take what it got for the whole (the door has said why)."""


Takeover = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | AsyncIterable[bytes] = b""
    takeover: Takeover | None = None
    """For CONNECT: after a 2xx, the connection is handed over (reader, writer, buffered bytes)."""
    close: Callable[[], Awaitable[None]] | None = None
    """Called once the body has been sent or abandoned (release an upstream stream)."""

    @classmethod
    def text(cls, status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Reply:
        body = text.encode("utf-8") if text else b""
        base = [("content-type", "text/plain; charset=utf-8")] if text else []
        return cls(status, [*base, *(headers or []), ("content-length", str(len(body)))], body)


Door = Callable[[Request], Awaitable[Reply]]


class ProxyServer:
    """Serve `door` on 127.0.0.1 from a private event loop in a background thread."""

    def __init__(self, door: Door, *, port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError("crane's proxy binds the loopback interface only")
        self._door = door
        self._host = host
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the proxy server has not been started")
        return self._loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="crane-proxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _run(self) -> None:
        loop = _new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._connection,
                    self._host,
                    self._requested_port,
                    backlog=512,
                    reuse_address=True,
                    limit=_MAX_HEADER_BYTES,
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The default high-water mark (64 KiB) is one upstream chunk: every chunk would
        # pause the relay until the child caught up. A few chunks of slack keep both
        # sides busy; memory stays bounded by this limit.
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        if not _same_user(writer):
            log.warning("refused a connection from another local user")
            if task is not None:
                self._connections.discard(task)
            writer.close()
            return
        try:
            await serve_h11(self._door, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, CutReply):
            pass
        except asyncio.CancelledError:
            pass
        except RuntimeError:
            # uvloop's way of saying the child has gone: an operation on a closed transport.
            if not writer.transport.is_closing():
                log.exception("proxy connection failed")
        except Exception:
            log.exception("proxy connection failed")
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed and not turned off (`CRANE_EVENT_LOOP=asyncio`),
    else asyncio's: the door serves the same either way, uvloop with less CPU per request."""
    if os.environ.get("CRANE_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _same_user(writer: asyncio.StreamWriter) -> bool:
    """False only when the peer is known to belong to another user (see peer.py)."""
    peer = writer.get_extra_info("peername")
    local = writer.get_extra_info("sockname")
    if not peer or not local or not hasattr(os, "getuid"):
        return True
    uid = peer_uid(peer, local)
    return uid is None or uid == os.getuid()


async def serve_h11(door: Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve HTTP/1.1 requests on one connection until either side closes it.

    Used for the loopback listener and, inside an intercepted CONNECT, for the
    decrypted stream: the same loop, whatever carries the bytes.
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADER_BYTES)
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.ConnectionClosed) or event is None:
            return
        if not isinstance(event, h11.Request):
            return
        body = RequestBody(conn, reader)
        request = Request(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("ascii", "replace"),
            headers=tuple(
                (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers
            ),
            body=body,
        )
        if request.method == "CONNECT":
            # The tunnel's bytes follow the (empty) request body; read up to them first.
            await body.drain()
            if body.broken:
                return
        try:
            reply = await door(request)
        except Exception:
            log.exception("proxy door failed on %s", request.method)
            reply = Reply.text(502, "crane: internal proxy error")
        if reply.takeover is not None and 200 <= reply.status < 300:
            writer.write(
                conn.send(h11.Response(status_code=reply.status, headers=reply.headers)) or b""
            )
            await writer.drain()
            leftover, _closed = conn.trailing_data
            await reply.takeover(reader, writer, bytes(leftover))
            return
        try:
            await _send_reply(conn, writer, request, reply)
        finally:
            if reply.close is not None:
                await reply.close()
        await body.drain()
        if body.broken:
            return
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return None
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                return None
            data = await asyncio.wait_for(reader.read(_READ_SIZE), _IDLE_TIMEOUT)
            conn.receive_data(data)
            continue
        if event is h11.PAUSED:
            return None
        return event


async def _send_reply(
    conn: h11.Connection, writer: asyncio.StreamWriter, request: Request, reply: Reply
) -> None:
    headers = [(k, v) for k, v in reply.headers if k.lower() not in _HOP_BY_HOP]
    writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)) or b"")
    body = reply.body
    if request.method != "HEAD" and reply.status not in (204, 304):
        if isinstance(body, bytes):
            if body:
                writer.write(conn.send(h11.Data(data=body)) or b"")
        elif not await _spliced(conn, writer, body, headers):
            async for chunk in body:
                if chunk:
                    # Passed through as it came: h11 only adds framing, never a copy.
                    writer.writelines(conn.send_with_data_passthrough(h11.Data(data=chunk)) or ())
                    await writer.drain()
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


@runtime_checkable
class _HandoverBody(Protocol):
    """A body that can hand over its upstream socket (`upstream.RawBody`)."""

    def take_socket(self, min_bytes: int) -> SocketBody | None: ...


class _Relayed:
    """Stands for the bytes `splice.relay` writes, so that h11 counts them."""

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length


async def _spliced(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    body: AsyncIterable[bytes],
    headers: list[tuple[str, str]],
) -> bool:
    """Relay a large plain-HTTP body socket to socket (see splice.py); False when this
    body cannot go that way (then it is streamed)."""
    if not splice.AVAILABLE or not isinstance(body, _HandoverBody):
        return False
    sock = writer.get_extra_info("socket")
    # Only onto a plain socket (not the TLS stream of an intercepted CONNECT), and only
    # with a Content-Length, so that the bytes need no framing of h11's.
    if sock is None or writer.get_extra_info("ssl_object") is not None:
        return False
    if not any(name.lower() == "content-length" for name, _ in headers):
        return False
    source = body.take_socket(splice.MIN_BYTES)
    if source is None:
        return False
    ok = False
    try:
        if source.head:
            writer.writelines(conn.send_with_data_passthrough(h11.Data(data=source.head)) or ())
        relayed: Any = _Relayed(source.remaining)  # h11 documents this use (sendfile)
        conn.send_with_data_passthrough(h11.Data(data=relayed))
        # Everything written so far must be on the wire before the relay writes past it.
        transport = writer.transport
        transport.set_write_buffer_limits(high=0)
        try:
            await writer.drain()
        finally:
            transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
        await splice.relay(source.fileno, sock.fileno(), source.remaining, source.timeout)
        ok = True
    finally:
        source.done(ok)
    return True


# Not `proxy-authenticate`: this server is the proxy, and its own 407 must carry the
# challenge. Doors pass upstream headers through allow-lists, so none arrives from there.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
