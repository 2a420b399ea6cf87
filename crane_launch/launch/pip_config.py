"""pip's configuration for one command: its config files and `PIP_*` variables, in layers.

pip's behaviour this follows (`pip/_internal/configuration.py`, pip 26.3; the same rules
hold back to pip 23):

- Files are loaded in this order, later ones overriding earlier ones: global
  (`$XDG_CONFIG_DIRS/pip/pip.conf`, default `/etc/xdg/pip/pip.conf`, then `/etc/pip.conf`),
  user (`~/.pip/pip.conf`, then `$XDG_CONFIG_HOME/pip/pip.conf` or
  `~/.config/pip/pip.conf`), site (`sys.prefix/pip.conf`), then `PIP_CONFIG_FILE`.
  `PIP_CONFIG_FILE` equal to `os.devnull` loads no file at all; a `PIP_CONFIG_FILE` that
  exists replaces the user files.
- Keys are lower-cased with `_` read as `-`. Within the loaded files the command's section
  beats `[global]`; `PIP_<KEY>` environment variables beat both; empty values are ignored
  (`ConfigOptionParser._get_ordered_configuration_items`).
- `--isolated` makes pip ignore `PIP_*` variables and the user files, but not the global
  and site files or `PIP_CONFIG_FILE`.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from crane_launch.errors import ConfigError
from crane_launch.launch.files import ReadText, read_optional

__all__ = [
    "PipSetting",
    "PipSettings",
    "SettingLayer",
    "pip_config_files",
    "read_pip_settings",
    "setting_key",
]


class SettingLayer(IntEnum):
    """Where a pip setting comes from; a higher layer beats a lower one."""

    GLOBAL_SECTION = 0  # [global] of a config file
    COMMAND_SECTION = 1  # the command's own section, such as [install]
    ENVIRONMENT = 2  # a PIP_<KEY> variable


def setting_key(name: str) -> str:
    """pip's `_normalize_name`: how a config or environment key is compared."""
    return name.lower().replace("_", "-").removeprefix("--")


@dataclass(frozen=True)
class PipSetting:
    """One non-empty value pip reads for `key`, and the place a user would look for it."""

    key: str
    value: str
    place: str
    layer: SettingLayer


@dataclass(frozen=True)
class PipSettings:
    """pip's configuration for one command, lowest layer first (file order within one)."""

    values: tuple[PipSetting, ...]

    def effective(self, keys: Iterable[str]) -> PipSetting | None:
        """The value pip obeys among `keys`: the highest layer's, the last one within it."""
        wanted = set(keys)
        best: PipSetting | None = None
        for value in self.values:
            if value.key in wanted and (best is None or value.layer >= best.layer):
                best = value
        return best

    def chain(self, keys: Iterable[str]) -> list[PipSetting]:
        """The effective value of each layer, environment first."""
        wanted = set(keys)
        chain: list[PipSetting] = []
        for layer in sorted(SettingLayer, reverse=True):
            found = [v for v in self.values if v.layer == layer and v.key in wanted]
            if found:
                chain.append(found[-1])
        return chain

    def highest_first(self) -> list[PipSetting]:
        """Every value, the highest layer first (file order within one layer)."""
        return sorted(self.values, key=lambda v: v.layer, reverse=True)


def read_pip_settings(
    environ: Mapping[str, str],
    *,
    command: str,
    isolated: bool,
    python: str | None,
    site_prefix: Path | None,
    home: Path,
    cwd: Path,
    read_text: ReadText,
    platform: str = sys.platform,
) -> PipSettings:
    """The settings pip would read for `command`, run by `python` (None: `pip` itself).

    `site_prefix` is the `sys.prefix` of that Python, for its site config file; None
    means the virtual environment of `python`, else `$VIRTUAL_ENV`. Raises `ConfigError`
    for a config file that cannot be parsed.
    """
    if site_prefix is None:
        site_prefix = _site_prefix(python, environ, cwd, read_text)
    files = pip_config_files(
        environ,
        home=home,
        cwd=cwd,
        site_prefix=site_prefix,
        isolated=isolated,
        read_text=read_text,
        platform=platform,
    )
    values: list[PipSetting] = []
    for path in files:
        _, text = read_optional(read_text, path)
        if text is not None:
            values.extend(_config_file_settings(path, text, command))
    if not isolated:
        values.extend(_environment_settings(environ))
    values.sort(key=lambda v: v.layer)
    return PipSettings(tuple(values))


