"""crane's own cache of the private files the index door serves.

The door's URLs carry a one-time port and token, so the tools' own caches (keyed by URL)
never hit twice; this cache is keyed by what the index says of a file instead:

    <cache>/files/sha256/<aa>/<digest>        a file whose link carries its sha256
    <cache>/files/sha256/<aa>/<digest>.stamp  its stat stamp when crane last verified it
    <cache>/files/url/<key>                   a file without a hash (key: sha256 of its URL)
    <cache>/files/url/<key>.stamp             stamp, digest, ETag and Last-Modified
    <cache>/last-run.json                     hits and misses of the last run

Directories are 0700 and files 0600: private packages are confidential. A file is written
under a temporary name in its own directory, synced, verified and renamed into place, so
readers (other crane processes too) never see half a file. A stamp records the file's
inode, size, modification and change times when crane last verified its digest; a file
whose stamp no longer matches is hashed again before it is served, and a file that fails
is removed (then fetched from the index again). Served files are hashed as they stream,
so silent corruption that keeps the stamp is caught too (the download is cut, the entry
removed). The stamp's modification time is the entry's last use: least recently used
entries go first when the cache outgrows its cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "DEFAULT_MAX_SIZE",
    "CacheEntry",
    "CacheWriter",
    "FileCache",
    "RunStats",
    "parse_size",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 2 * 1024**3
"""2 GiB: a team's private wheels, several versions deep."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}")
_TEMP_NAME = re.compile(r"\.[0-9a-z._-]+\.tmp")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CHUNK = 1024 * 1024


def parse_size(text: str) -> int:
    """`500M`, `2G`, `1.5GiB`, `1048576` as bytes (binary units). `ValueError` otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 500M, 2G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass
class RunStats:
    """What one run's door did with the cache."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    rejected: int = 0
    bytes_from_cache: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "stored": self.stored,
            "rejected": self.rejected,
            "bytes_from_cache": self.bytes_from_cache,
            "finished_at": time.time(),
        }


@dataclass(frozen=True)
class CacheEntry:
    """A cached file ready to serve: its path, size and the digest it must have."""

    path: Path
    size: int
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None


