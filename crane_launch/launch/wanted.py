"""What a project wants, for `crane audit`: the projects its requirements files and its
pyproject.toml ask for, and what an environment has installed.

Requirements files are read by the walk the planners use (`launch.reqfiles`), so an audit
sees the files, includes and lines a pip run would see. Everything but `installed_packages`
is a pure function of its inputs: files are read only through the `ReadText` it is given.
Every problem is a `UsageError` whose one-line message names the file (and line); it
never repeats the offending text, which may hold a URL with credentials in it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from crane_launch.environ import ALWAYS_HIDDEN
from crane_launch.errors import UsageError
from crane_launch.launch.files import ReadText, display_path
from crane_launch.launch.plan import REMOTE_FILE_WHY
from crane_launch.launch.project_scan import load_toml
from crane_launch.launch.references import _pin, _uv_source_references, requirement_reference
from crane_launch.launch.reqfiles import (
    RequirementsWalk,
    Root,
    is_option_line,
    requirement_lines,
    walk_requirements,
)
from crane_launch.proxy.routing import normalise_project

__all__ = [
    "Installed",
    "Wanted",
    "installed_packages",
    "pyproject_names",
    "requirement_names",
]


@dataclass(frozen=True)
class Wanted:
    """A project a requirements file or pyproject.toml asks for."""

    name: str
    """PEP 503-normalised."""
    place: str
    """Where it was asked for, for messages: `requirements file requirements.txt line 3`,
    `constraints file c.txt line 1`, `pyproject.toml [project] dependencies`, ..."""
    url: str | None = None
    """The location a direct reference names (`name @ URL`, a bare wheel or `#egg=` URL,
    a poetry `url`/`git` entry, a `[tool.uv.sources]` url/git pin), else None."""


# --- requirements files -------------------------------------------------------------------

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ARCHIVE = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar", ".zip")


def requirement_names(
    paths: Sequence[Path | str],
    *,
    cwd: Path,
    environ: Mapping[str, str],
    read_text: ReadText,
) -> list[Wanted]:
    """The projects `paths` (relative to `cwd`) and the files they include ask for, in
    file and line order.

    Each file is read once, whatever includes it and however often. Entries of a file
    included only with `-c` are wanted too; their place says `constraints file`. Option
    lines, local paths (`-e .`, `./pkg`, `pkg-1.0.tar.gz`) and URLs that name no project
    are not wanted. Raises `UsageError` for a file that cannot be read, a requirements
    file fetched over the network, and a line that is not a valid requirement.
    """
    failures: dict[Path, OSError | UnicodeDecodeError] = {}

    def reading(path: Path) -> str:
        # The walk leaves unreadable files to the tool; the audit reports them.
        try:
            return read_text(path)
        except (OSError, UnicodeDecodeError) as exc:
            failures[path] = exc
            raise

    roots = [Root("--requirement", str(path), "command line") for path in paths]
    walk = walk_requirements(roots, dialect="pip", cwd=cwd, environ=environ, read_text=reading)
    _check_walk(walk, roots, failures, cwd)
    wanted_as_requirements = set(walk.root_paths.values()) | {
        include.target
        for file in walk.files.values()
        for include in file.includes
        if include.occurrence.name == "--requirement"
    }
    found: list[Wanted] = []
    for line in requirement_lines(walk, cwd=cwd, environ=environ):
        kind = "requirements" if line.path in wanted_as_requirements else "constraints"
        place = f"{kind} file {line.shown} line {line.number}"
        wanted = _requirement_line(line.text, place)
        if wanted is not None:
            found.append(wanted)
    return found


def _check_walk(
    walk: RequirementsWalk,
    roots: Sequence[Root],
    failures: Mapping[Path, OSError | UnicodeDecodeError],
    cwd: Path,
) -> None:
    for rejection in walk.rejections:
        if rejection.why == REMOTE_FILE_WHY:
            where = "" if rejection.place == "command line" else f"{rejection.place}: "
            raise UsageError(
                f"{where}{rejection.setting}: a requirements file fetched over the network "
                "cannot be audited; download it and pass the local copy"
            )
    for root in roots:
        path = walk.root_paths.get(root)
        if path is None:
            raise UsageError(f"{root.value}: is not a requirements file")
        if path in failures:
            raise UsageError(f"{display_path(path, cwd)}: {_reason(failures[path])}")
    for path, file in walk.files.items():
        for include in file.includes:
            if include.target in failures:
                raise UsageError(
                    f"{display_path(include.target, cwd)}: {_reason(failures[include.target])}"
                    f" (included by {display_path(path, cwd)} line {include.line.first})"
                )


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "is not UTF-8 text"
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "no such file"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a requirements file"
    return f"cannot be read ({exc.strerror or type(exc).__name__})"


def _requirement_line(line: str, place: str) -> Wanted | None:
    """What one logical line (comments gone, variables expanded) asks for."""
    if is_option_line(line):
        return None  # an option line: -r/-c are the walk's, the index is not asked here
    if line.startswith("-"):
        return _from_reference(line, place)  # `-e URL`; a local `-e` path names no project
    # pip's `break_args_options`: the requirement ends at the first token that starts
    # with `-` (`--hash`, `--config-settings`); a marker may hold spaces, so not `split()`.
    words: list[str] = []
    for token in line.split(" "):
        if token.startswith("-"):
            break
        words.append(token)
    text = " ".join(words).strip()
    lowered = text.lower()
    if lowered.startswith("file:"):
        return None
    if _SCHEME.match(text):
        return _from_reference(text.split("; ", 1)[0].strip(), place)
    if "@" not in text and lowered.endswith(_ARCHIVE):
        return None  # pip installs `pkg-1.0.tar.gz` from the file of that name
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        if _looks_like_path(text):
            return None  # a local directory or archive
        raise UsageError(f"{place}: is not a valid requirement ({_first_line(exc)})") from None
    return Wanted(normalise_project(requirement.name), place, requirement.url)


def _looks_like_path(text: str) -> bool:
    """pip's `_looks_like_path`, for a requirement that did not parse: `./pkg[extra]`,
    `src/pkg ; python_version < '3.12'` (a path may hold no space here)."""
    head = text.split(";", 1)[0].strip()
    if not head or any(character.isspace() for character in head):
        return False
    return head.startswith((".", "~")) or "/" in head or "\\" in head


def _from_reference(text: str, place: str) -> Wanted | None:
    reference = requirement_reference(text, place)
    if reference is None or not reference.project:
        return None
    return Wanted(reference.project, place, reference.url)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# --- pyproject.toml -----------------------------------------------------------------------

_UV_LISTS = (
    "dev-dependencies",
    "override-dependencies",
    "constraint-dependencies",
    "build-constraint-dependencies",
)


def pyproject_names(path: Path, *, read_text: ReadText, cwd: Path | None = None) -> list[Wanted]:
    """The projects the pyproject.toml at `path` asks for, each once per place.

    Reads `[project]` dependencies and optional dependencies, `[dependency-groups]`
    (`{include-group = ...}` entries are read where their group is), `[build-system]`
    requires, `[tool.uv]` dev, override, constraint and build-constraint dependencies,
    and poetry's `dependencies`, `dev-dependencies` and every group's (poetry's `python`
    is not a project). The project itself (`myproj[extra]`) is skipped. Places name the
    file relative to `cwd` (default: its own directory). Raises `UsageError` naming the
    file when it is missing, or when a list or table has the wrong type or holds an
    invalid requirement; `ConfigError` (as for a lock file) when it cannot be read or is
    not TOML.
    """
    data = load_toml(path, read_text)
    if data is None:
        raise UsageError(f"{path}: no such file")
    shown = display_path(path, path.parent if cwd is None else cwd)
    document = _Document(path, data)
    own = {
        normalise_project(name)
        for name in (document.table("project").get("name"), document.poetry.get("name"))
        if isinstance(name, str)
    }
    sourced = _uv_sourced_urls(data, shown)
    found: list[Wanted] = []
    for where, items, uses_sources in document.pep508_lists():
        for number, text in enumerate(items, start=1):
            try:
                requirement = Requirement(text)
            except InvalidRequirement as exc:
                raise UsageError(
                    f"{path}: {where} item {number}: is not a valid requirement "
                    f"({_first_line(exc)})"
                ) from None
            name = normalise_project(requirement.name)
            url = requirement.url
            if url is None and uses_sources:
                url = sourced.get(name)
            found.append(Wanted(name, f"{shown} {where}", url))
    found += document.poetry_items(shown)
    seen: set[tuple[str, str]] = set()
    unique: list[Wanted] = []
    for wanted in found:
        if wanted.name not in own and (wanted.name, wanted.place) not in seen:
            seen.add((wanted.name, wanted.place))
            unique.append(wanted)
    return unique


class _Document:
    """A pyproject.toml read strictly: the lists and tables crane reads must have their
    documented types (`project_scan.table_at` reads a malformed file as an empty one, which
    would let an audit pass over projects it cannot see)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.poetry = self.table("tool", "poetry")

    def table(self, *keys: str) -> dict[str, Any]:
        """The table at the dotted key path; {} when it is missing."""
        current: Any = self.data
        for depth, key in enumerate(keys, start=1):
            current = current.get(key, {})
            if not isinstance(current, dict):
                raise UsageError(f"{self.path}: [{'.'.join(keys[:depth])}] is not a table")
        return dict(current)

    def strings(self, value: object, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UsageError(f"{self.path}: {where} is not an array of strings")
        return value

    def pep508_lists(self) -> list[tuple[str, list[str], bool]]:
        """(place, requirements, whether `[tool.uv.sources]` applies) of every PEP 508
        list, the lists `references._pep508_lists` reads."""
        project = self.table("project")
        uv = self.table("tool", "uv")
        where = "[project] dependencies"
        lists = [(where, self.strings(project.get("dependencies"), where), True)]
        where = "[build-system] requires"
        lists.append(
            (where, self.strings(self.table("build-system").get("requires"), where), False)
        )
        for extra, items in self.table("project", "optional-dependencies").items():
            where = f"[project.optional-dependencies] {extra}"
            lists.append((where, self.strings(items, where), True))
        for group, items in self.table("dependency-groups").items():
            where = f"[dependency-groups] {group}"
            lists.append((where, self._group(items, where), True))
        for key in _UV_LISTS:
            where = f"[tool.uv] {key}"
            lists.append((where, self.strings(uv.get(key), where), key == "dev-dependencies"))
        return lists

    def _group(self, items: object, where: str) -> list[str]:
        # PEP 735: strings, and `{include-group = "other"}` tables, which name no project.
        if not isinstance(items, list) or not all(isinstance(i, str | dict) for i in items):
            raise UsageError(f"{self.path}: {where} is not an array of strings and tables")
        return [item for item in items if isinstance(item, str)]

    def poetry_items(self, shown: str) -> list[Wanted]:
        tables = [
            ("dependencies", self.table("tool", "poetry", "dependencies")),
            ("dev-dependencies", self.table("tool", "poetry", "dev-dependencies")),
        ]
        for group in self.table("tool", "poetry", "group"):
            dependencies = self.table("tool", "poetry", "group", group, "dependencies")
            tables.append((f"group.{group}.dependencies", dependencies))
        found: list[Wanted] = []
        for where, dependencies in tables:
            place = f"{shown} [tool.poetry.{where}]"
            for name, entry in dependencies.items():
                entries = entry if isinstance(entry, list) else [entry]
                if not all(isinstance(item, str | dict) for item in entries):
                    raise UsageError(
                        f"{self.path}: [tool.poetry.{where}] {name} is neither a version "
                        "nor a table"
                    )
                project = normalise_project(name)
                if project == "python":
                    continue
                pins = [pin for item in entries for pin in _pin(name, item, place, {}, "source")]
                url = next((pin.url for pin in pins if pin.kind == "url"), None)
                found.append(Wanted(project, place, url))
        return found


def _uv_sourced_urls(data: Mapping[str, Any], shown: str) -> dict[str, str]:
    """Project name -> the url/git location `[tool.uv.sources]` gives it (the first one)."""
    urls: dict[str, str] = {}
    for reference in _uv_source_references(data, f"{shown} [tool.uv.sources]", {}):
        if reference.kind == "url":
            urls.setdefault(reference.project, reference.url)
    return urls


# --- an environment -----------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """A distribution installed in an environment."""

    name: str
    """PEP 503-normalised."""
    version: str
    direct_url: str | None
    """The `url` of its PEP 610 `direct_url.json`; None when it came from an index."""
    editable: bool
    """`dir_info.editable` of `direct_url.json`."""
    installer: str | None
    """Its `INSTALLER` file (`pip`, `uv`, `poetry`), stripped; None when absent or empty."""
    directory: bool = False
    """`direct_url.json` has `dir_info`: installed from a directory, the user's own tree
    (an archive, `archive_info`, came from somewhere, whatever its URL looks like)."""


_LISTING = """\
import json, sys
try:
    from importlib import metadata
except ImportError:
    sys.exit("importlib.metadata is missing: Python 3.8 or newer is needed")
found = []
for dist in metadata.distributions():
    try:
        found.append({
            "name": dist.metadata["Name"],
            "version": dist.version,
            "direct_url": dist.read_text("direct_url.json"),
            "installer": dist.read_text("INSTALLER"),
        })
    except Exception:
        continue  # a broken .dist-info: importlib cannot read it either
with open(sys.argv[1], "w") as out:
    json.dump(found, out)
"""
"""Runs in the audited interpreter, so it keeps to Python 3.8. It writes to a file, not
stdout, where a `sitecustomize` or `.pth` file may print whatever it likes."""


def installed_packages(
    python: str,
    environ: Mapping[str, str],
    *,
    hidden: Collection[str] = frozenset(),
    timeout: float = 60.0,
) -> list[Installed]:
    """The distributions `python` (a path, or a name looked up on `environ["PATH"]`) can
    import, in the order importlib finds them; of a project found twice on `sys.path`,
    the first, which is the one `import` gets.

    The interpreter runs in `environ` less `ALWAYS_HIDDEN` and `hidden` (crane's secrets),
    in an empty temporary directory (a module in the current one cannot stand in for the
    standard library), with no input. Raises `UsageError` naming `python`, on one line,
    when it is not found, fails, or takes longer than `timeout` seconds.
    """
    executable = _interpreter(python, environ)
    child = {
        name: value
        for name, value in environ.items()
        if name not in ALWAYS_HIDDEN and name not in hidden
    }
    with tempfile.TemporaryDirectory(prefix="crane-audit-") as scratch:
        output = Path(scratch) / "installed.json"
        try:
            done = subprocess.run(
                [executable, "-c", _LISTING, str(output)],
                cwd=scratch,
                env=child,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UsageError(f"{python}: gave no answer within {timeout:g} s") from None
        except OSError as exc:
            raise UsageError(f"{python}: cannot be run ({exc.strerror or exc})") from None
        if done.returncode != 0:
            last = _last_line(done.stderr)
            raise UsageError(
                f"{python}: exited with status {done.returncode}" + (f": {last}" if last else "")
            )
        try:
            listing = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            listing = None
    if not isinstance(listing, list):
        raise UsageError(f"{python}: did not list its installed packages")
    return _installed(listing)


def _interpreter(python: str, environ: Mapping[str, str]) -> str:
    if os.sep in python or (os.altsep is not None and os.altsep in python):
        path = os.path.abspath(python)  # the child runs elsewhere
        if not os.path.exists(path):
            raise UsageError(f"{python}: no such interpreter")
        return path
    found = shutil.which(python, path=environ.get("PATH", os.defpath))
    if found is None:
        raise UsageError(f"{python}: no such interpreter on PATH")
    return found


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode(sys.getfilesystemencoding(), "replace").strip().splitlines()
    return lines[-1].strip()[:200] if lines else ""


def _installed(listing: list[Any]) -> list[Installed]:
    found: dict[str, Installed] = {}
    for entry in listing:
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str) or not name or not isinstance(version, str):
            continue
        project = normalise_project(name)
        if project in found:
            continue
        url, editable, directory = _direct_url(entry.get("direct_url"))
        installer = entry.get("installer")
        installer = (installer.strip() or None) if isinstance(installer, str) else None
        found[project] = Installed(project, version, url, editable, installer, directory)
    return list(found.values())


def _direct_url(text: object) -> tuple[str | None, bool, bool]:
    """(url, editable, a directory) of a `direct_url.json`; one that does not parse says
    nothing."""
    if not isinstance(text, str):
        return None, False, False
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, False, False
    if not isinstance(data, dict):
        return None, False, False
    url = data.get("url")
    dir_info = data.get("dir_info")
    editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
    return (url if isinstance(url, str) else None), editable, isinstance(dir_info, dict)
