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
    hits, misses = _count(last, "hits"), _count(last, "misses")
    asked = hits + misses
    rate = f"{100 * hits / asked:.0f}%" if asked else "-"
    try:
        when = datetime.fromtimestamp(float(last["finished_at"]), tz=UTC)
        stamp = when.strftime("%Y-%m-%d %H:%M:%S UTC")
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        stamp = "unknown time"
    lines.append(
        f"last run:   {stamp}: {hits} of {asked} files from the cache ({rate}), "
        f"{_size(_count(last, 'bytes_from_cache'))} not fetched, "
        f"{_count(last, 'stored')} stored, {_count(last, 'rejected')} rejected"
    )
    return lines


def _count(record: Mapping[str, object], name: str) -> int:
    """A non-negative whole number from `last-run.json`; 0 for anything else."""
    value = record.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def clean(environ: Mapping[str, str]) -> str:
    cache = _cache(environ)
    removed = cache.clean()
    return f"removed {removed} cached files from {cache.directory}"
