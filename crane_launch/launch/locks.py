"""Verify lock files before a tool installs from them: a project the private index serves
must be locked from the private index and nowhere else.

A tool that installs from a lock file does not resolve again: it fetches each package from
the place the lock names. A lock written before crane was in use, or edited by someone
else, can pin a project the private index serves to a public registry, a file host, a URL
or a git repository, and the install would take it from there. `read_lock` reads what each
lock entry would be fetched from; `lock_violations` says which of the private index's
projects would come from anywhere else.

Formats (checked against the tools' own code and documentation)
--------------------------------------------------------------
uv.lock (uv 0.13.x)
    `[[package]]` with `name`, `version` and `source`, an inline table with one of
    `registry` (an index URL, or a path for a local find-links directory), `url` (with an
    optional `subdirectory`), `git`, or the user's own files `path`, `directory`,
    `editable` and `virtual`. `sdist = { url | path, ... }` and `wheels = [{ url | path,
    ... }]` name the files; a `path` is a file of a local registry, except for the user's
    own packages, whose files are their own.
poetry.lock (poetry 2.x)
    `[[package]]` with `name`, `version` and, except for the implicit public index, a
    `[package.source]` with `type` (`legacy`, `url`, `git`, `file`, `directory`), `url` and
    `reference`. `files = [{file, hash}]` carry no URLs. Poetry installs a `legacy` package
    from the repository *named* by `reference` (matched case-insensitively against the
    `[[tool.poetry.source]]` names in pyproject.toml), not from the lock's `url`; so both
    the URL the reference resolves to and the lock's own `url` are judged, and a reference
    naming no source with a URL is a violation. A package without a source is installed
    from the public index (or the first source, when the public index is off): a violation
    for a project the private index serves. `file` and `directory` are the user's own
    files.
pdm.lock (pdm 2.x, lock_version 4.x)
    `[[package]]` with `name`, `version` and `files = [{file, hash}]`: by default no URL,
    and pdm fetches the files from the project's sources at install time, through the
    guard, so such an entry is judged there, not here. With the `static_urls` strategy a
    file is `{url, hash}` and pdm downloads that URL: judged like an sdist or wheel. `git`
    and `url` entries are a repository and a direct URL; `path` (and `editable`) the
    user's own files.
pylock.toml, pylock.<name>.toml (PEP 751, lock-version 1.0)
    `[[packages]]` with `name`, optional `version`, `index` (an index URL), `vcs = {url |
    path}`, `directory = {path}`, `archive = {url | path}`, `sdist = {url | path}` and
    `wheels = [{url | path}]`. A `directory`, a `vcs` path and an `archive` path are the
    user's own files; `sdist`/`wheels` paths are files of a local registry.

Judging (`lock_violations`)
---------------------------
Only packages the private index serves are judged. An index URL (uv's `registry`, pylock's
`index`, poetry's resolved `reference` and its `url`) must equal the private index URL after
`config.normalise_url`; every sdist and wheel location must have the private index's origin
(scheme, host, port); URL and VCS sources are always violations. The user's own files
(path, directory, editable, virtual) are allowed.

Everything here is pure: files are read only through the `ReadText` given, and a directory
is listed only through the `ListDir` given.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from crane_launch.config import normalise_url, origin_of, shown_url
from crane_launch.errors import ConfigError, UsageError
from crane_launch.launch.files import ReadText, display_path, read_unless_missing
from crane_launch.launch.project_scan import load_toml, table_at, tables
from crane_launch.proxy.routing import normalise_project

__all__ = [
    "ListDir",
    "LockViolation",
    "LockedPackage",
    "SourceKind",
    "find_locks",
    "lock_violations",
    "read_lock",
]

SourceKind = Literal[
    "registry", "reference", "missing-reference", "sdist", "wheel", "file", "url", "vcs", "other"
]
"""What a location in `LockedPackage.sources` is, and so how it is judged:

- `registry`: an index URL written in the lock; must be the private index URL.
- `reference`: the URL of the poetry source a `legacy` entry's `reference` names; ditto.
- `missing-reference`: a poetry `reference` naming no source with a URL (the location is
  the reference as written); always a violation.
- `sdist`, `wheel`, `file`: a file to download; must be on the private index's origin.
- `url`, `vcs`: a direct URL or a version-control repository; always a violation.
- `other`: a kind of source crane does not know; always a violation.
"""

ListDir = Callable[[Path], Iterable[str]]
"""The names of the entries of a directory; raises `OSError` like `os.listdir`."""

_PUBLIC_DEFAULT = "locked from the tool's default public index"
_PYLOCK_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")
_UV_LOCAL_KEYS = frozenset({"path", "directory", "editable", "virtual"})


@dataclass(frozen=True)
class LockedPackage:
    """One entry of a lock file and every place it would be fetched from."""

    name: str
    """PEP 503-normalised project name."""
    version: str | None
    sources: tuple[str, ...]
    """Every location, as written, the lock would fetch the package from other than the
    user's own files: index URLs, sdist/wheel/archive file URLs (or paths of a local
    registry), direct URLs and VCS URLs."""
    local: bool
    """The entry is the user's own files (path, directory, editable, virtual, workspace)."""
    place: str
    """`uv.lock:123`: the lock file (relative to the project when under it) and the 1-based
    line of the entry's `[[package]]`/`[[packages]]` header (just the file when unknown)."""
    kinds: tuple[SourceKind, ...] = ()
    """The kind of each of `sources`, in the same order; left empty, every source is judged
    as a file to download (it must be on the private index's origin)."""

    def __post_init__(self) -> None:
        if not self.kinds:
            object.__setattr__(self, "kinds", ("file",) * len(self.sources))
        elif len(self.kinds) != len(self.sources):
            raise ValueError("LockedPackage: kinds and sources differ in length")


@dataclass(frozen=True)
class LockViolation:
    """A package the private index serves that its lock would fetch from elsewhere."""

    package: LockedPackage
    reason: str
    """One line: where it is locked from instead."""

    def message(self, private_url: str) -> str:
        """One line naming the package, its place, where it is locked from and the fix."""
        package = self.package
        what = f"{package.name} {package.version}" if package.version else package.name
        joiner = " is " if self.reason.startswith("locked ") else ": "
        return (
            f"{package.place}: {what}{joiner}{self.reason}, but private index {private_url} "
            f"serves {package.name}; re-lock with crane ({_relock_hint(package.place)}) "
            "or remove the entry"
        )


def _relock_hint(place: str) -> str:
    file_name = Path(place.rsplit(":", 1)[0] if ":" in place else place).name
    if file_name == "uv.lock":
        return "`crane uv lock`"
    if file_name == "poetry.lock":
        return "`crane poetry lock`"
    if file_name == "pdm.lock":
        return "`crane pdm lock`"
    return f"`crane pip lock -o {file_name} ...`"


# --- finding and reading lock files -------------------------------------------------------


def _list_dir(directory: Path) -> list[str]:
    return os.listdir(directory)


def find_locks(
    project_dir: Path, *, read_text: ReadText = Path.read_text, list_dir: ListDir = _list_dir
) -> list[Path]:
    """The lock files present in `project_dir`: uv.lock, poetry.lock, pdm.lock, pylock.toml and then
    pylock.<name>.toml in name order. A file that exists but cannot be read is listed (and
    `read_lock` reports it); an unlistable directory is searched for the fixed names only."""
    try:
        named = sorted(name for name in list_dir(project_dir) if _PYLOCK_NAME.match(name))
    except OSError:
        named = []
    candidates = dict.fromkeys(["uv.lock", "poetry.lock", "pdm.lock", "pylock.toml", *named])
    return [project_dir / name for name in candidates if _exists(project_dir / name, read_text)]


