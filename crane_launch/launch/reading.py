"""The tail shared by the index-door planners (pip, `uv pip`): a tool's reading -> a Plan.

Each planner reads its own inputs (argv, settings sources, requirements roots) into a
`Reading`. `finish` then applies the rules every such tool shares, in this order:

1. the user turned the index off (`--no-index`, `no-index = true`): the tool runs unchanged;
2. the requirements files are walked; a `--no-index` in one of them turns the index off too;
3. the files' index lines are sorted: an unregistered index is refused, a registered one
   joins the tool's `IndexChain` in `choose_indexes`;
4. no registered index in play: the tool runs unchanged;
5. otherwise the first refused setting is raised (the tool's own, then the files'), and
   with none the tool's `OpenDoor` step says how its run changes behind the index door.

A tool finishes its reading (which may fail on an unparsable config file) before `finish`
decides anything, so the errors a user sees come in the order the tool would meet them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from crane_launch.config import PrivateIndex, Registry, builtin_public_index, closest, normalise_url
from crane_launch.errors import ConfigError, UnknownIndexError, UsageError
from crane_launch.launch.files import ReadText
from crane_launch.launch.plan import (
    DirectReference,
    FileCopy,
    IndexDoorMode,
    IndexSetting,
    Plan,
    RecordedUrls,
    Rejection,
    Unchanged,
    local_location,
)
from crane_launch.launch.references import (
    pyproject_references,
    requirement_reference,
    script_references,
)
from crane_launch.launch.reqfiles import (
    Dialect,
    RequirementsWalk,
    Root,
    direct_references,
    walk_requirements,
)

__all__ = [
    "DoorSetup",
    "IndexChain",
    "IndexChoice",
    "OpenDoor",
    "Reading",
    "choose_indexes",
    "finish",
]

IndexChain: TypeAlias = tuple[IndexSetting, ...]
"""A tool's own index settings, from the one it obeys down to the ones it overrides
(command line, environment, config files)."""


@dataclass(frozen=True)
class Reading:
    """What a tool would do with one index command, as far as crane cares.

    `command` is the argv to run when no registered index is in play. `index_off` says
    where the user turned the index off ("--no-index on the command line"), None when it
    is on. `requirements` are the requirements files named outside any file, read in
    `dialect`, relative to `cwd`. `rejections` are the tool's refused settings in the order
    they are reported; `foreign_index_why` is the tool's reason for refusing an
    unregistered index line in a requirements file. `index_env_var` is the variable
    through which the tool is handed the index door.
    """

    tool: str
    command: tuple[str, ...]
    index_env_var: str
    index_off: str | None
    chain: IndexChain
    requirements: tuple[Root, ...]
    dialect: Dialect
    cwd: Path
    rejections: tuple[Rejection, ...]
    foreign_index_why: str
    find_links: tuple[str, ...] = ()
    """The local find-links locations the tool reads (directories or files)."""
    requirement_args: tuple[str, ...] | None = None
    """The part of `command` that names requirements (None: all of it); `uv tool run`
    stops before the arguments of the command it runs."""


@dataclass(frozen=True)
class DoorSetup:
    """How a tool's run changes behind the index door; see `IndexDoorMode` for the fields
    the runner acts on. `command` is the child's whole argv."""

    command: tuple[str, ...]
    env_set: Mapping[str, str] = field(default_factory=dict)
    env_unset: frozenset[str] = frozenset()
    file_copies: tuple[FileCopy, ...] = ()
    lock_output: Path | None = None
    notes: tuple[str, ...] = ()
    recorded: tuple[RecordedUrls, ...] = ()


OpenDoor: TypeAlias = Callable[[RequirementsWalk], DoorSetup]
"""A tool's last step, called only when a registered index is in play and nothing is
refused, with the walk of the requirements files the tool reads."""


