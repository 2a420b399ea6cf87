"""`crane audit`: which projects a project uses are the private index's, which are the
public index's, which are on both, and whether a dependency confusion already happened.

Inputs (`Inputs`): project names, requirements files (`-r`, with everything they
include), pyproject.toml dependencies, lock files (uv.lock, poetry.lock, pylock.toml)
and the distributions installed in an interpreter's environment (`--python`). Without
any, the pyproject.toml and the lock files of the working directory.

Requests are read-only and cheap: the private index's credentials are proven once (the
index door's probe), then every name's project page is asked for, 16 at a time, and the
public index's page only where the answer needs it: for each name the private index has
(is it on both? do the versions overlap?), and for each name a requirement asks for that
the private index lacks (is it on any index at all?). A name only a lock file or the
environment names, and that the private index lacks, is not asked about publicly.

Findings (exit 6, `EXIT_CONFUSION`): a project the private index has that
- a lock file takes from anywhere else (`locks.lock_violations`, the rule the run's own
  lock check applies);
- the environment holds in a version the private index does not have (only the public
  index has it, or no index does any more), or installed from a URL that is not on the
  private index (installers do not record the index a distribution came from; its
  version is the evidence);
- a requirement pins to a URL that is not on the private index.
Otherwise an index that could not answer for a name it was asked about gives exit 5
(crane cannot vouch for that name), else 0.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from crane_launch.config import PrivateIndex, Registry, origin_of, shown_url
from crane_launch.errors import EXIT_CONFUSION, EXIT_UPSTREAM, UsageError
from crane_launch.launch.command import public_index_for
from crane_launch.launch.locks import LockedPackage, find_locks, lock_violations, read_lock
from crane_launch.launch.wanted import (
    Installed,
    Wanted,
    installed_packages,
    pyproject_names,
    requirement_names,
)
from crane_launch.proxy.guard import NameStatus
from crane_launch.proxy.listing import highest, overlap, version_key
from crane_launch.proxy.routing import normalise_project

if TYPE_CHECKING:
    from crane_launch.proxy.door import IndexDoor

__all__ = [
    "FORMAT",
    "VERSION",
    "Audit",
    "Inputs",
    "PrivateNames",
    "Row",
    "choose_index",
    "collect",
    "judge",
    "private_names",
    "run_audit",
    "run_private_names",
    "survey",
]

FORMAT = "crane-audit"
VERSION = 1

_AT_ONCE = 16
T = TypeVar("T")

Presence = Literal["private", "public", "both", "neither", "not-private", "unknown"]


@dataclass(frozen=True)
class Inputs:
    """What `crane audit` reads (see the module docstring)."""

    names: tuple[str, ...] = ()
    requirements: tuple[Path, ...] = ()
    pyprojects: tuple[Path, ...] = ()
    locks: tuple[Path, ...] = ()
    python: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.names or self.requirements or self.pyprojects or self.locks) and (
            self.python is None
        )


@dataclass
class Answer:
    """One index's answer for one name; `status` None: not asked."""

    status: NameStatus | None = None
    versions: frozenset[str] = frozenset()
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        status = {None: "not asked", NameStatus.SERVED: "present"}.get(self.status)
        out: dict[str, Any] = {
            "status": status or self.status.value,  # type: ignore[union-attr]
            "versions": _sorted_versions(self.versions),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Row:
    """Everything the audit learned about one project."""

    name: str
    wanted: list[Wanted] = field(default_factory=list)
    locked: list[LockedPackage] = field(default_factory=list)
    installed: Installed | None = None
    private: Answer = field(default_factory=Answer)
    public: Answer = field(default_factory=Answer)
    findings: list[str] = field(default_factory=list)
    """Confusions: each one line, naming the place."""
    notes: list[str] = field(default_factory=list)

    @property
    def presence(self) -> Presence:
        private, public = self.private.status, self.public.status
        if private is NameStatus.UNKNOWN or public is NameStatus.UNKNOWN:
            return "unknown"
        if private is NameStatus.SERVED:
            return "both" if public is NameStatus.SERVED else "private"
        if public is NameStatus.SERVED:
            return "public"
        if public is None:
            # Only a lock or the environment names it, and the private index lacks it:
            # the public index was not asked.
            return "unknown" if private is None else "not-private"
        return "neither"

    @property
    def common(self) -> frozenset[str] | None:
        """For a project on both indexes, the versions both have."""
        if self.presence != "both":
            return None
        return overlap(self.private.versions, self.public.versions)

    @property
    def needs_public(self) -> bool:
        if self.private.status is NameStatus.SERVED:
            return True
        return self.private.status is NameStatus.ABSENT and bool(self.wanted)

    def verdict(self) -> str:
        """The table's last column."""
        if self.findings:
            # Each finding starts with its place; the whole line goes to stderr.
            places = [finding.split(": ", 1)[0] for finding in self.findings]
            return "CONFUSION: taken from elsewhere at " + ", ".join(places)
        presence = self.presence
        if presence == "unknown":
            reason = self.private.reason or self.public.reason or "no answer"
            return f"unknown: {reason}"
        if presence == "both":
            common = self.common or frozenset()
            text = "on both; " + (
                f"versions in common: {', '.join(_sorted_versions(common))}"
                if common
                else "no version in common"
            )
            top_private, top_public = highest(self.private.versions), highest(self.public.versions)
            if top_public is not None and (
                top_private is None
                or (
                    version_key(top_public) > version_key(top_private)
                    and not overlap([top_public], [top_private])
                )
            ):
                text += f"; the public index's is higher ({top_public})"
            return text
        if presence == "neither":
            return "on no index: anybody may claim this name publicly"
        if presence == "not-private":
            return "not on the private index (public index not asked)"
        return f"{presence} only"

    def as_json(self) -> dict[str, Any]:
        common = self.common
        return {
            "name": self.name,
            "presence": self.presence,
            "private": self.private.as_json(),
            "public": self.public.as_json(),
            "versions_in_common": None if common is None else _sorted_versions(common),
            "wanted_by": [wanted.place for wanted in self.wanted],
            "locked": [
                {"place": p.place, "version": p.version, "sources": list(p.sources)}
                for p in self.locked
            ],
            "installed": None
            if self.installed is None
            else {
                "version": self.installed.version,
                "direct_url": self.installed.direct_url,
                "installer": self.installed.installer,
            },
            "findings": self.findings,
            "notes": self.notes,
        }


@dataclass
class Audit:
    """The audit's result: a row per project, sorted by name."""

    private_url: str
    public_url: str
    rows: list[Row]

    @property
    def confusions(self) -> list[Row]:
        return [row for row in self.rows if row.findings]

    @property
    def unknown(self) -> list[Row]:
        return [row for row in self.rows if row.presence == "unknown"]

    @property
    def exit_code(self) -> int:
        if self.confusions:
            return EXIT_CONFUSION
        return EXIT_UPSTREAM if self.unknown else 0

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.presence] = counts.get(row.presence, 0) + 1
        order = ("private", "public", "both", "not-private", "neither", "unknown")
        labels = {
            "both": "on both",
            "neither": "on no index",
            "not-private": "not on the private index",
        }
        parts = [f"{counts[key]} {labels.get(key, key)}" for key in order if counts.get(key)]
        line = f"audit of {_count(len(self.rows), 'project')}: {', '.join(parts) or 'nothing'}"
        if self.confusions:
            names = ", ".join(row.name for row in self.confusions)
            line += f"; dependency confusion: {names}"
        return line

    def table(self) -> list[str]:
        header = ("PROJECT", "PRIVATE", "PUBLIC", "IN USE", "VERDICT")
        lines = [
            (row.name, _shown(row.private), _shown(row.public), _in_use(row), row.verdict())
            for row in self.rows
        ]
        widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(4)]
        return [
            "  ".join(cell.ljust(width) for cell, width in zip(cells[:4], widths, strict=True))
            + "  "
            + cells[4]
            for cells in [header, *lines]
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "private_index": self.private_url,
            "public_index": self.public_url,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "projects": [row.as_json() for row in self.rows],
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=2)


