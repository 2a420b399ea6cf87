"""crane's index door in a process of its own, as `crane pip ...` runs it.

    python door_proc.py UPSTREAM_SIMPLE_URL [--profile FILE] [--max-seconds S]

Opens the door with `crane_launch.launch.doors.open_index_door` (credential probe included)
in front of UPSTREAM_SIMPLE_URL, which is also the public index, with a fake token source
(the upstream checks no token; the door still adds `Authorization: Bearer x`). Prints one
line

    READY {"index_url": ..., "files_url": ..., "open_ms": ..., "pid": ...}

and serves until its stdin is closed (or `--max-seconds` pass), then closes the door.
A separate process keeps the benchmark's own client off the door's GIL, and lets the
benchmark sample the door's RSS.

`--profile FILE`: cProfile the door's event-loop thread (where every request is handled)
and write the stats to FILE on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import threading
import time

from crane_launch.config import PrivateIndex


def bench_index(upstream: str) -> PrivateIndex:
    """The benchmark's upstream as a registered index (its OAuth endpoints are never used:
    the tokens are fake)."""
    return PrivateIndex(
        url=upstream,
        client_id="bench",
        token_url="http://127.0.0.1:9/token",
        device_url="http://127.0.0.1:9/device",
    )


class FakeTokens:
    """A TokenSource for an upstream that checks no token."""

    def authorization(self) -> str:
        return "Bearer x"

    def reauthorized(self, stale: str) -> str:
        return "Bearer x"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("--profile")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--cache", help="serve private files through crane's cache in DIR")
    args = parser.parse_args()

    from pathlib import Path

    from crane_launch.launch.doors import GuardedDoors
    from crane_launch.proxy.cache import FileCache

    cache = FileCache(Path(args.cache)) if args.cache else None

    index = bench_index(args.upstream)
    started = time.perf_counter()
    # The run's real shape: the index door and the guard on one loopback server.
    with GuardedDoors(
        [(index, FakeTokens())], args.upstream, pass_through=frozenset(), cache=cache
    ) as door:
        open_ms = (time.perf_counter() - started) * 1000
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            _on_loop(door.loop, profiler.enable)
        index_url = door.index_url
        ready = {
            "index_url": index_url,
            "files_url": index_url.removesuffix("/simple/") + "/files",
            "proxy_url": door.proxy_url,
            "open_ms": round(open_ms, 2),
            "pid": os.getpid(),
        }
        print("READY " + json.dumps(ready), flush=True)
        closed = threading.Event()

        def wait_stdin() -> None:
            sys.stdin.read()
            closed.set()

        threading.Thread(target=wait_stdin, daemon=True).start()
        closed.wait(args.max_seconds)
        if profiler is not None:
            _on_loop(door.loop, profiler.disable)
            profiler.dump_stats(args.profile)
    return 0


def _on_loop(loop: asyncio.AbstractEventLoop, func: object) -> None:
    """Run `func` on the door's event-loop thread (cProfile profiles one thread)."""

    async def call() -> None:
        func()  # type: ignore[operator]

    asyncio.run_coroutine_threadsafe(call(), loop).result(10)


if __name__ == "__main__":
    sys.exit(main())
