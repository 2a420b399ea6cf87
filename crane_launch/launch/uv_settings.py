"""The uv settings model of the project commands (`uv sync`, `uv lock`, `uv run`, ...): which
settings files uv reads, the indexes it is given in the order it keeps them, and the index
strategy. Follows uv 0.13.x (checked against uv 0.13.9 with `uv lock --show-settings`).

`launch.uv` has its own model for `uv pip`, which reads more (the `[pip]` table, the system
`uv.toml`); a later change merges the two.

Settings files, highest precedence first: `--config-file` / `UV_CONFIG_FILE` alone, else
(unless `--no-config` / `UV_NO_CONFIG`) the project file, the first directory from the
workspace root upwards holding a `uv.toml` or a pyproject.toml with a `[tool.uv]` table
(`uv.toml` wins in the same directory), then the user-level `uv.toml`
(`$XDG_CONFIG_HOME/uv` or `~/.config/uv`). The system-level file is not read.

Index order: each kind combines its layers, command line first (a variable only when its
option is absent), then the settings files: `--default-index`, `--index`, `[[index]]`;
then `--extra-index-url`, `extra-index-url`; then `--index-url`, `index-url`. A name
defined twice keeps its first definition; `explicit = true` indexes only serve projects
pinned in `[tool.uv.sources]`; the first index marked default (else the implicit public
index) is consulted last; `format = "flat"` entries are find-links, not indexes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane_launch.launch.argv import strtobool
from crane_launch.launch.files import ReadText
from crane_launch.launch.project_scan import (
    ToolArgs,
    load_toml,
    strings,
    table_at,
    tables,
    under,
)

__all__ = [
    "SettingsLayer",
    "UvIndex",
    "configured_index_urls",
    "consulted_indexes",
    "index_order",
    "index_strategy",
    "settings_layers",
    "uv_flag",
]


@dataclass(frozen=True)
class SettingsLayer:
    """One settings file: where it is (for messages) and its `[tool.uv]`-shaped table."""

    place: str
    table: dict[str, Any]


@dataclass(frozen=True)
class UvIndex:
    """One index uv is given. `label` is its name, or its URL when it has none."""

    label: str
    url: str
    default: bool = False
    explicit: bool = False
    flat: bool = False


def uv_flag(args: ToolArgs, option: str, environ: Mapping[str, str], variable: str) -> bool:
    """Whether a uv flag is on: given on the command line, or its variable set true.

    uv reads the variable with clap's boolean spelling, as `argv.strtobool` does; uv
    refuses other values, crane counts them as off.
    """
    return args.has(option) or strtobool(environ.get(variable, "")) is True


def settings_layers(
    args: ToolArgs,
    environ: Mapping[str, str],
    *,
    working_dir: Path,
    project_root: Path | None,
    read_text: ReadText,
) -> list[SettingsLayer]:
    """The settings files uv reads, highest precedence first (see the module docstring).

    `working_dir` is where uv runs after `--directory`; a relative `--config-file` is
    resolved against it. `project_root` is the workspace root (None outside a project).
    A `--config-file` that does not exist reads as an empty layer.
    """
    config_file = args.last("--config-file") or environ.get("UV_CONFIG_FILE")
    if config_file:
        path = under(working_dir, config_file)
        return [SettingsLayer(str(path), load_toml(path, read_text) or {})]
    if uv_flag(args, "--no-config", environ, "UV_NO_CONFIG"):
        return []
    layers: list[SettingsLayer] = []
    if project_root is not None:
        project = _project_settings(project_root, read_text)
        if project is not None:
            layers.append(project)
    user = _user_uv_toml(environ)
    if user is not None:
        user_data = load_toml(user, read_text)
        if user_data is not None:
            layers.append(SettingsLayer(str(user), user_data))
    system = _system_uv_toml(environ, read_text)
    if system is not None:
        layers.append(system)
    return layers


def _system_uv_toml(environ: Mapping[str, str], read_text: ReadText) -> SettingsLayer | None:
    """The first system settings file: `$XDG_CONFIG_DIRS/uv/uv.toml` (default
    `/etc/xdg`), then `/etc/uv/uv.toml` (uv 0.13: `uv_settings::system_config_file`)."""
    directories = []
    for directory in (environ.get("XDG_CONFIG_DIRS", "") or "/etc/xdg").split(":"):
        if not directory:
            break
        directories.append(Path(directory) / "uv" / "uv.toml")
    for path in [*directories, Path("/etc/uv/uv.toml")]:
        data = load_toml(path, read_text)
        if data is not None:
            return SettingsLayer(str(path), data)
    return None


def _project_settings(root: Path, read_text: ReadText) -> SettingsLayer | None:
    """The project-level settings: uv.toml, else a pyproject.toml with `[tool.uv]`."""
    for directory in (root, *root.parents):
        uv_toml = load_toml(directory / "uv.toml", read_text)
        if uv_toml is not None:
            return SettingsLayer(str(directory / "uv.toml"), uv_toml)
        pyproject = load_toml(directory / "pyproject.toml", read_text)
        if pyproject is not None and "uv" in table_at(pyproject, "tool"):
            return SettingsLayer(
                str(directory / "pyproject.toml"), table_at(pyproject, "tool", "uv")
            )
    return None


def _user_uv_toml(environ: Mapping[str, str]) -> Path | None:
    config_home = environ.get("XDG_CONFIG_HOME")
    if config_home and Path(config_home).is_absolute():
        return Path(config_home) / "uv" / "uv.toml"
    home = environ.get("HOME")
    return Path(home) / ".config" / "uv" / "uv.toml" if home else None


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
    name, url = _split_named(entry)
    return UvIndex(label=name or url, url=url, default=default)


def _split_named(entry: str) -> tuple[str | None, str]:
    """uv's `name=url` form for `--index` / `UV_INDEX` entries."""
    name, eq, url = entry.partition("=")
    if eq and name and all(c.isalnum() or c in "-_." for c in name):
        return name, url
    return None, entry


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
