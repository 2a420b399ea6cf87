"""What the project planners (`launch.poetry`, `launch.uv_project`) share: the tool's own
options, the project's TOML files, and the registered indexes found in them.

Everything here is pure: files are read only through the `ReadText` a planner is given.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane_launch.config import PrivateIndex, Registry, builtin_public_index
from crane_launch.errors import ConfigError
from crane_launch.launch.files import ReadText, read_unless_missing
from crane_launch.launch.plan import DirectReference, Plan, TransparentDoorMode, Unchanged

__all__ = [
    "RegisteredIndexes",
    "ToolArgs",
    "load_toml",
    "nearest_pyproject",
    "parse_tool_args",
    "strings",
    "table_at",
    "tables",
    "under",
]


# --- the tool's own options ---------------------------------------------------------------


@dataclass
class ToolArgs:
    """The tool's options (name, value) in command-line order, and its subcommand.

    A flag's value is "". Long options are kept as spelled (`--dir` is not `--directory`).
    """

    command: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    target: str | None = None
    """For `run`: the command (or script) it runs, the first argument after its options."""

    def values(self, *names: str) -> list[str]:
        return [value for name, value in self.options if name in names]

    def last(self, *names: str) -> str | None:
        """The value of the last of `names` given, which is the one the tool obeys."""
        found = self.values(*names)
        return found[-1] if found else None

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.options)


def parse_tool_args(argv: Sequence[str], value_options: frozenset[str]) -> ToolArgs:
    """The tool's own options and its subcommand.

    `value_options` are the options that take a value (`--opt value`, `--opt=value`,
    `-Xvalue`, `-X=value`); any other option is a flag. Stops at `--` and, for `run`, at
    the command to run: what follows belongs to the child.
    """
    args = ToolArgs()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            if args.command == "run" and i + 1 < len(argv):
                args.target = argv[i + 1]
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq and name in value_options and i + 1 < len(argv):
                i += 1
                value = argv[i]
            args.options.append((name, value))
        elif arg.startswith("-") and len(arg) > 1:
            short = arg[:2]
            if short in value_options:
                value = arg[2:].removeprefix("=")
                if not value and i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                args.options.append((short, value))
            else:
                args.options.append((arg, ""))
        elif args.command is None:
            args.command = arg
        elif args.command == "run":
            args.target = arg
            break
        i += 1
    return args


def under(base: Path, value: str | None) -> Path:
    """`base / value`, or `base` when the option was not given (or given empty)."""
    return base / value if value else base


# --- the project's TOML files -------------------------------------------------------------


def load_toml(path: Path, read_text: ReadText) -> dict[str, Any] | None:
    """The parsed file, or None when there is no file at `path`.

    Raises `ConfigError` naming the file, on one line, when it exists but cannot be read,
    is not UTF-8 text, or is not valid TOML.
    """
    text = read_unless_missing(read_text, path)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: is not valid TOML ({reason})") from None


def nearest_pyproject(start: Path, read_text: ReadText) -> tuple[Path, dict[str, Any]] | None:
    """The first directory from `start` upwards holding a pyproject.toml, and its data."""
    for directory in (start, *start.parents):
        data = load_toml(directory / "pyproject.toml", read_text)
        if data is not None:
            return directory, data
    return None


def table_at(data: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    """The table at the dotted key path (`"tool", "uv"` is `[tool.uv]`); {} when any key on
    the way is missing or not a table, so a malformed file reads as an empty one."""
    current: Any = data or {}
    for key in keys:
        current = current.get(key) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else {}


def tables(value: object) -> list[dict[str, Any]]:
    """The tables of an array of tables (`[[tool.poetry.source]]`); other items are dropped."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def strings(value: object) -> list[str]:
    """A string or the strings of an array; anything else is no strings."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


# --- the registered indexes found ---------------------------------------------------------


class RegisteredIndexes:
    """The registered indexes a project names, each once, in the order first named."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._found: dict[str, PrivateIndex] = {}
        self._others: list[str] = []

    def check(self, url: str) -> PrivateIndex | None:
        """The registered index at `url` (any spelling `Registry.find` accepts), remembered;
        None when `url` is not registered."""
        index = self._registry.find(url)
        if index is not None:
            self._found.setdefault(index.url, index)
        elif url not in self._others:
            self._others.append(url)
        return index

    def plan(
        self,
        tool: str,
        argv: Sequence[str],
        *,
        refusals: list[str],
        notes: list[str],
        project_dir: Path | None = None,
        direct_references: Sequence[DirectReference] = (),
        find_links: Sequence[Path] = (),
    ) -> Plan:
        """The plan for `tool *argv`, whose argv is never changed: through the transparent
        door when an index was found (its lock files, in `project_dir`, verified before
        the run), else unchanged with a note saying so after `notes`.

        `refusals` are settings that would let another index provide a project of a
        private index: the first is raised (`ConfigError`, exit 3) once an index is in play.
        """
        command = [tool, *argv]
        found = dict(self._found)
        described = next((index for index in self._registry if index.from_environment), None)
        if described is not None:
            # The index CRANE_INDEX_URL describes is in play whether the project names it
            # or not: the guard and the lock check keep its projects its own.
            found.setdefault(described.url, described)
        if found and refusals:
            raise ConfigError(refusals[0])
        if found:
            first = next(iter(found.values()))
            public = next(iter(self._others), None) or first.public_index
            mode = TransparentDoorMode(
                privates=tuple(found.values()),
                public_url=public or builtin_public_index(),
                project_dir=project_dir,
                direct_references=tuple(direct_references),
                find_links=tuple(find_links),
            )
            return Plan(tool, command, mode, notes=list(notes))
        unchanged = f"no registered index in this project; running {tool} unchanged"
        return Plan(tool, command, Unchanged(), notes=[*notes, unchanged])
