"""Registered private indexes: where they live on disk, how URLs are compared.

A `PrivateIndex` is everything crane needs to authenticate to one index. The
registry is one JSON file in the config dir, written atomically; a file that
cannot be parsed is reported by path and never rewritten.

`CRANE_HOME`, when set, holds both config (`$CRANE_HOME/config`) and state
(`$CRANE_HOME/state`); otherwise platformdirs chooses per platform.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from crane_launch.errors import CorruptFileError, UnknownIndexError, UsageError

__all__ = [
    "DEFAULT_SCOPES",
    "Origin",
    "PrivateIndex",
    "Registry",
    "atomic_write_text",
    "builtin_public_index",
    "closest",
    "config_dir",
    "normalise_url",
    "origin_of",
    "origin_url",
    "shown_url",
    "state_dir",
]

DEFAULT_SCOPES: tuple[str, ...] = ("openid", "offline_access")
_REGISTRY_VERSION = 1
_DEFAULT_PORTS = {"http": 80, "https": 443}


def config_dir() -> Path:
    home = os.environ.get("CRANE_HOME")
    if home:
        return Path(home) / "config"
    return Path(platformdirs.user_config_dir("crane", appauthor=False))


def state_dir() -> Path:
    home = os.environ.get("CRANE_HOME")
    if home:
        return Path(home) / "state"
    return Path(platformdirs.user_state_dir("crane", appauthor=False))


def builtin_public_index() -> str:
    """pip's own default index, read from pip so that crane names no registry host."""
    from pip._internal.models.index import PyPI  # slow import, needed rarely

    return normalise_url(PyPI.simple_url)


def normalise_url(url: str) -> str:
    """One spelling per index: lower-case scheme and host, no default port, one trailing slash.

    Raises `UsageError` for what cannot be an index URL: no http(s) scheme, no host,
    embedded credentials (they would end up in argv and logs), a query or a fragment.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise UsageError(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UsageError("index URLs must not carry credentials; crane supplies them")
    if parts.query or parts.fragment:
        raise UsageError(f"{url!r}: an index URL has no query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url!r}: {exc}") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    while "//" in path:
        path = path.replace("//", "/")
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((scheme, netloc, path, "", ""))


class Origin(NamedTuple):
    """What "same origin" compares: lower-case scheme and host, the port always given.

    One type for every origin in crane (the proxy's private origins, link targets,
    redirect targets). A named tuple, so it is hashable and compares equal to the plain
    `(scheme, host, port)` tuple it replaces.
    """

    scheme: str
    host: str
    """Lower case, without brackets (an IPv6 literal is `::1`, not `[::1]`)."""
    port: int


_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")


def origin_of(url: str) -> Origin:
    """The origin of the absolute URL `url`: its port, or the scheme's default when it
    names none (0 for a scheme without one).

    Raises `ValueError` when the port is not a number in 0-65535 or the host is a
    malformed IPv6 literal.
    """
    parts = urlsplit(url)
    if _AMBIGUOUS.search(parts.netloc):
        # Parsers disagree on these (a WHATWG parser ends the host at `\`, Python's does
        # not): the host crane would judge need not be the one the tool connects to.
        raise ValueError(f"ambiguous URL authority: {parts.netloc[:80]!r}")
    scheme = parts.scheme.lower()
    port = parts.port
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return Origin(scheme, (parts.hostname or "").lower(), port)


def origin_url(origin: Origin) -> str:
    """`scheme://host[:port]` for `origin`: brackets for IPv6, no default port."""
    shown = f"[{origin.host}]" if ":" in origin.host else origin.host
    if origin.port == _DEFAULT_PORTS.get(origin.scheme):
        return f"{origin.scheme}://{shown}"
    return f"{origin.scheme}://{shown}:{origin.port}"


def shown_url(url: str) -> str:
    """`url` as crane prints it: without userinfo, query and fragment, which may carry a
    secret or a login flow's state. A text without a scheme is returned as it is."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def closest(url: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(url, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


@dataclass(frozen=True)
class PrivateIndex:
    """How to authenticate to one private index. Holds no secret."""

    url: str
    client_id: str
    token_url: str
    device_url: str
    issuer: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    resource: str | None = None
    audience: str | None = None
    public_index: str | None = None
    revocation_url: str | None = None
    probe_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scopes"] = list(self.scopes)
        extra = data.pop("extra")
        return {k: v for k, v in {**extra, **data}.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrivateIndex:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        known["scopes"] = tuple(known.get("scopes", DEFAULT_SCOPES))
        return cls(**known, extra=extra)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    The parent directory is created 0700 if missing. The file gets `mode` before any byte
    is written, so a secret is never readable by others, even briefly.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Registry:
    """The registered indexes, keyed by normalised URL. Load, change, then `save()`."""

    def __init__(self, path: Path, indexes: dict[str, PrivateIndex] | None = None) -> None:
        self.path = path
        self._indexes: dict[str, PrivateIndex] = dict(indexes or {})

    @classmethod
    def default_path(cls) -> Path:
        return config_dir() / "indexes.json"

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        path = path or cls.default_path()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CorruptFileError(path, f"cannot be read ({exc.strerror})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("indexes"), list):
                raise ValueError("no 'indexes' list")
            if not all(isinstance(item, dict) for item in data["indexes"]):
                raise ValueError("an index entry is not an object")
            indexes = [PrivateIndex.from_json(item) for item in data["indexes"]]
            if not all(isinstance(index.url, str) for index in indexes):
                raise ValueError("an index url is not a string")
            by_url = {normalise_url(index.url): index for index in indexes}
        except (ValueError, TypeError, UsageError) as exc:
            raise CorruptFileError(path, f"is not a valid crane index registry ({exc})") from None
        return cls(path, by_url)

    def save(self) -> None:
        data = {
            "version": _REGISTRY_VERSION,
            "indexes": [index.to_json() for index in self._indexes.values()],
        }
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n", mode=0o600)

    def __iter__(self) -> Iterator[PrivateIndex]:
        return iter(self._indexes.values())

    def __len__(self) -> int:
        return len(self._indexes)

    def find(self, url: str) -> PrivateIndex | None:
        """The registered index for `url`, in any spelling; None when not registered."""
        try:
            return self._indexes.get(normalise_url(url))
        except UsageError:
            return None

    def get(self, url: str) -> PrivateIndex:
        """Like `find`, but an unknown URL is an error that suggests the closest one."""
        index = self.find(url)
        if index is None:
            raise UnknownIndexError(url, closest(url, self._indexes))
        return index

    def put(self, index: PrivateIndex) -> bool:
        """Add or replace; True when the URL was already registered."""
        key = normalise_url(index.url)
        existed = key in self._indexes
        self._indexes[key] = dataclasses.replace(index, url=key)
        return existed

    def remove(self, url: str) -> PrivateIndex:
        index = self.get(url)
        del self._indexes[index.url]
        return index
