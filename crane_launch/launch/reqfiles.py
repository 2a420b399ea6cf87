"""Requirements files, read the way pip (and uv's pip interface) read them.

pip's rules, from `pip/_internal/req/req_file.py`, which this module follows:

- A line ending in a backslash continues on the next one, unless it is a comment; the
  joined line keeps the number of its first physical line. Comments start with `#` at the
  start of a line or after whitespace. `${NAME}` (upper case, digits, `_`) is replaced by
  the environment variable's value when that is set and not empty.
- A line is a requirement when anything precedes its first `-` token (or it has `-e`);
  options on a requirement line are ignored apart from `--hash` and `--config-settings`.
  Other lines are option lines, parsed by optparse, so long options may be abbreviated.
- `-r F` / `-c F` on an option line includes F, relative to the including file's
  directory; pip follows only the line's first `-r` (else first `-c`) and then ignores the
  rest of that line. A file that includes itself, directly or not, is an error in pip;
  here the walk simply does not enter a file twice.
- `-i URL` / `--index-url URL` in a file replaces the index for the whole run, overriding
  the command line, the environment and config files (`handle_option_line` sets
  `index_urls = [opts.index_url]`). So the private index named in a file must not reach
  pip: `plan_copies` writes a copy beside the file with that option removed (the line
  becomes a comment, so line numbers in pip's messages stay true) and copies each file on
  the way down to it so that the includes point at the copies.
- `--no-index` in a file turns the index off for the rest of the run and cannot be
  turned back on (`handle_option_line`), in pip and in uv alike: the run needs no proxy.

uv's pip interface reads the same format (`-iURL` and abbreviations are errors there),
but it appends a file's indexes after the ones from its settings (`IndexLocations::
combine`), so under crane, whose proxy arrives as `UV_DEFAULT_INDEX`, a uv run needs no
copies; the walk is still needed to find extra indexes and foreign index lines.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crane_launch.config import Registry
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options
from crane_launch.launch.files import ReadText, display_path
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    REMOTE_FILE_WHY,
    DirectReference,
    FileCopy,
    IndexSetting,
    Rejection,
    remote_links,
)
from crane_launch.launch.references import requirement_reference

__all__ = [
    "Dialect",
    "RequirementLine",
    "RequirementsIndexLine",
    "RequirementsWalk",
    "Root",
    "SortedIndexLines",
    "copy_value",
    "direct_references",
    "is_option_line",
    "plan_copies",
    "requirement_lines",
    "walk_requirements",
]

Dialect = Literal["pip", "uv"]

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
_ENV_VAR_RE = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_REMOTE_RE = re.compile(r"^(http|https):", re.IGNORECASE)
_FILE_URL_RE = re.compile(r"^file:", re.IGNORECASE)
_PYLOCK_RE = re.compile(r"^pylock\.([^.]+\.)?toml$")

_VALUE_LONGS = frozenset(
    {
        "--index-url",
        "--pypi-url",
        "--extra-index-url",
        "--constraint",
        "--requirement",
        "--editable",
        "--find-links",
        "--no-binary",
        "--only-binary",
        "--all-releases",
        "--only-final",
        "--trusted-host",
        "--use-feature",
        "--hash",
        "--config-settings",
    }
)
_FLAG_LONGS = frozenset(
    {"--no-index", "--prefer-binary", "--require-hashes", "--no-require-hashes", "--pre"}
)
_ALIASES = {
    "-i": "--index-url",
    "--pypi-url": "--index-url",
    "-c": "--constraint",
    "-r": "--requirement",
    "-e": "--editable",
    "-f": "--find-links",
    "-C": "--config-settings",
}
_SENSITIVE = frozenset({"--index-url", "--extra-index-url", "--requirement", "--constraint"})

LINE_TABLES: dict[Dialect, OptionTable] = {
    "pip": OptionTable(
        value_longs=_VALUE_LONGS,
        flag_longs=_FLAG_LONGS,
        value_shorts=frozenset(_ALIASES) - {"--pypi-url"},
        flag_shorts=frozenset(),
        aliases=_ALIASES,
        abbreviations=True,
        sensitive=_SENSITIVE,
    ),
    "uv": OptionTable(
        value_longs=_VALUE_LONGS,
        flag_longs=_FLAG_LONGS,
        value_shorts=frozenset(_ALIASES) - {"--pypi-url"},
        flag_shorts=frozenset(),
        aliases=_ALIASES,
        short_equals_strips=True,
        sensitive=_SENSITIVE,
    ),
}


@dataclass(frozen=True)
class Root:
    """A requirements file named outside any file: its value as given, and where."""

    option: str
    value: str
    place: str


@dataclass
class _Line:
    first: int
    last: int
    tokens: list[str]
    options: list[Occurrence]


@dataclass(frozen=True)
class RequirementsIndexLine:
    """An `--index-url` option inside a requirements file."""

    path: Path
    place: str
    url: str
    line: _Line = field(compare=False, repr=False)
    occurrence: Occurrence = field(compare=False, repr=False)


@dataclass
class _Include:
    line: _Line
    occurrence: Occurrence
    value: str
    target: Path


@dataclass
class _File:
    path: Path
    text: str
    includes: list[_Include] = field(default_factory=list)


@dataclass
class RequirementsWalk:
    """Every requirements file reached from the roots, and what crane must look at."""

    files: dict[Path, _File] = field(default_factory=dict)
    root_paths: dict[Root, Path] = field(default_factory=dict)
    index_lines: list[RequirementsIndexLine] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    no_index_places: list[str] = field(default_factory=list)

    def sort_index_lines(self, registry: Registry, foreign_why: str) -> SortedIndexLines:
        """The files' index lines, split by whether `registry` knows their index; both
        lists keep the order in which the walk met the lines."""
        foreign: list[Rejection] = []
        registered: list[IndexSetting] = []
        for line in self.index_lines:
            if registry.find(line.url) is None:
                foreign.append(Rejection(line.place, f"--index-url {line.url}", foreign_why))
            else:
                registered.append(IndexSetting(line.url, line.place))
        return SortedIndexLines(foreign, registered)


@dataclass(frozen=True)
class SortedIndexLines:
    """The index lines of a walk: `foreign` ones name an unregistered index and are
    refused (with the tool's reason); `registered` ones take part in choosing the index."""

    foreign: list[Rejection]
    registered: list[IndexSetting]


def _skipped_format(path_text: str, dialect: Dialect) -> bool:
    """Files that are not in requirements format (lock files, project files, stdin)."""
    name = path_text.replace("\\", "/").rsplit("/", 1)[-1]
    if path_text == "-":
        return True
    if dialect == "pip":
        return bool(_PYLOCK_RE.match(name))
    return name in {"setup.py", "setup.cfg"} or name.endswith((".toml", ".py"))


def _file_url_path(value: str) -> str:
    import urllib.request  # pulls in http.client and ssl: only for a file: URL

    return urllib.request.url2pathname(urllib.parse.urlsplit(value).path)


def walk_requirements(
    roots: Sequence[Root],
    *,
    dialect: Dialect,
    cwd: Path,
    environ: Mapping[str, str],
    read_text: ReadText,
) -> RequirementsWalk:
    """Read `roots` and everything they include, once each.

    Files that cannot be read are left to the tool, which reports them itself. A file
    fetched over http(s) is a rejection: crane cannot see what index it names.
    """
    walk = RequirementsWalk()
    for root in roots:
        if _skipped_format(root.value, dialect):
            continue
        if _REMOTE_RE.match(root.value):
            setting = f"{root.option} {root.value}"
            walk.rejections.append(Rejection(root.place, setting, REMOTE_FILE_WHY))
            continue
        given = _file_url_path(root.value) if _FILE_URL_RE.match(root.value) else root.value
        path = Path(os.path.normpath(cwd / given))
        walk.root_paths[root] = path
        _visit(path, walk, dialect=dialect, cwd=cwd, environ=environ, read_text=read_text)
    return walk


def _visit(
    path: Path,
    walk: RequirementsWalk,
    *,
    dialect: Dialect,
    cwd: Path,
    environ: Mapping[str, str],
    read_text: ReadText,
) -> None:
    if path in walk.files:
        return
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError):
        return
    file = _File(path, text)
    walk.files[path] = file
    shown = display_path(path, cwd)
    for line in _option_lines(text.removeprefix("\ufeff"), environ, LINE_TABLES[dialect]):
        place = f"requirements file {shown} line {line.first}"
        include = _include_option(line)
        if include is None:
            _note_index_options(line, path, place, walk)
            continue
        target = _include_target(include, path, place, walk, dialect)
        if target is not None:
            file.includes.append(_Include(line, include, include.value or "", target))
            _visit(target, walk, dialect=dialect, cwd=cwd, environ=environ, read_text=read_text)