def _stamp_of(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _digest_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class FileCache:
    """The cache at `directory`, capped at `max_size` bytes. Thread-safe for one process;
    safe across processes by atomic renames."""

    def __init__(self, directory: Path, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.directory = directory
        self.max_size = max_size
        self.stats = RunStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileCache({str(self.directory)!r})"

    @classmethod
    def for_run(cls, environ: Mapping[str, str], directory: Path) -> FileCache:
        """The cache at `directory` with the cap `CRANE_CACHE_MAX_SIZE` names (default 2 GiB).
        A cap that cannot be read is `ValueError` naming the variable."""
        text = environ.get("CRANE_CACHE_MAX_SIZE", "").strip()
        try:
            max_size = parse_size(text) if text else DEFAULT_MAX_SIZE
        except ValueError as exc:
            raise ValueError(f"CRANE_CACHE_MAX_SIZE: {exc}") from None
        return cls(directory, max_size=max_size)

    # -- places ---------------------------------------------------------------------------

    @property
    def files(self) -> Path:
        return self.directory / "files"

    def hashed_path(self, sha256: str) -> Path:
        return self.files / "sha256" / sha256[:2] / sha256

    def url_path(self, url: str) -> Path:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()
        return self.files / "url" / key[:2] / key

    def _ensure(self, directory: Path) -> None:
        """`directory` and every missing parent, each 0700 (`mkdir -p` would use the
        umask's mode for the parents)."""
        missing = []
        for part in (directory, *directory.parents):
            if part.is_dir():
                break
            missing.append(part)
        for part in reversed(missing):
            with contextlib.suppress(FileExistsError):
                part.mkdir(mode=0o700)

    # -- reading --------------------------------------------------------------------------

    def lookup(self, sha256: str) -> CacheEntry | None:
        """The verified entry for `sha256`, or None (absent, or failed and removed)."""
        sha256 = sha256.lower()
        if not _HEX64.fullmatch(sha256):
            return None
        path = self.hashed_path(sha256)
        return self._verified(path, sha256, {})

    def lookup_url(self, url: str) -> CacheEntry | None:
        """The entry stored for the hashless file at `url`, with its validators, or None."""
        path = self.url_path(url)
        meta = self._read_stamp(path)
        digest = meta.get("sha256") if meta else None
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            return None
        return self._verified(path, digest, meta or {})

    def _read_stamp(self, path: Path) -> dict[str, Any] | None:
        """The stamp beside `path`, its fields checked; None when absent or unusable (the
        file is then hashed again, and stamped anew)."""
        stamp = path.with_name(path.name + ".stamp")
        try:
            if stamp.is_symlink():
                return None
            data = json.loads(stamp.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        for name in ("etag", "last_modified", "content_type"):
            value = data.get(name)
            if value is not None and not (
                isinstance(value, str) and _HEADER_VALUE.fullmatch(value)
            ):
                return None
        digest = data.get("sha256")
        if digest is not None and not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
            return None
        recorded = data.get("stamp")
        if recorded is not None and not (
            isinstance(recorded, dict)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in recorded.values())
        ):
            return None
        return data

    def _verified(self, path: Path, digest: str, meta: dict[str, Any]) -> CacheEntry | None:
        try:
            stamp = _stamp_of(path)
        except OSError:
            return None
        recorded = self._read_stamp(path) or {}
        if recorded.get("stamp") != stamp:
            # Changed since crane verified it (or never stamped): check it now.
            try:
                actual = _digest_of(path)
            except OSError:
                return None
            if actual != digest:
                log.warning("cache: %s does not match its hash; fetching it again", path)
                self.remove(path)
                with self._lock:
                    self.stats.rejected += 1
                return None
            self._write_stamp(path, {**recorded, **meta, "sha256": digest, "stamp": stamp})
        else:
            self._touch(path)
        return CacheEntry(
            path,
            stamp["size"],
            digest,
            etag=recorded.get("etag") or meta.get("etag"),
            last_modified=recorded.get("last_modified") or meta.get("last_modified"),
            content_type=recorded.get("content_type") or meta.get("content_type"),
        )

    def _touch(self, path: Path) -> None:
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(path.with_name(path.name + ".stamp"), follow_symlinks=False)

    def remove(self, path: Path) -> None:
        """Remove an entry and its stamp, as far as the file system lets crane."""
        for target in (path, path.with_name(path.name + ".stamp")):
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.debug("cache: cannot remove %s (%s)", target, exc.strerror or exc)

    def hit(self, size: int) -> None:
        with self._lock:
            self.stats.hits += 1
            self.stats.bytes_from_cache += size

    def miss(self) -> None:
        with self._lock:
            self.stats.misses += 1

    # -- writing --------------------------------------------------------------------------

    def writer(
        self,
        *,
        sha256: str | None,
        url: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        content_type: str | None = None,
    ) -> CacheWriter | None:
        """A writer for a file that must hash to `sha256` (stored under it), or for the
        hashless file at `url` (stored under the URL with its validators). None when the
        cache cannot be written (a full or read-only disk: the run goes on uncached)."""
        if sha256 is not None:
            sha256 = sha256.lower()
            if not _HEX64.fullmatch(sha256):
                return None
            target = self.hashed_path(sha256)
        elif url is not None and (etag or last_modified):
            target = self.url_path(url)
        else:
            return None
        try:
            self._ensure(target.parent)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{target.name[:16]}.", suffix=".tmp", dir=target.parent
            )
            os.fchmod(fd, 0o600)
        except OSError as exc:
            log.debug("cache: cannot write in %s (%s)", target.parent, exc.strerror)
            return None
        meta = {
            "etag": etag,
            "last_modified": last_modified,
            "content_type": content_type,
            "url_key": sha256 is None,
        }
        return CacheWriter(self, target, Path(tmp), os.fdopen(fd, "wb"), sha256=sha256, meta=meta)

    def _commit(self, target: Path, tmp: Path, digest: str, meta: dict[str, Any]) -> None:
        os.replace(tmp, target)
        self._write_stamp(target, {**meta, "sha256": digest, "stamp": _stamp_of(target)})
        with self._lock:
            self.stats.stored += 1
        self.evict()

    def _write_stamp(self, path: Path, data: dict[str, Any]) -> None:
        stamp = path.with_name(path.name + ".stamp")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".stamp.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            log.debug("cache: cannot stamp %s (%s)", path, exc.strerror)
            return
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.replace(tmp, stamp)
        except OSError as exc:
            log.debug("cache: cannot stamp %s (%s)", path, exc.strerror)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # -- size -----------------------------------------------------------------------------

    def _walk(self) -> list[Path]:
        """The regular files of crane's own layout (`files/{sha256,url}/<aa>/<name>`),
        found without following a symbolic link: nothing outside the cache is touched."""
        found: list[Path] = []
        for kind in ("sha256", "url"):
            top = self.files / kind
            if top.is_symlink() or not top.is_dir():
                continue
            try:
                shards = list(top.iterdir())
            except OSError:
                continue
            for shard in shards:
                if shard.is_symlink() or not shard.is_dir() or len(shard.name) != 2:
                    continue
                try:
                    names = list(shard.iterdir())
                except OSError:
                    continue
                found += [p for p in names if not p.is_symlink() and p.is_file()]
        return found

    def entries(self) -> list[tuple[Path, int, float]]:
        """Every entry: its path, size and last use (its stamp's modification time)."""
        found = []
        for path in self._walk():
            if not _ENTRY_NAME.fullmatch(path.name):
                continue
            try:
                size = path.lstat().st_size
            except OSError:
                continue
            try:
                used = path.with_name(path.name + ".stamp").lstat().st_mtime
            except OSError:
                used = 0.0
            found.append((path, size, used))
        return found

    def evict(self) -> None:
        """Remove least recently used entries until the cache fits its cap."""
        entries = self.entries()
        total = sum(size for _path, size, _used in entries)
        if total <= self.max_size:
            return
        for path, size, _used in sorted(entries, key=lambda entry: entry[2]):
            self.remove(path)
            total -= size
            log.debug("cache: evicted %s", path.name)
            if total <= self.max_size:
                return

    def clean(self) -> int:
        """Remove every entry, its stamp, and crane's stray temporary files; the number of
        entries removed."""
        removed = len(self.entries())
        for path in self._walk():
            name = path.name
            ours = (
                _ENTRY_NAME.fullmatch(name)
                or (name.endswith(".stamp") and _ENTRY_NAME.fullmatch(name[: -len(".stamp")]))
                or _TEMP_NAME.fullmatch(name)
            )
            if ours:
                with contextlib.suppress(OSError):
                    path.unlink()
        with contextlib.suppress(OSError):
            (self.directory / "last-run.json").unlink()
        return removed

    # -- statistics -----------------------------------------------------------------------

    def save_stats(self) -> None:
        """Record this run's hits and misses for `crane cache info` (best effort)."""
        if not (self.stats.hits or self.stats.misses or self.stats.stored):
            return
        path = self.directory / "last-run.json"
        try:
            self._ensure(self.directory)
            fd, tmp = tempfile.mkstemp(prefix=".last-run.", suffix=".tmp", dir=self.directory)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.stats.to_json(), handle)
            os.replace(tmp, path)
        except OSError as exc:
            log.debug("cache: cannot record the run (%s)", exc.strerror)

    def last_run(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / "last-run.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


class CacheWriter:
    """One file on its way into the cache: written as it streams, hashed, then committed
    (renamed into place) or aborted (removed)."""

    def __init__(
        self,
        cache: FileCache,
        target: Path,
        tmp: Path,
        handle: BinaryIO,
        *,
        sha256: str | None,
        meta: dict[str, Any],
    ) -> None:
        self._cache = cache
        self._target = target
        self._tmp = tmp
        self._handle = handle
        self._expected = sha256
        self._meta = meta
        self._hash = hashlib.sha256()
        self._failed = False

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        if self._failed:
            return
        try:
            self._handle.write(chunk)
        except OSError as exc:
            log.debug("cache: writing %s failed (%s)", self._tmp, exc.strerror)
            self._failed = True

    def matches(self) -> bool:
        """Whether what was written hashes to the expected digest (always, without one)."""
        return self._expected is None or self._hash.hexdigest() == self._expected

    def commit(self) -> None:
        """Sync and move the file into place; a file that does not match is dropped."""
        digest = self._hash.hexdigest()
        try:
            if self._failed or not self.matches():
                self.abort()
                return
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._cache._commit(self._target, self._tmp, digest, self._meta)
        except OSError as exc:
            log.debug("cache: storing %s failed (%s)", self._target, exc.strerror)
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
