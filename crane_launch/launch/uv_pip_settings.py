"""The uv settings model of `uv pip`: which settings files it reads and what they say.

`launch.uv_settings` has a second model, for the project commands; a later change merges
the two. Follows uv 0.13 (`crates/uv-settings/src/lib.rs`, `crates/uv/src/lib.rs`;
checked against uv 0.13.9):

- `--config-file`/`UV_CONFIG_FILE` replaces all other files; `--no-config`, `UV_NO_CONFIG`
  and the deprecated `--isolated` load none.
- Otherwise the project file is the nearest `uv.toml`, or `pyproject.toml` with a
  `[tool.uv]` table, found walking up from the workspace root (or from the current
  directory outside a workspace), merged with the user file (`$XDG_CONFIG_HOME/uv/uv.toml`,
  default `~/.config/uv/uv.toml`) and the first system file (`$XDG_CONFIG_DIRS/uv/uv.toml`,
  default `/etc/xdg/uv/uv.toml`, then `/etc/uv/uv.toml`).
- Scalars: project beats user beats system; lists are concatenated. `uv pip` reads the
  `[pip]` table as well as the top level.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane_launch.errors import ConfigError
from crane_launch.launch.files import ReadText, read_optional

__all__ = [
    "UvConfigFile",
    "UvConfigValue",
    "first_value",
    "script_config_file",
    "uv_config_files",
]


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


def first_value(files: Sequence[UvConfigFile], table: str, key: str) -> UvConfigValue | None:
    """`key` of `table` in the first of `files` (highest precedence first) that sets it."""
    for file in files:
        source = file.table(table)
        if key in source:
            return UvConfigValue(source[key], file.place(table))
    return None


def uv_config_files(
    environ: Mapping[str, str],
    *,
    cwd: Path,
    home: Path,
    config_file: str | None,
    no_config: bool,
    project: str | None,
    read_text: ReadText,
) -> list[UvConfigFile]:
    """The config files uv would merge, highest precedence first.

    Raises `ConfigError` for a `config_file` that cannot be read, or any file that cannot
    be parsed (except a pyproject.toml, which uv skips with a warning).
    """
    if config_file is not None:
        path = cwd / config_file
        data = _read_toml(path, read_text).data
        if data is None:
            raise ConfigError(f"uv config file {path}: cannot be read")
        return [_config_file(path, data, "")]
    if no_config:
        return []
    project_dir = cwd / project if project else cwd
    found = [
        _find_project_config(_workspace_root(project_dir, read_text), read_text),
        _user_config(environ, home, read_text),
        _system_config(environ, read_text),
    ]
    return [file for file in found if file is not None]


def _user_config(
    environ: Mapping[str, str], home: Path, read_text: ReadText
) -> UvConfigFile | None:
    xdg_home = environ.get("XDG_CONFIG_HOME", "")
    user_dir = Path(xdg_home) if xdg_home.startswith("/") else home / ".config"
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
    exists, text = read_optional(read_text, path)
    if text is None:
        return _Toml(exists, None)
    try:
        return _Toml(True, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        if path.name == "pyproject.toml":
            return _Toml(True, None)  # uv warns and goes on searching
        raise ConfigError(f"uv config file {path}: cannot be parsed ({exc})") from None


def script_config_file(path: Path, metadata: dict[str, Any]) -> UvConfigFile:
    """A script's PEP 723 metadata as a config file: its `[tool.uv]` settings."""
    return _config_file(path, metadata, "tool.uv")


def _config_file(path: Path, data: dict[str, Any], prefix: str) -> UvConfigFile:
    top = _subtable(_subtable(data, "tool"), "uv") if prefix else data
    pip = top.get("pip")
    return UvConfigFile(path, prefix, top, pip if isinstance(pip, dict) else {})


def _find_project_config(start: Path, read_text: ReadText) -> UvConfigFile | None:
    """uv's `FilesystemOptions::find`: the nearest uv.toml, or pyproject.toml with [tool.uv]."""
    for directory in (start, *start.parents):
        data = _read_toml(directory / "uv.toml", read_text).data
        if data is not None:
            return _config_file(directory / "uv.toml", data, "")
        data = _read_toml(directory / "pyproject.toml", read_text).data
        if data is not None:
            tool = data.get("tool")
            if isinstance(tool, dict) and isinstance(tool.get("uv"), dict):
                return _config_file(directory / "pyproject.toml", data, "tool.uv")
    return None


def _workspace_root(project_dir: Path, read_text: ReadText) -> Path:
    """Where uv starts looking for project config: the workspace root when there is one.

    uv's `Workspace::discover`: the nearest pyproject.toml is the project; an explicit
    `[tool.uv.workspace]` above it that lists it as a member (glob patterns, matched one
    path segment at a time here) is the root. Without a usable pyproject.toml uv falls
    back to searching from the project directory itself.
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
    uv = _subtable(_subtable(data, "tool"), "uv")
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
        if above is None:
            continue
        uv = _subtable(_subtable(above, "tool"), "uv")
        workspace = _subtable(uv, "workspace")
        if not workspace and "workspace" not in uv:
            continue
        relative = project.relative_to(parent).as_posix()
        members = [m for m in workspace.get("members", []) if isinstance(m, str)]
        excluded = [m for m in workspace.get("exclude", []) if isinstance(m, str)]
        if _glob_match(relative, members) and not _glob_match(relative, excluded):
            return parent
        return project
    return project


def _subtable(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The table under `key`; empty when it is missing or not a table."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _glob_match(relative: str, patterns: Sequence[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        pattern_parts = pattern.strip("/").removeprefix("./").split("/")
        if len(pattern_parts) == len(parts) and all(
            fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, pattern_parts, strict=True)
        ):
            return True
    return False