def finish(
    reading: Reading,
    *,
    registry: Registry,
    environ: Mapping[str, str],
    read_text: ReadText,
    open_door: OpenDoor,
) -> Plan:
    """The plan for `reading`: `Unchanged` when the index is off or no registered index is
    in play, else `IndexDoorMode` for the chosen index with the changes of `open_door`.

    Raises `UnknownIndexError` for an unregistered index on the command line, `ConfigError`
    for two registered indexes in one run, and the first rejection (`RejectedSettingError`)
    once a registered index is in play.
    """
    if reading.index_off is not None:
        _refuse_bypasses_without_index(reading, registry, _walk(reading, environ, read_text))
        return _unchanged(reading, _no_index_note(reading.tool, reading.index_off))
    walk = _walk(reading, environ, read_text)
    if walk.no_index_places:
        _refuse_bypasses_without_index(reading, registry, walk)
        where = f"--no-index in {walk.no_index_places[0]}"
        return _unchanged(reading, _no_index_note(reading.tool, where))
    index_lines = walk.sort_index_lines(registry, reading.foreign_index_why)
    choice = choose_indexes(
        tool=reading.tool,
        registry=registry,
        chain=_with_environment_index(reading.chain, index_lines.registered, registry),
        file_lines=index_lines.registered,
        public_default=builtin_public_index,
    )
    if choice.private is None:
        return _unchanged(reading, f"no registered index in play; running {reading.tool} unchanged")
    refused = [*reading.rejections, *walk.rejections, *index_lines.foreign]
    if refused:
        raise refused[0].error()
    references = _references(reading, walk, environ, read_text)
    door = open_door(walk)
    return _behind_the_door(reading, choice.private, choice.public_url, door, references)


def _refuse_bypasses_without_index(
    reading: Reading, registry: Registry, walk: RequirementsWalk
) -> None:
    """With `--no-index` the tool asks no index at all, and crane runs it unchanged. A
    remote find-links page (or a proxy) would then still bring projects from the network,
    a private project's name among them: with a private index registered, that is
    refused as it is when an index is in play."""
    if not len(registry):
        return
    refused = [*reading.rejections, *walk.rejections]
    if refused:
        raise refused[0].error()


def _with_environment_index(
    chain: Sequence[IndexSetting], file_lines: Sequence[IndexSetting], registry: Registry
) -> Sequence[IndexSetting]:
    """`chain` with the index `CRANE_INDEX_URL` describes in front: in CI the variable is
    how a job says which index is private, so it is in play whatever the tool's own
    settings (environment, config files) name, which become the public index it falls
    back to. Only the command line (`-i`) and requirements files keep their own say: an
    unregistered index there is an error, another registered one a conflict."""
    described = next((index for index in registry if index.from_environment), None)
    if described is None:
        return chain
    if chain and chain[0].explicit:
        return chain
    other = next(
        (s for s in chain if (found := registry.find(s.url)) is not None and found != described),
        None,
    )
    if other is not None:
        raise ConfigError(
            f"CRANE_INDEX_URL ({described.url}) and {other.place} ({other.url}) name two "
            "private indexes; a run uses one: unset one of them"
        )
    return [IndexSetting(described.url, "CRANE_INDEX_URL"), *chain]


def _walk(reading: Reading, environ: Mapping[str, str], read_text: ReadText) -> RequirementsWalk:
    return walk_requirements(
        reading.requirements,
        dialect=reading.dialect,
        cwd=reading.cwd,
        environ=environ,
        read_text=read_text,
    )


def _no_index_note(tool: str, where: str) -> str:
    return f"{where}: {tool} uses no index; running {tool} unchanged"


def _unchanged(reading: Reading, note: str) -> Plan:
    return Plan(reading.tool, list(reading.command), Unchanged(), notes=[note])


def _references(
    reading: Reading, walk: RequirementsWalk, environ: Mapping[str, str], read_text: ReadText
) -> tuple[DirectReference, ...]:
    """Every location the tool will be told to take a project from: requirements on the
    command line, in requirements files, in the pyproject.toml of a local project being
    installed (or read for `--group`, or given as `-r pyproject.toml`), and in the PEP 723
    metadata of a script given as requirements."""
    found: list[DirectReference] = []
    given = reading.command if reading.requirement_args is None else reading.requirement_args
    for token in _argv_values(given):
        reference = requirement_reference(token, "command line")
        if reference is not None:
            found.append(reference)
        else:
            found += _local_references(reading.cwd / token, read_text)
    if any(arg == "--group" or arg.startswith("--group=") for arg in given):
        found += _local_references(reading.cwd, read_text)
    found += direct_references(walk, cwd=reading.cwd, environ=environ)
    return tuple(found)


_PYLOCK = re.compile(r"^pylock(\.[^.]+)?\.toml$")


def _argv_values(command: Sequence[str]) -> list[str]:
    """The command line's positional arguments and option values."""
    values: list[str] = []
    for token in command:
        if token.startswith("-"):
            _name, eq, value = token.partition("=")
            if eq and value:
                values.append(value)
        elif token:
            values.append(token)
    return values


def _local_references(path: Path, read_text: ReadText) -> list[DirectReference]:
    """The references of a local project (a directory with a pyproject.toml, or the file
    itself) or of a script with PEP 723 metadata; [] for anything else."""
    shown = str(path)
    if path.name != "pyproject.toml" and path.suffix != ".py":
        path = path / "pyproject.toml"
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    if path.suffix == ".py":
        return script_references(text, shown)
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return []  # the tool reports a broken project file itself
    return pyproject_references(data, str(path), {})