def pip_config_files(
    environ: Mapping[str, str],
    *,
    home: Path,
    cwd: Path,
    site_prefix: Path | None,
    isolated: bool,
    read_text: ReadText,
    platform: str = sys.platform,
) -> list[Path]:
    """The config files pip would load, in loading order (later ones win)."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    files: list[Path] = []
    if platform == "darwin":
        files.append(Path("/Library/Application Support/pip/pip.conf"))
    else:
        dirs = [d.strip() for d in environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep)]
        absolute = [d for d in dirs if d.startswith("/")] or ["/etc/xdg"]
        files.extend(Path(d) / "pip" / "pip.conf" for d in absolute)
        files.append(Path("/etc/pip.conf"))
    env_path = cwd / env_file if env_file else None
    env_exists = env_path is not None and read_optional(read_text, env_path)[0]
    if not isolated and not env_exists:
        files.append(home / ".pip" / "pip.conf")
        files.append(_user_config_dir(environ, home, platform, read_text) / "pip.conf")
    if site_prefix is not None:
        files.append(site_prefix / "pip.conf")
    if env_path is not None:
        files.append(env_path)
    return files


def _user_config_dir(
    environ: Mapping[str, str], home: Path, platform: str, read_text: ReadText
) -> Path:
    if platform == "darwin":
        # pip uses ~/Library/Application Support/pip when that directory exists. Reading a
        # directory fails with IsADirectoryError, which is how `read_optional` sees it.
        support = home / "Library" / "Application Support" / "pip"
        if read_optional(read_text, support)[0]:
            return support
        return home / ".config" / "pip"
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    return (Path(xdg) if xdg.startswith("/") else home / ".config") / "pip"


def _site_prefix(
    python: str | None, environ: Mapping[str, str], cwd: Path, read_text: ReadText
) -> Path | None:
    """Where pip's site config lives: the prefix of the Python that runs pip (`python` may
    also name an environment's directory, as pip's own `--python` allows)."""
    if python and "/" in python:
        given = cwd / python
        for candidate in (given, given.parent.parent):
            if read_optional(read_text, candidate / "pyvenv.cfg")[1] is not None:
                return candidate
    virtual_env = environ.get("VIRTUAL_ENV")
    return Path(virtual_env) if virtual_env else None


class _Parser(configparser.RawConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return setting_key(optionstr)


def _config_file_settings(path: Path, text: str, command: str) -> list[PipSetting]:
    """The non-empty values of `[global]` and `[<command>]` in one config file."""
    parser = _Parser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        message = str(exc).splitlines()[0]
        raise ConfigError(f"pip config file {path}: cannot be parsed ({message})") from None
    values: list[PipSetting] = []
    sections: Sequence[tuple[str, SettingLayer]] = (
        ("global", SettingLayer.GLOBAL_SECTION),
        (command, SettingLayer.COMMAND_SECTION),
    )
    for section, layer in sections:
        if not parser.has_section(section):
            continue
        place = f"pip config file {path}: [{section}]"
        values.extend(
            PipSetting(key, value.strip(), place, layer)
            for key, value in parser.items(section)
            if value
        )
    return values


def _environment_settings(environ: Mapping[str, str]) -> list[PipSetting]:
    # pip skips these two (`ENV_NAMES_IGNORED`): they would read as --version and --help.
    return [
        PipSetting(
            setting_key(name[4:]), value, f"environment variable {name}", SettingLayer.ENVIRONMENT
        )
        for name, value in environ.items()
        if name.startswith("PIP_") and value and name[4:].lower() not in ("version", "help")
    ]