# -- choosing the index ----------------------------------------------------------------------


def choose_index(registry: Registry, url: str | None) -> PrivateIndex:
    """`--index URL` (registered, any spelling), or the one index registered."""
    if url is not None:
        return registry.get(url)
    indexes = list(registry)
    if not indexes:
        raise UsageError("no index registered; add one with `crane index register URL ...`")
    if len(indexes) > 1:
        urls = ", ".join(index.url for index in indexes)
        raise UsageError(f"more than one index is registered ({urls}); choose one with --index")
    return indexes[0]


# -- the audit -------------------------------------------------------------------------------


class Lookups(Protocol):
    """How the audit asks the indexes, by the index door's rules (`IndexDoor` does)."""

    async def private_versions(self, project: str) -> tuple[NameStatus, frozenset[str], str]:
        """(status, versions, why UNKNOWN) for the private index."""
        ...

    async def public_versions(self, project: str) -> tuple[NameStatus, frozenset[str], str]:
        """The same for the public index."""
        ...


def collect(
    inputs: Inputs,
    *,
    cwd: Path,
    environ: Mapping[str, str],
    hidden: frozenset[str] = frozenset(),
) -> list[Row]:
    """A row per project the inputs name (see the module docstring), before any request.
    Raises UsageError for an input that cannot be read."""
    rows: dict[str, Row] = {}

    def row(name: str) -> Row:
        key = normalise_project(name)
        return rows.setdefault(key, Row(key))

    if inputs.empty:
        inputs = _default_inputs(cwd)
    for wanted in _wanted(inputs, cwd=cwd, environ=environ):
        row(wanted.name).wanted.append(wanted)
    for path in inputs.locks:
        full = cwd / path
        if not full.is_file():
            raise UsageError(f"--lock {path}: no such file")
        for package in read_lock(full, project_dir=full.parent):
            if not package.local or package.sources:
                # The user's own package counts only for what it fetches from elsewhere
                # (the rule of the run's own lock check).
                row(package.name).locked.append(package)
    if inputs.python is not None:
        for installed in installed_packages(inputs.python, environ, hidden=hidden):
            if installed.editable or installed.directory:
                continue  # the user's own tree
            row(installed.name).installed = installed
    return [rows[name] for name in sorted(rows)]