def _behind_the_door(
    reading: Reading,
    private: PrivateIndex,
    public_url: str,
    door: DoorSetup,
    references: tuple[DirectReference, ...],
) -> Plan:
    mode = IndexDoorMode(
        private,
        public_url,
        reading.index_env_var,
        env_set=door.env_set,
        env_unset=door.env_unset,
        file_copies=door.file_copies,
        lock_output=door.lock_output,
        recorded=door.recorded,
        direct_references=references,
        find_links=tuple(
            path
            for value in reading.find_links
            if (path := local_location(value, reading.cwd)) is not None
        ),
        lock_files=tuple(
            reading.cwd / root.value
            for root in reading.requirements
            if _PYLOCK.match(root.value.replace("\\", "/").rsplit("/", 1)[-1])
        ),
    )
    return Plan(reading.tool, list(door.command), mode, notes=list(door.notes))


@dataclass(frozen=True)
class IndexChoice:
    """The registered index in play (None: none is) and the public index for the run."""

    private: PrivateIndex | None
    public_url: str


def choose_indexes(
    *,
    tool: str,
    registry: Registry,
    chain: Sequence[IndexSetting],
    file_lines: Sequence[IndexSetting],
    public_default: Callable[[], str],
) -> IndexChoice:
    """Pick the registered index in play and the public index for this run.

    `chain` is the tool's `IndexChain`: its first entry is the index the tool would use.
    `file_lines` are index lines of requirements files, which the caller has already
    checked for foreign indexes. Rules:

    - an unregistered URL on the command line is `UnknownIndexError` with the closest
      registered URL as a hint;
    - the registered indexes in play are the chain's first entry (when registered) and
      every registered requirements-file line; two different ones are a `ConfigError`;
    - the public index is the private index's own `public_index`, else the first
      unregistered URL the chain names (the index the user's tool uses anyway), else
      `public_default()`.
    """
    _check_command_line(chain, registry)
    in_play = [
        _InPlay(index, setting)
        for setting in [*chain[:1], *file_lines]
        if (index := registry.find(setting.url)) is not None
    ]
    if not in_play:
        _check_ignored(tool, chain, registry)
        return IndexChoice(None, "")
    first_index = _one_index(tool, in_play)
    if first_index.public_index:
        return IndexChoice(first_index, first_index.public_index)
    fallback = _public_fallback(chain, registry)
    return IndexChoice(first_index, public_default() if fallback is None else fallback)


def _check_ignored(tool: str, chain: Sequence[IndexSetting], registry: Registry) -> None:
    """A registered index the user named on the command line that the tool would ignore
    (uv: `UV_DEFAULT_INDEX` beats `-i`) is an error, never a run without it."""
    ignored = next((s for s in chain[1:] if s.explicit and registry.find(s.url) is not None), None)
    if ignored is None or not chain:
        return
    winner = chain[0]
    raise ConfigError(
        f"{winner.place} ({winner.url}) overrides the private index {ignored.url} given on "
        f"the {ignored.place}: {tool} would not use the private index; unset it, or give the "
        "private index there"
    )


@dataclass(frozen=True)
class _InPlay:
    """A registered index in play, and the setting that brings it in."""

    index: PrivateIndex
    setting: IndexSetting


def _one_index(tool: str, in_play: Sequence[_InPlay]) -> PrivateIndex:
    """The registered index in play; `ConfigError` when they are not all the same."""
    first = in_play[0]
    for other in in_play[1:]:
        if other.index.url != first.index.url:
            raise ConfigError(
                f"{tool} would use two registered indexes, {first.index.url} "
                f"({first.setting.place}) and {other.index.url} ({other.setting.place}); "
                "crane runs one private index per run"
            )
    return first.index


def _check_command_line(chain: Sequence[IndexSetting], registry: Registry) -> None:
    known = [index.url for index in registry]
    for setting in chain:
        if setting.explicit and registry.find(setting.url) is None:
            raise UnknownIndexError(setting.url, closest(_spelling(setting.url), known))


def _public_fallback(chain: Sequence[IndexSetting], registry: Registry) -> str | None:
    """The first unregistered index the tool's settings name: the index the user's tool
    uses anyway for what the private index lacks."""
    for setting in chain:
        if setting.explicit or registry.find(setting.url) is not None:
            continue
        try:
            return normalise_url(setting.url)
        except UsageError:
            continue  # a local directory index cannot be the public fallback
    return None


def _spelling(url: str) -> str:
    try:
        return normalise_url(url)
    except UsageError:
        return url