def _include_option(line: _Line) -> Occurrence | None:
    """The option through which `line` includes a file: pip follows the line's first
    `-r`, else its first `-c`, and ignores the rest of the line."""
    for name in ("--requirement", "--constraint"):
        for option in line.options:
            if option.name == name and option.value is not None:
                return option
    return None


def _include_target(
    include: Occurrence, path: Path, place: str, walk: RequirementsWalk, dialect: Dialect
) -> Path | None:
    """The file `include` names, relative to the including file at `path`; None for a file
    crane does not read (recording a rejection when it is fetched over the network)."""
    value = include.value or ""
    if _skipped_format(value, dialect):
        return None
    if _REMOTE_RE.match(value):
        setting = f"{include.head.rstrip('=')} {value}"
        walk.rejections.append(Rejection(place, setting, REMOTE_FILE_WHY))
        return None
    given = _file_url_path(value) if _FILE_URL_RE.match(value) else value
    return Path(os.path.normpath(path.parent / given))


def _note_index_options(line: _Line, path: Path, place: str, walk: RequirementsWalk) -> None:
    for option in line.options:
        if option.name == "--index-url" and option.value:
            walk.index_lines.append(RequirementsIndexLine(path, place, option.value, line, option))
        elif option.name == "--extra-index-url" and option.value:
            walk.rejections.append(Rejection(place, "--extra-index-url", EXTRA_INDEX_WHY))
        elif option.name == "--no-index":
            walk.no_index_places.append(place)
        elif option.name == "--find-links" and option.value:
            for page in remote_links([option.value]):
                setting = f"--find-links {page}"
                walk.rejections.append(Rejection(place, setting, FIND_LINKS_WHY))


