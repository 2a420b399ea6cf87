"""`crane cache dir | info | clean`: crane's cache of the private files it has served."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from crane_launch.config import cache_dir
from crane_launch.errors import ConfigError
from crane_launch.proxy.cache import FileCache

__all__ = ["clean", "directory", "info"]


def directory() -> Path:
    return cache_dir()


def _cache(environ: Mapping[str, str]) -> FileCache:
    try:
        return FileCache.for_run(environ, cache_dir())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def info(environ: Mapping[str, str]) -> list[str]:
    """What `crane cache info` prints, a line each."""
    cache = _cache(environ)
    entries = cache.entries()
    total = sum(size for _path, size, _used in entries)
    lines = [
        f"directory:  {cache.directory}",
        f"size:       {_size(total)} in {len(entries)} files (cap {_size(cache.max_size)}, "
        "CRANE_CACHE_MAX_SIZE)",
    ]
    last = cache.last_run()
    if last is None:
        lines.append("last run:   none recorded")
        return lines
    hits = int(last.get("hits", 0))
    misses = int(last.get("misses", 0))
    asked = hits + misses
    rate = f"{100 * hits / asked:.0f}%" if asked else "-"
    when = last.get("finished_at")
    stamp = (
        datetime.fromtimestamp(when, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(when, int | float)
        else "unknown"
    )
    lines.append(
        f"last run:   {stamp}: {hits} of {asked} files from the cache ({rate}), "
        f"{_size(int(last.get('bytes_from_cache', 0)))} not fetched, "
        f"{int(last.get('stored', 0))} stored, {int(last.get('rejected', 0))} rejected"
    )
    return lines


def clean(environ: Mapping[str, str]) -> str:
    cache = _cache(environ)
    removed = cache.clean()
    return f"removed {removed} cached files from {cache.directory}"