def _exists(path: Path, read_text: ReadText) -> bool:
    try:
        read_text(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    except (OSError, UnicodeDecodeError):
        return True
    return True


def read_lock(
    path: Path, *, project_dir: Path, read_text: ReadText = Path.read_text
) -> list[LockedPackage]:
    """The packages of the lock file at `path` (relative paths are taken from `project_dir`),
    chosen by its file name: uv.lock, poetry.lock, pylock.toml or pylock.<name>.toml.

    [] when there is no such file. Raises `ConfigError` naming the file, on one line, when it
    cannot be read, is not TOML, is not a known lock file name or has the wrong shape.
    """
    full = project_dir / path
    key, reader = _reader_for(full)
    text = read_unless_missing(read_text, full)
    if text is None:
        return []
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ConfigError(f"{full}: is not valid TOML ({' '.join(str(exc).split())})") from None
    shape = _Shape(full)
    entries = shape.array(data, key)
    found = reader(entries, shape, project_dir, read_text)
    lines = _header_lines(text, key, len(entries))
    shown = display_path(full, project_dir)
    return [
        _package(entry, located, shape, f"{shown}:{line}" if line else shown)
        for entry, located, line in zip(entries, found, lines, strict=True)
    ]


def _header_lines(text: str, key: str, count: int) -> list[int | None]:
    """The 1-based line of each `[[key]]` header, in order; all None when the headers found
    do not match the entries parsed (an inline array, say)."""
    header = re.compile(rf"^\s*\[\[\s*{key}\s*\]\]\s*(#.*)?$")
    found = [number for number, line in enumerate(text.splitlines(), 1) if header.match(line)]
    lines: list[int | None] = list(found) if len(found) == count else [None] * count
    return lines


def _package(entry: dict[str, Any], located: _Located, shape: _Shape, place: str) -> LockedPackage:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise shape.error(f"the entry at {place} has no name")
    version = entry.get("version")
    if version is not None and not isinstance(version, str):
        raise shape.error(f"the version of {name} is not a string")
    return LockedPackage(
        name=normalise_project(name),
        version=version,
        sources=tuple(location for _, location in located.found),
        local=located.local,
        place=place,
        kinds=tuple(kind for kind, _ in located.found),
    )


# --- the shape of a lock file -------------------------------------------------------------


@dataclass
class _Shape:
    """Reads values of the expected types, else raises a one-line `ConfigError`."""

    path: Path

    def error(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {problem}; is this a lock file?")

    def array(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(f"`{key}` is not an array of tables")
        return value

    def table(self, data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.error(f"`{key}` of {data.get('name', 'an entry')} is not a table")
        return value

    def text(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"`{key}` of {data.get('name', 'an entry')} is not a string")
        return value

    def artifacts(self, entry: Mapping[str, Any]) -> list[tuple[SourceKind, dict[str, Any]]]:
        sdist = self.table(entry, "sdist")
        found: list[tuple[SourceKind, dict[str, Any]]] = [("sdist", sdist)] if sdist else []
        return found + [("wheel", wheel) for wheel in self.array(entry, "wheels")]


@dataclass
class _Located:
    """Where one entry would be fetched from."""

    found: list[tuple[SourceKind, str]] = field(default_factory=list)
    local: bool = False

    def add(self, kind: SourceKind, location: str | None) -> None:
        if location is not None:
            self.found.append((kind, location))

    def add_files(self, shape: _Shape, entry: Mapping[str, Any]) -> None:
        """The sdist and wheel URLs; their paths too unless the entry is the user's own."""
        for kind, artifact in shape.artifacts(entry):
            url = shape.text(artifact, "url")
            if url is not None:
                self.add(kind, url)
            elif not self.local:
                self.add(kind, shape.text(artifact, "path"))


_Reader = Callable[[list[dict[str, Any]], _Shape, Path, ReadText], list[_Located]]


def _reader_for(path: Path) -> tuple[str, _Reader]:
    if path.name == "uv.lock":
        return "package", _read_uv
    if path.name == "poetry.lock":
        return "package", _read_poetry
    if path.name == "pdm.lock":
        return "package", _read_pdm
    if _PYLOCK_NAME.match(path.name):
        return "packages", _read_pylock
    raise ConfigError(
        f"{path}: not a lock file crane reads (uv.lock, poetry.lock, pdm.lock, pylock.toml)"
    )


# --- uv.lock ------------------------------------------------------------------------------


def _read_uv(
    entries: list[dict[str, Any]], shape: _Shape, project_dir: Path, read_text: ReadText
) -> list[_Located]:
    del project_dir, read_text
    return [_uv_located(entry, shape) for entry in entries]


def _uv_located(entry: dict[str, Any], shape: _Shape) -> _Located:
    located = _Located()
    source = shape.table(entry, "source") or {}
    for key in source:
        value = shape.text(source, key)
        if key in _UV_LOCAL_KEYS:
            located.local = True
        elif key == "registry":
            located.add("registry", value)
        elif key == "url":
            located.add("url", value)
        elif key == "git":
            located.add("vcs", value)
        elif key != "subdirectory":
            located.add("other", f"{key} = {value}")
    located.add_files(shape, entry)
    return located


# --- poetry.lock --------------------------------------------------------------------------


def _read_poetry(
    entries: list[dict[str, Any]], shape: _Shape, project_dir: Path, read_text: ReadText
) -> list[_Located]:
    needs_sources = any(
        (shape.table(entry, "source") or {}).get("type") not in (None, "file", "directory")
        for entry in entries
    )
    sources = _poetry_sources(project_dir, read_text) if needs_sources else {}
    return [_poetry_located(entry, shape, sources) for entry in entries]


def _poetry_sources(project_dir: Path, read_text: ReadText) -> dict[str, str | None] | None:
    """The `[[tool.poetry.source]]` URLs by lower-case name (poetry matches names without
    case); the first of a name wins. None for a source without a URL. None in all when
    there is no pyproject.toml beside the lock (a lock audited alone): then an entry is
    judged by the URL the lock records."""
    pyproject = load_toml(project_dir / "pyproject.toml", read_text)
    if pyproject is None:
        return None
    found: dict[str, str | None] = {}
    for source in tables(table_at(pyproject, "tool", "poetry").get("source")):
        name, url = source.get("name"), source.get("url")
        if isinstance(name, str):
            found.setdefault(name.lower(), url if isinstance(url, str) else None)
    return found


def _poetry_located(
    entry: dict[str, Any], shape: _Shape, sources: Mapping[str, str | None] | None
) -> _Located:
    located = _Located()
    source = shape.table(entry, "source")
    if source is None:
        return located  # the implicit public index
    kind, url = shape.text(source, "type"), shape.text(source, "url")
    if kind in ("file", "directory"):
        located.local = True
    elif kind == "legacy":
        reference = shape.text(source, "reference") or ""
        resolved = sources.get(reference.lower()) if sources is not None else None
        if sources is None:
            pass  # no project to resolve the reference in: the lock's URL is all there is
        elif resolved is None:
            located.add("missing-reference", reference)
        else:
            located.add("reference", resolved)
        located.add("registry", url)
    elif kind == "url":
        located.add("url", url or "")
    elif kind == "git":
        located.add("vcs", url or "")
    elif kind is not None:
        located.add("other", f"type {kind} {url or ''}".strip())
    return located


# --- pylock.toml --------------------------------------------------------------------------


def _read_pylock(
    entries: list[dict[str, Any]], shape: _Shape, project_dir: Path, read_text: ReadText
) -> list[_Located]:
    del project_dir, read_text
    return [_pylock_located(entry, shape) for entry in entries]


def _pylock_located(entry: dict[str, Any], shape: _Shape) -> _Located:
    located = _Located()
    located.add("registry", shape.text(entry, "index"))
    if shape.table(entry, "directory") is not None:
        located.local = True
    pairs: tuple[tuple[str, SourceKind], ...] = (("vcs", "vcs"), ("archive", "url"))
    for key, kind in pairs:
        table = shape.table(entry, key)
        if table is None:
            continue
        url = shape.text(table, "url")
        if url is not None:
            located.add(kind, url)
        elif shape.text(table, "path") is not None:
            located.local = True
    located.add_files(shape, entry)
    return located


# --- pdm.lock -----------------------------------------------------------------------------


def _read_pdm(
    entries: list[dict[str, Any]], shape: _Shape, project_dir: Path, read_text: ReadText
) -> list[_Located]:
    del project_dir, read_text
    return [_pdm_located(entry, shape) for entry in entries]


def _pdm_located(entry: dict[str, Any], shape: _Shape) -> _Located:
    located = _Located()
    if shape.text(entry, "path") is not None or entry.get("editable") is True:
        located.local = True
    located.add("vcs", shape.text(entry, "git"))
    located.add("url", shape.text(entry, "url"))
    urls = [shape.text(file, "url") for file in shape.array(entry, "files")]
    for url in urls:
        located.add("file", url)
    if not located.found:
        # Files named without a URL: pdm takes them from the project's sources when it
        # installs, and every such request passes the guard.
        located.local = True
    return located


# --- judging ------------------------------------------------------------------------------


def lock_violations(
    packages: Iterable[LockedPackage], *, private_url: str, private_names: Collection[str]
) -> list[LockViolation]:
    """The packages the private index serves (`private_names`, any spelling) that their lock
    would fetch from anywhere other than the private index at `private_url`.

    A package is allowed when every one of its `sources` is on the private index: an index
    URL equal to `private_url` after `normalise_url`, a file on the private index's origin.
    A direct URL, a VCS repository or an unresolved poetry reference never is. The user's
    own files (a `local` package: path, directory, editable, virtual) are allowed, though
    any remote source such an entry also names is still judged. A package that is neither
    local nor names any source comes from the tool's default public index: a violation.
    One violation per package, naming the first offending source.
    """
    private = normalise_url(private_url)
    served = {normalise_project(name) for name in private_names}
    violations: list[LockViolation] = []
    for package in packages:
        if normalise_project(package.name) not in served:
            continue
        reasons = [
            reason
            for kind, location in zip(package.kinds, package.sources, strict=True)
            if (reason := _judge(kind, location, private)) is not None
        ]
        if not package.sources and not package.local:
            reasons.append(_PUBLIC_DEFAULT)
        if reasons:
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            violations.append(LockViolation(package, reasons[0] + more))
    return violations


def _judge(kind: SourceKind, location: str, private: str) -> str | None:
    """Why `location` is not on the private index (normalised URL `private`); None if it is.
    A URL is named without user info, query or fragment: a lock may hold a credential."""
    reason = _why_not(kind, location, private)
    if reason is None or "://" not in location:
        return reason
    return reason.replace(location, shown_url(location))


def _why_not(kind: SourceKind, location: str, private: str) -> str | None:
    if kind in ("registry", "reference"):
        if _same_index(location, private):
            return None
        if kind == "reference":
            return f"locked from {location} (the poetry source its `reference` names)"
        return f"locked from {location} (registry)"
    if kind in ("sdist", "wheel", "file"):
        if _same_origin(location, private):
            return None
        return f"its {kind} {location} is not on the private index"
    if kind == "missing-reference":
        return (
            f"its poetry source reference '{location}' names no [[tool.poetry.source]] "
            "with a URL in pyproject.toml"
        )
    if kind == "url":
        return f"locked from the URL {location}"
    if kind == "vcs":
        return f"locked from the VCS repository {location}"
    return f"locked from a source crane does not know ({location})"


def _same_index(location: str, private: str) -> bool:
    try:
        return normalise_url(location) == private
    except UsageError:
        return False  # a path (a local registry) or no URL crane could use


def _same_origin(location: str, private: str) -> bool:
    try:
        return "://" in location and origin_of(location) == origin_of(private)
    except ValueError:
        return False
