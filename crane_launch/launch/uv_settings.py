"""The one model of uv's settings, for `uv pip` (`launch.uv`) and the project commands
(`launch.uv_project`): which settings files uv reads, what they say, how an index value is
spelled, and the order uv keeps the indexes in. Follows uv 0.13 (`crates/uv/src/lib.rs`,
`crates/uv-settings/src/lib.rs`, `crates/uv-workspace`, `crates/uv-distribution-types`),
checked against uv 0.13.9 with `uv pip compile --show-settings` and `uv lock --show-settings`.

Settings files, highest precedence first (`uv_config_files`):

- `--config-file` / `UV_CONFIG_FILE` replaces all other files, resolved against the working
  directory; `--no-config` / `UV_NO_CONFIG` loads none, and so does the deprecated
  `--isolated` for `uv pip` (uv 0.13.9's `uv lock --isolated` still reads `uv.toml`, so the
  project planner does not pass it).
- Otherwise the project file: the nearest `uv.toml`, or `pyproject.toml` with a `[tool.uv]`
  table (`uv.toml` wins in one directory), walking up from the workspace root, or from the
  project directory (`--project` / `UV_PROJECT` under the working directory) when there is
  no workspace; then the user file (`$XDG_CONFIG_HOME/uv/uv.toml` when that is absolute,
  else `~/.config/uv/uv.toml`); then the first system file (`$XDG_CONFIG_DIRS/uv/uv.toml`,
  default `/etc/xdg`, then `/etc/uv/uv.toml`).
- The working directory is `--directory`, else `UV_WORKING_DIR`, else `UV_WORKING_DIRECTORY`
  (uv 0.13.9 honours both variables and prefers `UV_WORKING_DIR`).
- Scalars: project beats user beats system; lists are concatenated. `uv pip` also reads the
  `[pip]` table of each file.

Files are read through the planner's `ReadText` with `files.read_unless_missing`: a missing
file is no layer, an unreadable one a `ConfigError` (uv stops on it too).

Where the two former models disagreed, this follows uv 0.13.9:

- A pyproject.toml that is not valid TOML is skipped during settings discovery ("warning:
  Failed to parse `.../pyproject.toml` during settings discovery", for `uv pip compile` and
  `uv lock` alike); an invalid `uv.toml` is a `ConfigError` ("error: Failed to parse").
  The project planner still refuses an invalid pyproject.toml of the project itself, which
  `uv lock` needs.
- A `--config-file` that does not exist is a `ConfigError` ("error: failed to open file
  `nope.toml`"), for both planners.
- Workspace members are matched as uv globs them: one path segment per part, `**` standing
  for any number of segments (`packages/**/b` and `**/b` both make `packages/a/b` a member).
- `name=url` index values: uv splits at the first `=` and takes the left part as the name
  when it holds no `:` (`=URL` names the index ""; `bad!=URL` is refused by uv itself),
  so `https://host/simple?a=b` stays a URL (`split_index_value`).
- `UV_WORKING_DIRECTORY` moves both planners, as above.

Index order (`index_order`, the project commands): each kind combines its layers, command
line first (a variable only when its option is absent), then the settings files:
`--default-index`, `--index`, `[[index]]`; then `--extra-index-url`, `extra-index-url`; then
`--index-url`, `index-url`. A name defined twice keeps its first definition;
`explicit = true` indexes only serve projects pinned in `[tool.uv.sources]`; the first index
marked default (else the implicit public index) is consulted last; `format = "flat"` entries
are find-links, not indexes.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from crane_launch.errors import ConfigError
from crane_launch.launch.argv import strtobool
from crane_launch.launch.files import ReadText, read_unless_missing
from crane_launch.launch.project_scan import ToolArgs, strings, table_at, tables

__all__ = [
    "SettingsLayer",
    "UvConfigFile",
    "UvConfigValue",
    "UvIndex",
    "configured_index_urls",
    "consulted_indexes",
    "first_value",
    "index_order",
    "index_strategy",
    "is_workspace_member",
    "script_config_file",
    "settings_layers",
    "split_index_value",
    "uv_config_files",
    "uv_flag",
    "working_directory",
    "workspace_root",
]


# --- the settings files --------------------------------------------------------------------


@dataclass
class UvConfigFile:
    """The settings of one uv config file: its top level and its `[pip]` table."""

    path: Path
    prefix: str  # "" for uv.toml, "tool.uv" for pyproject.toml
    top: dict[str, Any] = field(default_factory=dict)
    pip: dict[str, Any] = field(default_factory=dict)

    def table(self, table: str) -> dict[str, Any]:
        """The settings of `table`: "pip" for `[pip]`, "" for the top level."""
        return self.pip if table == "pip" else self.top

    def place(self, table: str) -> str:
        name = ".".join(part for part in (self.prefix, table) if part)
        return f"uv config file {self.path}" + (f": [{name}]" if name else "")

    def index_place(self, table: str) -> str:
        name = ".".join(part for part in (self.prefix, table, "index") if part)
        return f"uv config file {self.path}: [[{name}]]"


@dataclass(frozen=True)
class UvConfigValue:
    """A setting's value as uv parsed it, and the place a user would look for it."""

    value: Any
    place: str


