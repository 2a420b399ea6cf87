"""Replies from crane's file cache, and replies that fill it as they stream.

`disk_reply` answers a file request from a verified cache entry: GET, HEAD, and a single
`Range` (what uv asks for to read a wheel's metadata), hashing a whole GET as it streams
and cutting it (and removing the entry) if the bytes no longer match. `teed_reply`
streams an index's answer to the child and into a `CacheWriter` at once; a file that does
not match the hash its page gave is cut before its last byte, so the child never
completes a download crane has proven wrong, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from crane_launch.proxy.cache import CacheEntry, CacheWriter, FileCache
from crane_launch.proxy.server import CutReply, Reply, Request
from crane_launch.proxy.upstream import forwarded_headers

__all__ = ["CorruptDownload", "byte_range", "disk_reply", "teed_reply"]

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024
_OFFLOAD_MIN_BYTES = 1024 * 1024
"""Bodies from this size on are hashed and written in a thread beside the relay."""
_MAX_PENDING_WRITES = 16
"""Chunks handed to that thread and not yet written: what bounds the memory a slow disk
costs (16 chunks of at most 256 KiB)."""
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class CorruptDownload(CutReply):
    """Bytes that do not match their hash: raised mid-stream, which cuts the connection."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The single range `header` asks of a `size`-byte file as (first, last), inclusive;
    None for the whole file (no header, several ranges, a unit other than bytes); False
    when the range cannot be satisfied (answer 416)."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text or int(last_text) == 0:
            return False
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # an invalid range is ignored (RFC 9110 14.2): the whole file
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size:
        return False
    return first, last


def disk_reply(
    request: Request, entry: CacheEntry, cache: FileCache, on_cut: Callable[[], None]
) -> Reply:
    """The cached file as the index would have answered it; `on_cut` is called when a
    download is cut because the file no longer matches its hash."""
    size = entry.size
    headers = [
        ("content-type", entry.content_type or "application/octet-stream"),
        ("accept-ranges", "bytes"),
    ]
    if entry.etag:
        headers.append(("etag", entry.etag))
    if entry.last_modified:
        headers.append(("last-modified", entry.last_modified))
    wanted = None if request.header("if-range") else byte_range(request.header("range"), size)
    if wanted is False:
        return Reply(416, [("content-range", f"bytes */{size}"), ("content-length", "0")])
    if isinstance(wanted, tuple):
        first, last = wanted
        length = last - first + 1
        headers += [("content-range", f"bytes {first}-{last}/{size}")]
        headers.append(("content-length", str(length)))
        body = _read(entry, cache, first, length, on_cut=None)
        return Reply(206, headers, b"" if request.method == "HEAD" else body)
    headers.append(("content-length", str(size)))
    if request.method == "HEAD":
        return Reply(200, headers)
    return Reply(200, headers, _read(entry, cache, 0, size, on_cut=on_cut))


async def _read(
    entry: CacheEntry,
    cache: FileCache,
    offset: int,
    length: int,
    *,
    on_cut: Callable[[], None] | None,
) -> AsyncIterator[bytes]:
    """`length` bytes from `offset`; with `on_cut`, the whole file, hashed as it goes."""
    digest = hashlib.sha256() if on_cut is not None else None
    handle = await asyncio.to_thread(entry.path.open, "rb")
    try:
        await asyncio.to_thread(handle.seek, offset)
        left = length
        while left > 0:
            chunk = await asyncio.to_thread(_read_chunk, handle, min(_CHUNK, left), digest)
            if not chunk:
                raise CorruptDownload(f"{entry.path} is shorter than when it was stored")
            left -= len(chunk)
            if left == 0 and on_cut is not None and digest and digest.hexdigest() != entry.sha256:
                # Hold the last bytes back: the child must not complete this download.
                on_cut()
                cache.remove(entry.path)
                log.warning("cache: %s no longer matches its hash; removed", entry.path)
                raise CorruptDownload(f"{entry.path} no longer matches its hash")
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _read_chunk(handle: object, size: int, digest: hashlib._Hash | None) -> bytes:
    chunk: bytes = handle.read(size)  # type: ignore[attr-defined]
    if digest is not None:
        digest.update(chunk)
    return chunk