def _wanted(inputs: Inputs, *, cwd: Path, environ: Mapping[str, str]) -> list[Wanted]:
    """The names, requirements files and pyproject.toml files of `inputs`, read."""
    found = [Wanted(normalise_project(name), "command line") for name in inputs.names]
    if inputs.requirements:
        found += requirement_names(
            inputs.requirements, cwd=cwd, environ=environ, read_text=_read_text
        )
    for path in inputs.pyprojects:
        found += pyproject_names(cwd / path, read_text=_read_text, cwd=cwd)
    return found


def _default_inputs(cwd: Path) -> Inputs:
    pyproject = cwd / "pyproject.toml"
    pyprojects = (pyproject,) if pyproject.is_file() else ()
    locks = tuple(find_locks(cwd))
    if not pyprojects and not locks:
        raise UsageError(
            "nothing to audit here: give project names, -r FILE, --pyproject FILE, "
            "--lock FILE or --python PY, or run it in a project directory"
        )
    return Inputs(pyprojects=pyprojects, locks=locks)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def survey(rows: Sequence[Row], lookups: Lookups) -> None:
    """Ask the indexes about every row, `_AT_ONCE` names at a time; the public index only
    where `Row.needs_public` says so."""
    slots = asyncio.Semaphore(_AT_ONCE)

    async def one(row: Row) -> None:
        async with slots:
            row.private = Answer(*await lookups.private_versions(row.name))
        if row.needs_public:
            async with slots:
                row.public = Answer(*await lookups.public_versions(row.name))

    await asyncio.gather(*(one(row) for row in rows))


def judge(rows: Iterable[Row], *, private_url: str, python: str | None) -> None:
    """Fill each row's findings and notes from the answers (see the module docstring)."""
    private_origin = origin_of(private_url)
    for row in rows:
        if row.private.status is not NameStatus.SERVED:
            continue
        for violation in lock_violations(
            row.locked, private_url=private_url, private_names={row.name}
        ):
            row.findings.append(violation.message(private_url))
        for wanted in row.wanted:
            if wanted.url is not None and not _on_origin(wanted.url, private_origin):
                row.findings.append(
                    f"{wanted.place}: {row.name} would come from {shown_url(wanted.url)}, but "
                    f"private index {private_url} has {row.name}; remove the URL"
                )
        if row.installed is not None:
            _judge_installed(row, row.installed, private_url, private_origin, python or "")


def _judge_installed(
    row: Row, installed: Installed, private_url: str, private_origin: object, python: str
) -> None:
    what = f"{python}: {row.name} {installed.version} is installed"
    tail = f"but private index {private_url} has {row.name}; reinstall it with crane"
    url = installed.direct_url
    if url is not None and not url.startswith("file:"):
        if not _on_origin(url, private_origin):
            row.findings.append(f"{what} from {shown_url(url)}, {tail}")
        return
    on_private = bool(overlap([installed.version], row.private.versions))
    on_public = bool(overlap([installed.version], row.public.versions))
    if on_private and on_public:
        row.notes.append(f"{what}: a version both indexes have; installers do not record which one")
    elif on_public:
        row.findings.append(f"{what}, a version only the public index has, {tail}")
    elif not on_private:
        # Not from the private index as it is now: from elsewhere, or a release it no
        # longer has. Either way, nothing vouches for it.
        row.findings.append(f"{what}, a version the private index does not have, {tail}")


def _on_origin(url: str, origin: object) -> bool:
    try:
        return "://" in url and origin_of(url) == origin
    except ValueError:
        return False