@dataclass(frozen=True)
class SettingsLayer:
    """One settings file as the project planner names it: its path (for messages) and its
    `[tool.uv]`-shaped table."""

    place: str
    table: dict[str, Any]


def first_value(files: Sequence[UvConfigFile], table: str, key: str) -> UvConfigValue | None:
    """`key` of `table` in the first of `files` (highest precedence first) that sets it."""
    for file in files:
        source = file.table(table)
        if key in source:
            return UvConfigValue(source[key], file.place(table))
    return None


def uv_flag(args: ToolArgs, option: str, environ: Mapping[str, str], variable: str) -> bool:
    """Whether a uv flag is on: given on the command line, or its variable set true.

    uv reads the variable with clap's boolean spelling, as `argv.strtobool` does; uv
    refuses other values, crane counts them as off.
    """
    return args.has(option) or strtobool(environ.get(variable, "")) is True


def working_directory(cwd: Path, directory: str | None, environ: Mapping[str, str]) -> Path:
    """Where uv runs: `--directory`, else `UV_WORKING_DIR`, else `UV_WORKING_DIRECTORY`."""
    chosen = directory or environ.get("UV_WORKING_DIR") or environ.get("UV_WORKING_DIRECTORY")
    return cwd / chosen if chosen else cwd


def uv_config_files(
    environ: Mapping[str, str],
    *,
    cwd: Path,
    home: Path | None,
    config_file: str | None,
    no_config: bool,
    project: str | None,
    read_text: ReadText,
    user_level: bool = False,
) -> list[UvConfigFile]:
    """The config files uv would merge, highest precedence first (see the module docstring).

    `cwd` is the working directory; `config_file`, `no_config` (`--no-config`, and
    `--isolated` for `uv pip`) and `project` are the command line's, the variables are read
    here. `user_level`: a `uv tool` command, which ignores the project's files (uv 0.13
    `lib.rs`: "For commands that operate at the user-level, ignore local configuration").
    Raises `ConfigError` for a config file that is missing or cannot be read, and for any
    file that cannot be parsed except a pyproject.toml (uv skips it with a warning).
    """
    config_file = config_file or environ.get("UV_CONFIG_FILE") or None
    if config_file is not None:
        path = cwd / config_file
        data = _read_toml(path, read_text).data
        if data is None:
            raise ConfigError(f"uv config file {path}: cannot be read")
        return [_config_file(path, data, "")]
    if no_config or strtobool(environ.get("UV_NO_CONFIG", "")) is True:
        return []
    project = project or environ.get("UV_PROJECT") or None
    project_dir = cwd / project if project else cwd
    root = None if user_level else workspace_root(project_dir, read_text)
    found = [
        None if root is None else _find_project_config(root, read_text),
        _user_config(environ, home, read_text),
        _system_config(environ, read_text),
    ]
    return [file for file in found if file is not None]


def settings_layers(
    args: ToolArgs,
    environ: Mapping[str, str],
    *,
    working_dir: Path,
    read_text: ReadText,
) -> list[SettingsLayer]:
    """The settings files a uv project command reads, highest precedence first, each with
    its `[tool.uv]`-shaped table. `working_dir` is where uv runs after `--directory`."""
    home = environ.get("HOME")
    files = uv_config_files(
        environ,
        cwd=working_dir,
        home=Path(home) if home else None,
        config_file=args.last("--config-file"),
        no_config=args.has("--no-config"),
        project=args.last("--project"),
        read_text=read_text,
    )
    return [SettingsLayer(str(file.path), file.top) for file in files]


def script_config_file(path: Path, metadata: dict[str, Any]) -> UvConfigFile:
    """A script's PEP 723 metadata as a config file: its `[tool.uv]` settings."""
    return _config_file(path, metadata, "tool.uv")