def teed_reply(
    response: httpx.Response, writer: CacheWriter, url: str, on_cut: Callable[[], None]
) -> Reply:
    """The index's 200 answer for `url` streamed to the child and into `writer`;
    `on_cut` is called when the download is cut because it does not match its hash."""
    started: list[bool] = []
    body = _tee(response, writer, url, on_cut, started)

    async def close() -> None:
        try:
            await response.aclose()
        finally:
            if not started:  # the body never began (the reply failed first): nothing else will
                writer.abort()

    return Reply(response.status_code, forwarded_headers(response), body, close=close)


async def _tee(
    response: httpx.Response,
    writer: CacheWriter,
    url: str,
    on_cut: Callable[[], None],
    started: list[bool],
) -> AsyncIterator[bytes]:
    """The body to the child, one chunk behind: the last chunk waits for the verdict."""
    started.append(True)
    length = response.headers.get("content-length", "")
    large = length.isascii() and length.isdigit() and int(length) >= _OFFLOAD_MIN_BYTES
    sink = _Sink(writer, offload=large)
    held: bytes | None = None
    done = False
    try:
        async for chunk in response.aiter_raw():
            if not chunk:
                continue
            await sink.write(chunk)
            if held is not None:
                yield held
            held = chunk  # one chunk behind: the last one waits for the verdict
        await sink.drain()
        if not writer.matches():
            on_cut()
            log.warning("%s does not match the hash its page gave; download cut", url)
            raise CorruptDownload(f"{url} does not match the hash its page gave")
        if held is not None:
            yield held
        done = True
        # Shielded: a run ending now (its tasks cancelled) must not drop a commit that
        # nothing would abort either.
        await asyncio.shield(asyncio.to_thread(writer.commit))
    finally:
        sink.close(abort=not done)


class _Sink:
    """Where a teed body's chunks go: the writer itself, or, for a large body, a thread
    of its own that hashes and writes them in order beside the relay (on the event loop
    they held a 1 GiB download to about 0.4 GB/s on this machine). Earlier chunks reach
    the child before their hash is known, as they always did; `drain` waits until every
    chunk given is hashed, before the verdict."""

    def __init__(self, writer: CacheWriter, *, offload: bool) -> None:
        self._writer = writer
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="crane-cache") if offload else None
        )
        self._pending: deque[asyncio.Future[None]] = deque()

    async def write(self, chunk: bytes) -> None:
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            try:
                future = loop.run_in_executor(self._executor, self._writer.write, chunk)
            except RuntimeError:  # no thread to be had: in order, on the loop from here on
                await self.drain()
                self._executor.shutdown(wait=False)
                self._executor = None
            else:
                self._pending.append(future)
                while len(self._pending) > _MAX_PENDING_WRITES:
                    await self._pending.popleft()
                return
        self._writer.write(chunk)

    async def drain(self) -> None:
        while self._pending:
            await self._pending.popleft()

    def close(self, *, abort: bool) -> None:
        if self._executor is None:
            if abort:
                self._writer.abort()
            return
        if abort and all(future.done() for future in self._pending):
            # Every write is done (the verdict case): abort now, so that no temporary file
            # outlives the reply.
            self._writer.abort()
        elif abort:
            # In order after any write still pending: nothing writes once it is aborted.
            try:
                self._executor.submit(self._writer.abort)
            except RuntimeError:  # no thread for it: once the last pending write is done
                last = self._pending[-1] if self._pending else None
                if last is None or last.done():
                    self._writer.abort()
                else:
                    last.add_done_callback(lambda _done: self._writer.abort())
        self._executor.shutdown(wait=False)