@dataclass(frozen=True)
class _LogicalLine:
    """A line as pip reads it: physical lines `first` to `last`, joined into `text`."""

    first: int
    last: int
    text: str


def _logical_lines(text: str) -> list[_LogicalLine]:
    """pip's `join_lines`."""
    joined: list[_LogicalLine] = []
    parts: list[str] = []
    primary = 0
    number = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if not line.endswith("\\") or _COMMENT_RE.match(line):
            if _COMMENT_RE.match(line):
                line = " " + line
            if parts:
                parts.append(line)
                joined.append(_LogicalLine(primary, number, "".join(parts)))
                parts = []
            else:
                joined.append(_LogicalLine(number, number, line))
        else:
            if not parts:
                primary = number
            parts.append(line.strip("\\"))
    if parts:
        joined.append(_LogicalLine(primary, number, "".join(parts)))
    return joined


def _expand(line: str, environ: Mapping[str, str]) -> str:
    for variable, name in _ENV_VAR_RE.findall(line):
        value = environ.get(name)
        if value:
            line = line.replace(variable, value)
    return line


def _option_lines(text: str, environ: Mapping[str, str], table: OptionTable) -> list[_Line]:
    lines: list[_Line] = []
    for logical in _logical_lines(text):
        line = _COMMENT_RE.sub("", logical.text).strip()
        if not line:
            continue
        line = _expand(line, environ)
        tokens = line.split(" ")
        if not tokens[0].startswith("-"):
            continue  # a requirement line: its options do not touch the index
        try:
            option_tokens = shlex.split(line)
        except ValueError:
            continue  # pip rejects the line itself
        options, _ = scan_options(option_tokens, table)
        if any(option.name == "--editable" for option in options):
            continue
        lines.append(_Line(logical.first, logical.last, option_tokens, options))
    return lines


# --- direct references ------------------------------------------------------------------


@dataclass(frozen=True)
class RequirementLine:
    """One logical line of a requirements file: comments stripped, `${VAR}` expanded."""

    path: Path
    shown: str
    """The file as messages name it (relative to the working directory when under it)."""
    number: int
    """The 1-based line the logical line starts on."""
    text: str


def requirement_lines(
    walk: RequirementsWalk, *, cwd: Path, environ: Mapping[str, str]
) -> Iterator[RequirementLine]:
    """The non-empty logical lines of every file of `walk`, in file and line order."""
    for path, file in walk.files.items():
        shown = display_path(path, cwd)
        for logical in _logical_lines(file.text.removeprefix("\ufeff")):
            line = _expand(_COMMENT_RE.sub("", logical.text).strip(), environ)
            if line:
                yield RequirementLine(path, shown, logical.first, line)