def _user_config(
    environ: Mapping[str, str], home: Path | None, read_text: ReadText
) -> UvConfigFile | None:
    xdg_home = environ.get("XDG_CONFIG_HOME", "")
    if xdg_home.startswith("/"):
        user_dir = Path(xdg_home)
    elif home is not None:
        user_dir = home / ".config"
    else:
        return None
    path = user_dir / "uv" / "uv.toml"
    data = _read_toml(path, read_text).data
    return None if data is None else _config_file(path, data, "")


def _system_config(environ: Mapping[str, str], read_text: ReadText) -> UvConfigFile | None:
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "") or "/etc/xdg"
    candidates = []
    for directory in xdg_dirs.split(":"):  # uv splits on ':' itself, empty entry ends it
        if not directory:
            break
        candidates.append(Path(directory) / "uv" / "uv.toml")
    candidates.append(Path("/etc/uv/uv.toml"))
    for path in candidates:
        data = _read_toml(path, read_text).data
        if data is not None:
            return _config_file(path, data, "")
    return None


@dataclass(frozen=True)
class _Toml:
    """A TOML file as uv sees it: whether it exists, and its data when it could be parsed."""

    exists: bool
    data: dict[str, Any] | None


def _read_toml(path: Path, read_text: ReadText) -> _Toml:
    """The one error policy: missing is absent, unreadable is a `ConfigError`, unparsable
    is a `ConfigError` except for a pyproject.toml, which uv skips with a warning."""
    text = read_unless_missing(read_text, path)
    if text is None:
        return _Toml(False, None)
    try:
        return _Toml(True, tomllib.loads(text))
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        if path.name == "pyproject.toml":
            return _Toml(True, None)
        reason = " ".join(str(exc).split())
        raise ConfigError(f"uv config file {path}: cannot be parsed ({reason})") from None


def _config_file(path: Path, data: dict[str, Any], prefix: str) -> UvConfigFile:
    top = table_at(data, "tool", "uv") if prefix else data
    return UvConfigFile(path, prefix, top, table_at(top, "pip"))


def _find_project_config(start: Path, read_text: ReadText) -> UvConfigFile | None:
    """uv's `FilesystemOptions::find`: the nearest uv.toml, or pyproject.toml with [tool.uv]."""
    for directory in (start, *start.parents):
        data = _read_toml(directory / "uv.toml", read_text).data
        if data is not None:
            return _config_file(directory / "uv.toml", data, "")
        data = _read_toml(directory / "pyproject.toml", read_text).data
        if data is not None and isinstance(table_at(data, "tool").get("uv"), dict):
            return _config_file(directory / "pyproject.toml", data, "tool.uv")
    return None


# --- the workspace -------------------------------------------------------------------------


def workspace_root(project_dir: Path, read_text: ReadText) -> Path:
    """Where uv starts looking for project settings: the workspace root when there is one.

    uv's `Workspace::discover`: the nearest pyproject.toml is the project; an explicit
    `[tool.uv.workspace]` above it that lists it as a member is the root. Without a usable
    pyproject.toml (or with `managed = false`) uv falls back to the project directory.
    """
    for directory in (project_dir, *project_dir.parents):
        pyproject = _read_toml(directory / "pyproject.toml", read_text)
        if pyproject.exists:
            break
    else:
        return project_dir
    data = pyproject.data
    if data is None:
        return project_dir
    uv = table_at(data, "tool", "uv")
    if uv.get("managed") is False:
        return project_dir
    if "workspace" in uv:
        return directory
    if "project" not in data:
        return project_dir
    return _enclosing_workspace(directory, read_text)


def _enclosing_workspace(project: Path, read_text: ReadText) -> Path:
    """The root of the workspace that lists `project` as a member, else `project`: the
    nearest pyproject.toml above it with a `[tool.uv.workspace]` decides."""
    for parent in project.parents:
        above = _read_toml(parent / "pyproject.toml", read_text).data
        uv = table_at(above, "tool", "uv")
        if "workspace" not in uv:
            continue
        workspace = table_at(uv, "workspace")
        return parent if is_workspace_member(parent, workspace, project) else project
    return project


def is_workspace_member(root: Path, workspace: Mapping[str, Any], project: Path) -> bool:
    """Whether `workspace` (a `[tool.uv.workspace]` at `root`) lists `project`: a `members`
    glob matches it and no `exclude` glob does (segment by segment, `**` for any number)."""
    try:
        relative = PurePosixPath(project.relative_to(root).as_posix()).parts
    except ValueError:
        return False

    def matches(pattern: str) -> bool:
        return _glob_parts(relative, PurePosixPath(pattern.strip("/")).parts)

    members = strings(workspace.get("members"))
    excluded = strings(workspace.get("exclude"))
    return any(map(matches, members)) and not any(map(matches, excluded))


