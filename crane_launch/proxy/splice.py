"""Zero-copy relay of a body from one socket to another with `splice(2)` (Linux).

A file from a plain-HTTP index crosses the door without entering Python: the kernel
moves it from the upstream socket into a pipe and from the pipe into the child's
socket. Copying it through Python instead costs about a second of CPU per GiB in the
door's one event-loop thread (measured in `task bench`); a prototype of this relay ran
at the speed of the direct path (integration notes).

Both sockets belong to asyncio transports. The caller has paused the upstream one's
reading and emptied the child's write buffer, so neither transport touches its socket
while the relay runs; the relay waits on duplicates of the descriptors (asyncio refuses
to watch a descriptor a transport owns).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

__all__ = ["AVAILABLE", "MIN_BYTES", "relay"]

AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
MIN_BYTES = 256 * 1024
"""Bodies smaller than this are copied: a pipe and two waits cost more than they save."""

_PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class RelayError(ConnectionError):
    """The relay stopped before the body's end (either side failed or went away)."""


async def relay(source: int, target: int, count: int, timeout: float) -> None:
    """Move exactly `count` bytes from socket `source` to socket `target` (both
    non-blocking). Raises RelayError when either side ends or fails first, TimeoutError
    when neither moves for `timeout` seconds."""
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    source_dup = os.dup(source)
    target_dup = os.dup(target)
    try:
        with contextlib.suppress(OSError):
            import fcntl

            fcntl.fcntl(write_end, _F_SETPIPE_SZ, _PIPE_SIZE)
        remaining, in_pipe = count, 0
        while remaining or in_pipe:
            moved = False
            if remaining and in_pipe < _PIPE_SIZE:
                got = _splice(source, write_end, min(remaining, _PIPE_SIZE - in_pipe))
                if got == 0:
                    raise RelayError("the index closed the connection mid-body")
                if got is not None:
                    remaining -= got
                    in_pipe += got
                    moved = True
            if in_pipe:
                sent = _splice(read_end, target, in_pipe)
                if sent:
                    in_pipe -= sent
                    moved = True
            if not moved:
                await _wait(
                    loop,
                    source_dup if remaining and in_pipe < _PIPE_SIZE else None,
                    target_dup if in_pipe else None,
                    timeout,
                )
    finally:
        for fd in (read_end, write_end, source_dup, target_dup):
            os.close(fd)


def _splice(source: int, target: int, count: int) -> int | None:
    """Bytes moved; None when the move would block."""
    try:
        return os.splice(source, target, count, flags=_FLAGS)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise RelayError(exc.strerror or str(exc)) from None


async def _wait(
    loop: asyncio.AbstractEventLoop, readable: int | None, writable: int | None, timeout: float
) -> None:
    """Until `readable` can be read or `writable` written (whichever is given)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if readable is not None:
        loop.add_reader(readable, wake)
    if writable is not None:
        loop.add_writer(writable, wake)
    try:
        async with asyncio.timeout(timeout):
            await ready
    finally:
        if readable is not None:
            loop.remove_reader(readable)
        if writable is not None:
            loop.remove_writer(writable)
