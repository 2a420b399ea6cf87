"""A lean HTTP/1.1 client for the door's hot path: GET and HEAD, kept-alive connections.

httpx stays the client for everything else (the login, the transparent door's public
requests, any origin the user's proxy settings cover). Profiling the door under uv's
50 parallel connections showed more than a third of its event-loop time in httpcore's
pool bookkeeping (every request walks every connection and polls each socket), and
about half of a project page's cost in the httpx/httpcore/anyio layers. This client
does what the door needs and nothing else:

- one pool of idle connections per origin (scheme, host, port), last in first out;
  a connection goes back only after a complete, well-framed response;
- strict response framing (RFC 9112 6): `Transfer-Encoding: chunked` (the only coding
  accepted), one `Content-Length`, or the end of the connection; obsolete line folding,
  conflicting lengths and oversized headers are protocol errors, never guessed at;
- a request on a reused connection that the server had closed meanwhile is sent once
  more on a new one (GET and HEAD only ever go this way);
- HTTPS with the same trust as httpx (`httpx.create_ssl_context(trust_env=True)`:
  certifi, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), ALPN `http/1.1`;
- answers are `httpx.Response` objects streaming from the connection, so the door
  reads them as it reads httpx's, and errors are httpx's exception types;
- a plain-HTTP body of known length can be handed over as the socket itself
  (`LeanStream.take_socket`), for the server to `splice(2)` it to the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import select
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["LeanPool", "LeanStream", "SocketBody"]

_MAX_HEADER_BYTES = 64 * 1024
_MAX_CHUNK_LINE = 4096
_READ_HIGH_WATER = 1024 * 1024
_MAX_IDLE_PER_ORIGIN = 64
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
Origin = tuple[str, str, int]


class _Closed(Exception):
    """The connection ended: cleanly (`error` None) or by a reset or failure."""

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.error = error


class _Connection(asyncio.Protocol):
    """One upstream connection: received data kept as the chunks that arrived (no
    copying until a caller asks for a piece of one), reading paused above a high-water
    mark so that a slow child holds the upstream back."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.reusable = True

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _READ_HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self.reusable = False
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading ------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the connection can carry another request: open, and nothing received
        or waiting in the kernel that no request asked for (a server's stray bytes, or
        its close, would otherwise be read as the next answer)."""
        transport = self.transport
        return (
            self.reusable
            and not self._eof
            and not self._chunks
            and transport is not None
            and not transport.is_closing()
            and _nothing_waiting(transport)
        )

    async def _more(self, timeout: float) -> None:
        """Wait for data (or the end); raises _Closed at the end."""
        if self._chunks:
            return
        if self._eof:
            raise _Closed(self._error)
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("the index did not answer in time") from None
        finally:
            self._waiter = None
        if not self._chunks and self._eof:
            raise _Closed(self._error)

    def _take(self, limit: int) -> bytes:
        """Up to `limit` bytes of what has arrived (at least one chunk's worth waiting)."""
        chunk = self._chunks.popleft()
        if len(chunk) > limit:
            self._chunks.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self._buffered -= len(chunk)
        if self._paused and self._buffered <= _READ_HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def _unread(self, data: bytes) -> None:
        if data:
            self._chunks.appendleft(data)
            self._buffered += len(data)

    async def read_some(self, limit: int, timeout: float) -> bytes:
        await self._more(timeout)
        return self._take(limit)

    async def read_line(self, limit: int, timeout: float, what: str) -> bytes:
        """One line of at most `limit` bytes ending in CRLF (returned without it)."""
        buffer = bytearray()
        while True:
            await self._more(timeout)
            chunk = self._take(limit + 2 - len(buffer))
            end = chunk.find(b"\n")
            if end >= 0:
                buffer += chunk[: end + 1]
                self._unread(chunk[end + 1 :])
                break
            buffer += chunk
            if len(buffer) >= limit + 2:
                raise httpx.RemoteProtocolError(f"{what} is too long")
        if not buffer.endswith(b"\r\n"):
            raise httpx.RemoteProtocolError(f"{what} does not end in CRLF")
        return bytes(buffer[:-2])

    async def read_head(self, timeout: float) -> bytes:
        """The status line and header fields, up to the blank line (not included)."""
        buffer = bytearray()
        while True:
            await self._more(timeout)
            chunk = self._take(_MAX_HEADER_BYTES)
            start = max(0, len(buffer) - 3)
            buffer += chunk
            end = buffer.find(b"\r\n\r\n", start)
            if end > _MAX_HEADER_BYTES:
                raise httpx.RemoteProtocolError("the response's header is too large")
            if end >= 0:
                self._unread(bytes(buffer[end + 4 :]))
                return bytes(buffer[:end])
            if len(buffer) > _MAX_HEADER_BYTES:
                raise httpx.RemoteProtocolError("the response's header is too large")

    def buffered(self) -> bytes:
        """Everything received and not yet read (for a hand-over of the socket)."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


def _nothing_waiting(transport: asyncio.Transport) -> bool:
    """True unless the transport's socket has bytes (or an end) to read right now."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


@dataclass(frozen=True)
class _Head:
    status: int
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool


def _parse_head(raw: bytes) -> _Head:
    lines = raw.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if (
        version not in (b"HTTP/1.1", b"HTTP/1.0")
        or not code.isdigit()
        or rest[3:4] not in (b"", b" ")
    ):
        raise httpx.RemoteProtocolError("the index sent a malformed status line")
    if int(code) < 100:
        raise httpx.RemoteProtocolError("the index sent a status code below 100")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TOKEN_CHARS.issuperset(name):
            # Obsolete line folding (a line starting with white space) lands here too.
            raise httpx.RemoteProtocolError("the index sent a malformed header field")
        value = value.strip(b" \t")
        if b"\r" in value or b"\n" in value or b"\0" in value:
            raise httpx.RemoteProtocolError("the index sent a malformed header field")
        headers.append((name.lower(), value))
    connection = b",".join(v for n, v in headers if n == b"connection").lower()
    tokens = {t.strip() for t in connection.split(b",")}
    keep_alive = (b"close" not in tokens) if version == b"HTTP/1.1" else (b"keep-alive" in tokens)
    return _Head(int(code), headers, keep_alive)


def _framing(head: _Head, method: str) -> tuple[str, int]:
    """('none' | 'length' | 'chunked' | 'eof', length) for the response body."""
    status = head.status
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    codings = [v for n, v in head.headers if n == b"transfer-encoding"]
    if codings:
        names = [c.strip().lower() for v in codings for c in v.split(b",") if c.strip()]
        if names != [b"chunked"]:
            raise httpx.RemoteProtocolError("the index sent a transfer coding other than chunked")
        # A Content-Length beside it is ignored (RFC 9112 6.3); `upstream.forwarded_headers`
        # keeps it from the child, and the connection is not reused.
        return "chunked", 0
    lengths = {v.strip() for n, v in head.headers if n == b"content-length"}
    if lengths:
        values = {part.strip() for value in lengths for part in value.split(b",")}
        if len(values) != 1:
            raise httpx.RemoteProtocolError("the index sent conflicting Content-Length values")
        (value,) = values
        if not value.isdigit() or len(value) > 18:
            raise httpx.RemoteProtocolError("the index sent an invalid Content-Length")
        return "length", int(value)
    return "eof", 0


@dataclass
class SocketBody:
    """A plain-HTTP body handed over as its socket: `head` (bytes already received),
    then `remaining` bytes to be read from `fileno`. `done(ok)` must be called once they
    have been consumed (the connection is reused) or abandoned (it is closed)."""

    fileno: int
    head: bytes
    remaining: int
    timeout: float
    _stream: LeanStream

    def done(self, ok: bool) -> None:
        self._stream.finish_handover(ok)


class LeanStream(httpx.AsyncByteStream):
    """The body of one response, read from its connection as the caller iterates."""

    def __init__(
        self, pool: LeanPool, conn: _Connection, kind: str, length: int, keep: bool
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._kind = kind
        self._left = length
        self._keep = keep
        self._done = kind == "none"
        self._timeout = pool.read_timeout
        if self._done:
            self._release(keep)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None or self._done:
            return
        try:
            if self._kind == "length":
                while self._left > 0:
                    chunk = await self._read(conn, self._left)
                    self._left -= len(chunk)
                    yield chunk
            elif self._kind == "chunked":
                async for chunk in self._chunked(conn):
                    yield chunk
            else:
                while True:
                    try:
                        await conn._more(self._timeout)
                    except _Closed as closed:
                        if closed.error is not None:
                            # Only a clean close ends such a body: a reset cuts it short.
                            raise httpx.ReadError("the connection to the index failed") from None
                        break
                    yield conn._take(1 << 20)
        except BaseException:
            self._release(False)
            raise
        self._done = True
        self._release(self._keep and self._kind != "eof")

    async def _read(self, conn: _Connection, limit: int) -> bytes:
        try:
            return await conn.read_some(limit, self._timeout)
        except _Closed:
            raise httpx.RemoteProtocolError("the index closed the connection mid-body") from None

    async def _chunked(self, conn: _Connection) -> AsyncIterator[bytes]:
        try:
            while True:
                line = await conn.read_line(_MAX_CHUNK_LINE, self._timeout, "a chunk size line")
                size_text = line.partition(b";")[0].strip(b" \t")
                if (
                    not size_text
                    or len(size_text) > 16
                    or not all(c in b"0123456789abcdefABCDEF" for c in size_text)
                ):
                    raise httpx.RemoteProtocolError("the index sent an invalid chunk size")
                size = int(size_text, 16)
                if size == 0:
                    while await conn.read_line(_MAX_CHUNK_LINE, self._timeout, "a trailer field"):
                        pass
                    return
                while size > 0:
                    chunk = await conn.read_some(size, self._timeout)
                    size -= len(chunk)
                    yield chunk
                if await conn.read_line(0, self._timeout, "a chunk's end"):
                    raise httpx.RemoteProtocolError("a chunk is longer than its size")
        except _Closed:
            raise httpx.RemoteProtocolError("the index closed the connection mid-body") from None

    def take_socket(self, min_bytes: int) -> SocketBody | None:
        """The rest of a plain-HTTP, fixed-length body of at least `min_bytes` as its
        socket; None otherwise."""
        conn = self._conn
        if conn is None or self._done or self._kind != "length" or conn.origin[0] != "http":
            return None
        if self._left < min_bytes:
            return None
        transport = conn.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if transport is None or sock is None or transport.is_closing():
            return None
        transport.pause_reading()
        conn._paused = True
        head = conn.buffered()
        if len(head) > self._left:
            conn._unread(head[self._left :])
            head = head[: self._left]
        remaining = self._left - len(head)
        self._left = 0
        self._done = True
        return SocketBody(sock.fileno(), head, remaining, self._timeout, self)

    def finish_handover(self, ok: bool) -> None:
        conn = self._conn
        if conn is not None and ok:
            conn._paused = False
            if conn.transport is not None:
                conn.transport.resume_reading()
        self._release(ok and self._keep)

    def _release(self, reuse: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if reuse and conn.alive:
            self._pool._give_back(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        # A body not read to its end leaves the connection out of step: it is closed.
        self._release(self._done and self._keep and self._kind != "eof")


class LeanPool:
    """Kept-alive HTTP/1.1 connections, per origin, for GET and HEAD."""

    def __init__(self, *, connect_timeout: float = 10.0, read_timeout: float = 30.0) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = httpx.create_ssl_context(trust_env=True)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def request(
        self, method: str, url: str, headers: list[tuple[str, str]]
    ) -> httpx.Response:
        """Send `method url` with `headers` (Host is added); the answer streams."""
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"cannot request {scheme}: URLs")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        authority = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = (scheme, host, port)
        if not (target.isascii() and authority.isascii()):
            raise httpx.InvalidURL("the URL is not ASCII")
        if _UNSAFE_TARGET.search(target) or _UNSAFE_TARGET.search(authority):
            raise httpx.UnsupportedProtocol("the URL holds white space or control characters")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}"]
        for name, value in headers:
            if _UNSAFE_VALUE.search(value) or not _TOKEN_CHARS.issuperset(name.encode("latin-1")):
                raise httpx.LocalProtocolError(f"the request header {name!r} cannot be sent")
            lines.append(f"{name}: {value}")
        try:
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise httpx.LocalProtocolError("a request header cannot be sent as latin-1") from None
        conn = self._idle_connection(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, method, data)
            except _Closed:
                conn.close()  # the server had closed it while it was idle: once more
        conn = await self._connect(origin)
        try:
            return await self._exchange(conn, method, data)
        except _Closed:
            conn.close()
            raise httpx.RemoteProtocolError(
                "the index closed the connection without an answer"
            ) from None

    async def _exchange(self, conn: _Connection, method: str, data: bytes) -> httpx.Response:
        transport = conn.transport
        if transport is None:
            raise _Closed
        try:
            transport.write(data)
            while True:
                head = _parse_head(await conn.read_head(self.read_timeout))
                if head.status >= 200:
                    break
                if head.status == 101:
                    raise httpx.RemoteProtocolError("the index switched protocols")
            kind, length = _framing(head, method)
        except BaseException:
            conn.close()
            raise
        keep = head.keep_alive and not (
            kind == "chunked" and any(n == b"content-length" for n, _ in head.headers)
        )
        stream = LeanStream(self, conn, kind, length, keep)
        return httpx.Response(
            head.status,
            headers=[(n, v) for n, v in head.headers],
            stream=stream,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.alive:
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= _MAX_IDLE_PER_ORIGIN:
            idle.pop(0).close()
        idle.append(conn)

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {}
        if scheme == "https":
            extra = {"ssl": self._ssl_context(), "server_hostname": host}
        try:
            async with asyncio.timeout(self.connect_timeout):
                _transport, conn = await loop.create_connection(
                    lambda: _Connection(origin), host, port, **extra
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("the index did not accept a connection in time") from None
        except ssl.SSLError as exc:
            raise httpx.ConnectError(f"TLS handshake failed ({exc.reason or exc})") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect ({exc.strerror or exc})") from None
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