def run_audit(
    inputs: Inputs,
    *,
    index_url: str | None,
    environ: Mapping[str, str],
    cwd: Path,
    no_input: bool,
) -> Audit:
    """Read `inputs`, ask the indexes, judge: the whole `crane audit`."""
    registry = Registry.for_run(environ)
    index = choose_index(registry, index_url)
    public_url = public_index_for(index, environ, registry)
    rows = collect(inputs, cwd=cwd, environ=environ, hidden=registry.secret_variables())
    if rows:
        _with_door(index, public_url, environ, no_input, lambda door: survey(rows, door))
        judge(rows, private_url=index.url, python=inputs.python)
    return Audit(index.url, public_url, rows)


def run_private_names(
    *, index_url: str | None, environ: Mapping[str, str], no_input: bool
) -> PrivateNames:
    """`crane audit --private-names`: list the private index, ask the public one."""
    registry = Registry.for_run(environ)
    index = choose_index(registry, index_url)
    public_url = public_index_for(index, environ, registry)

    async def work(door: IndexDoor) -> dict[str, Answer]:
        return await private_names(await door.listed_projects(), door)

    answers = _with_door(index, public_url, environ, no_input, work)
    return PrivateNames(index.url, public_url, answers)


def _with_door(
    index: PrivateIndex,
    public_url: str,
    environ: Mapping[str, str],
    no_input: bool,
    work: Callable[[IndexDoor], Awaitable[T]],
) -> T:
    """`work` done with an index door for `index` (never served: its rules and client
    only), once the index has proven crane's credentials."""
    from crane_launch.launch.doors import credentials_for, index_spec
    from crane_launch.proxy.door import IndexDoor
    from crane_launch.proxy.upstream import Upstream

    tokens = credentials_for(index, environ, no_input=no_input)

    async def asked() -> T:
        upstream = Upstream(index.url, tokens)
        door = IndexDoor(index_spec(index, public_url), upstream)
        try:
            await door.probe()
            return await work(door)
        finally:
            await upstream.aclose()

    return asyncio.run(asked())


# -- private names ---------------------------------------------------------------------------


@dataclass
class PrivateNames:
    """`--private-names`: the private index's projects and whether the public has each."""

    private_url: str
    public_url: str
    answers: dict[str, Answer]

    def _names(self, status: NameStatus) -> list[str]:
        return sorted(name for name, answer in self.answers.items() if answer.status is status)

    @property
    def private_only(self) -> list[str]:
        return self._names(NameStatus.ABSENT)

    @property
    def on_both(self) -> list[str]:
        return self._names(NameStatus.SERVED)

    @property
    def unknown(self) -> list[str]:
        return self._names(NameStatus.UNKNOWN)

    @property
    def exit_code(self) -> int:
        return EXIT_UPSTREAM if self.unknown else 0

    def summary(self) -> str:
        line = (
            f"{_count(len(self.private_only), 'project')} of private index {self.private_url} "
            f"{'is' if len(self.private_only) == 1 else 'are'} not on the public index "
            f"{self.public_url}: reserve {'it' if len(self.private_only) == 1 else 'them'} there"
        )
        if self.on_both:
            line += f"; on both already: {', '.join(self.on_both)}"
        if self.unknown:
            line += f"; the public index could not say for {', '.join(self.unknown)}"
        return line

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "private_index": self.private_url,
            "public_index": self.public_url,
            "exit_code": self.exit_code,
            "private_only": self.private_only,
            "on_both": self.on_both,
            "unknown": {name: self.answers[name].reason for name in self.unknown},
        }


async def private_names(names: Sequence[str], lookups: Lookups) -> dict[str, Answer]:
    """The public index's answer for each of the private index's `names`."""
    slots = asyncio.Semaphore(_AT_ONCE)

    async def one(name: str) -> tuple[str, Answer]:
        async with slots:
            return name, Answer(*await lookups.public_versions(name))

    return dict(await asyncio.gather(*(one(name) for name in names)))


# -- showing ---------------------------------------------------------------------------------


def _shown(answer: Answer) -> str:
    if answer.status is None:
        return ""
    if answer.status is NameStatus.UNKNOWN:
        return "?"
    if answer.status is NameStatus.ABSENT:
        return "-"
    versions = _sorted_versions(answer.versions)
    if not versions:
        return "(no files)"
    if len(versions) <= 2:
        return ", ".join(versions)
    return f"{versions[0]} .. {versions[-1]} ({len(versions)})"


def _in_use(row: Row) -> str:
    used = [f"{p.version or '?'} ({p.place.rsplit(':', 1)[0]})" for p in row.locked]
    if row.installed is not None:
        used.append(f"{row.installed.version} (installed)")
    return ", ".join(dict.fromkeys(used))


def _sorted_versions(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=version_key)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