def is_option_line(text: str) -> bool:
    """A line that is an option (`--index-url ...`), not a requirement; `-e URL` is a
    requirement."""
    return text.startswith("-") and not _EDITABLE_RE.match(text)


def direct_references(
    walk: RequirementsWalk, *, cwd: Path, environ: Mapping[str, str]
) -> list[DirectReference]:
    """Every remote location the files of `walk` name (`references.requirement_reference`),
    `-e URL` lines included, in file and line order."""
    found: list[DirectReference] = []
    for line in requirement_lines(walk, cwd=cwd, environ=environ):
        if is_option_line(line.text):
            continue
        place = f"requirements file {line.shown} line {line.number}"
        reference = requirement_reference(line.text, place)
        if reference is not None:
            found.append(reference)
    return found


_EDITABLE_RE = re.compile(r"^(-e\s|--editable[\s=])")


def copy_value(value: str, copy: Path) -> str:
    """How to name `copy` where `value` named its original, keeping a relative spelling."""
    if _FILE_URL_RE.match(value):
        return str(copy)
    return os.path.join(os.path.dirname(value), copy.name)


@dataclass(frozen=True)
class _LineEdit:
    """What changes on one line of a copy: options `removed`, include values `replaced`
    (occurrence and new value, as `apply_edits` takes them)."""

    line: _Line
    removed: tuple[Occurrence, ...] = ()
    replaced: tuple[tuple[Occurrence, str], ...] = ()


def plan_copies(
    walk: RequirementsWalk, *, strip: Callable[[str], bool], token: str
) -> dict[Path, FileCopy]:
    """Copies that hide the index lines for which `strip(url)` is true, by original path.

    A file gets a copy when it has such a line or includes (at any depth) a file that has
    a copy; its include lines then name the copies. The copy is `.crane-<token>-<name>`
    beside the original. Rewritten lines keep their line numbers: the first physical line
    of a rewritten line holds the new text and its continuation lines become comments.
    """
    edits: dict[Path, dict[int, _LineEdit]] = {}
    for index_line in walk.index_lines:
        if strip(index_line.url):
            per_file = edits.setdefault(index_line.path, {})
            edit = per_file.get(index_line.line.first, _LineEdit(index_line.line))
            removed = (*edit.removed, index_line.occurrence)
            per_file[index_line.line.first] = dataclasses.replace(edit, removed=removed)
    needs = _files_with_copies(walk, set(edits))
    copies = {path: path.parent / f".crane-{token}-{path.name}" for path in needs}
    for path in needs:
        for include in walk.files[path].includes:
            if include.target in copies:
                per_file = edits.setdefault(path, {})
                edit = per_file.get(include.line.first, _LineEdit(include.line))
                swap = (include.occurrence, copy_value(include.value, copies[include.target]))
                per_file[include.line.first] = dataclasses.replace(
                    edit, replaced=(*edit.replaced, swap)
                )
    result: dict[Path, FileCopy] = {}
    for path in sorted(needs):
        text = _rewrite(walk.files[path].text, edits.get(path, {}).values())
        result[path] = FileCopy(path, copies[path], text)
    return result


def _files_with_copies(walk: RequirementsWalk, edited: set[Path]) -> set[Path]:
    """`edited` and every file that includes one of them, at any depth."""
    needs = set(edited)
    changed = True
    while changed:
        changed = False
        for file in walk.files.values():
            if file.path not in needs and any(i.target in needs for i in file.includes):
                needs.add(file.path)
                changed = True
    return needs


def _rewrite(text: str, edits: Iterable[_LineEdit]) -> str:
    physical = text.splitlines(keepends=True)
    for edit in edits:
        line = edit.line
        tokens = apply_edits(line.tokens, remove=edit.removed, replace=edit.replaced)
        first = shlex.join(tokens) if tokens else "# crane: index option removed"
        for number in range(line.first, line.last + 1):
            raw = physical[number - 1]
            body = raw.splitlines()[0]
            ending = raw[len(body) :]
            new = first if number == line.first else "# crane: continued"
            physical[number - 1] = new + ending
    return "".join(physical)