def _glob_parts(parts: Sequence[str], globs: Sequence[str]) -> bool:
    if not globs:
        return not parts
    head, rest = globs[0], globs[1:]
    if head == "**":
        return any(_glob_parts(parts[i:], rest) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _glob_parts(parts[1:], rest)


# --- the indexes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UvIndex:
    """One index uv is given. `label` is its name, or its URL when it has none."""

    label: str
    url: str
    default: bool = False
    explicit: bool = False
    flat: bool = False


def split_index_value(value: str) -> tuple[str | None, str]:
    """(name, url) of an index value `[name=]url` (`--index`, `--default-index`, `UV_INDEX`,
    ...), as uv's `Index::from_str` splits it: at the first `=`, when no `:` precedes it."""
    name, eq, url = value.partition("=")
    if eq and ":" not in name:
        return name, url
    return None, value


def index_order(
    args: ToolArgs, environ: Mapping[str, str], settings: Iterable[Mapping[str, Any]]
) -> list[UvIndex]:
    """Every index uv is given, in the order uv keeps them (see the module docstring).

    `settings` are `[tool.uv]`-shaped tables, highest precedence first.
    """
    layers = list(settings)

    def given(option: str, variable: str, *aliases: str) -> list[str]:
        raw = (
            args.values(option, *aliases)
            if args.has(option, *aliases)
            else [environ.get(variable, "")]
        )
        return [part for value in raw for part in value.split()]

    indexes = [_cli_index(v, default=True) for v in given("--default-index", "UV_DEFAULT_INDEX")]
    indexes += [_cli_index(v) for v in given("--index", "UV_INDEX")]
    indexes += [index for layer in layers for index in _index_tables(layer)]
    extras = given("--extra-index-url", "UV_EXTRA_INDEX_URL")
    extras += [url for layer in layers for url in strings(layer.get("extra-index-url"))]
    indexes += [UvIndex(url, url) for url in extras]
    defaults = given("--index-url", "UV_INDEX_URL", "-i")
    defaults += [url for layer in layers for url in strings(layer.get("index-url"))]
    indexes += [UvIndex(url, url, default=True) for url in defaults]
    return indexes


def configured_index_urls(settings: Mapping[str, Any]) -> list[str]:
    """The index URLs one `[tool.uv]`-shaped table names, whatever the command line says."""
    return [index.url for index in index_order(ToolArgs(), {}, [settings])]


def _index_tables(settings: Mapping[str, Any]) -> list[UvIndex]:
    """The `[[index]]` entries with a URL."""
    indexes: list[UvIndex] = []
    for item in tables(settings.get("index")):
        url = item.get("url")
        if isinstance(url, str):
            name = item.get("name")
            indexes.append(
                UvIndex(
                    label=name if isinstance(name, str) else url,
                    url=url,
                    default=item.get("default") is True,
                    explicit=item.get("explicit") is True,
                    flat=item.get("format") == "flat",
                )
            )
    return indexes


def _cli_index(entry: str, *, default: bool = False) -> UvIndex:
    name, url = split_index_value(entry)
    return UvIndex(label=name or url, url=url, default=default)


def consulted_indexes(order: list[UvIndex]) -> list[UvIndex]:
    """The indexes uv searches for an unpinned project, in the order it searches them."""
    seen: set[str] = set()
    unique: list[UvIndex] = []
    for index in order:
        if index.flat:
            continue
        if index.label != index.url:
            if index.label in seen:
                continue  # the first definition of a name wins
            seen.add(index.label)
        unique.append(index)
    implicit = [index for index in unique if not index.default and not index.explicit]
    default = next((index for index in unique if index.default), None)
    if default is not None and not default.explicit:
        implicit.append(default)
    return implicit


def index_strategy(
    args: ToolArgs, environ: Mapping[str, str], layers: Iterable[SettingsLayer]
) -> tuple[str, str] | None:
    """(strategy, where it is set) for the `index-strategy` uv obeys: `--index-strategy`,
    then `UV_INDEX_STRATEGY`, then the settings files; None when none sets it."""
    candidates: list[tuple[str, object]] = [
        ("--index-strategy", args.last("--index-strategy")),
        ("UV_INDEX_STRATEGY", environ.get("UV_INDEX_STRATEGY")),
        *((layer.place, layer.table.get("index-strategy")) for layer in layers),
    ]
    return next(((s, p) for p, s in candidates if isinstance(s, str) and s), None)
