"""Plan `crane poetry ...`: the registered sources a poetry project uses, and whether its
other sources could shadow them. Follows poetry 2.x.

Where the sources come from
---------------------------
`[[tool.poetry.source]]` `url`s in the pyproject.toml found by walking up from the project
directory (`-C/--directory` changes the working directory, then `-P/--project` is resolved
against it), and `[package.source] url` of type `legacy` in the poetry.lock beside it.
Poetry reads sources from no other place, and none from the environment.

Warning rules
-------------
Priorities are `primary` (the default), `supplemental` and `explicit`. All primary sources
are searched and their candidates merged, so the best version wins across them;
supplemental sources are searched, in order, only when nothing was found before them;
explicit ones only for dependencies pinned with `source = "<name>"`. The implicit public
index is added as primary when no source is primary and none is named `pypi`. For each
registered source S that is primary or supplemental, crane warns about each unregistered
source P that is searched with or before it: P primary, or P supplemental and declared
before a supplemental S; and about the implicit public index when it is on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane_launch.config import PrivateIndex, Registry
from crane_launch.launch.files import ReadText
from crane_launch.launch.plan import DirectReference, Plan, Unchanged
from crane_launch.launch.project_scan import (
    RegisteredIndexes,
    ToolArgs,
    load_toml,
    nearest_pyproject,
    parse_tool_args,
    table_at,
    tables,
    under,
)
from crane_launch.launch.references import pyproject_references, requirement_reference
from crane_launch.proxy.routing import normalise_project

__all__ = ["plan_poetry"]

_VALUE_OPTIONS = frozenset({"--directory", "-C", "--project", "-P"})


@dataclass(frozen=True)
class _Source:
    name: str
    url: str | None
    priority: str


def plan_poetry(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """Plan `poetry *argv`: the registered sources it uses and the shadowing warnings.

    The command is always `["poetry", *argv]`. The mode is `TransparentDoorMode` with the
    registered indexes in the order the project names them (sources, then the lock file),
    else `Unchanged` with a note. Raises `ConfigError` for a project file that cannot be
    read or parsed. See the module docstring for where sources come from and the warnings.
    """
    del environ  # poetry takes no source from the environment
    args = parse_tool_args(argv, _VALUE_OPTIONS)
    start = _start(args, cwd)
    found = nearest_pyproject(start, read_text)
    if found is None:
        note = f"no pyproject.toml in {start} or its parents; running poetry unchanged"
        return Plan("poetry", ["poetry", *argv], Unchanged(), notes=[note])
    project, data = found
    sources = _sources(data)
    registered = RegisteredIndexes(registry)
    private_names: dict[str, PrivateIndex] = {}
    for source in sources:
        index = registered.check(source.url) if source.url else None
        if index is not None:
            private_names[source.name] = index
    for url in _locked_legacy_urls(load_toml(project / "poetry.lock", read_text)):
        registered.check(url)
    refusals = _shadowing_warnings(sources, private_names)
    names = {source.name: source.url for source in sources if source.url}
    references = pyproject_references(data, str(project / "pyproject.toml"), names)
    if args.command == "add":
        references += _added(argv[argv.index("add") + 1 :], names)
    return registered.plan(
        "poetry",
        argv,
        refusals=refusals,
        notes=[],
        project_dir=project,
        direct_references=references,
    )


def _start(args: ToolArgs, cwd: Path) -> Path:
    working = under(cwd, args.last("--directory", "-C"))
    return under(working, args.last("--project", "-P"))


_ADD_VALUE_OPTIONS = frozenset({"--group", "-G", "--source", "--extras", "-E", "--python"})


def _added(args: Sequence[str], sources: Mapping[str, str]) -> list[DirectReference]:
    """What `poetry add` would pin: `URL`, `"name @ URL"` and `git+...` arguments, and with
    `--source S` every added package to source S (poetry writes `source = "S"`)."""
    packages: list[str] = []
    source: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name == "--source":
            source = value if eq else (args[i + 1] if i + 1 < len(args) else None)
        if arg in _ADD_VALUE_OPTIONS:
            i += 2
            continue
        if not arg.startswith("-"):
            packages.append(arg)
        i += 1
    found = [r for p in packages if (r := requirement_reference(p, "command line")) is not None]
    if source is not None:
        place = f"command line --source {source}"
        url = sources.get(source, source)
        found += [
            DirectReference(normalise_project(_bare_name(p)), url, place, kind="index")
            for p in packages
            if requirement_reference(p, "") is None and _bare_name(p)
        ]
    return found


def _bare_name(requirement: str) -> str:
    """The project of a `poetry add` argument: `name`, `name@^1.0`, `name[extra]>=1`."""
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", requirement.strip())
    return match.group(1) if match else ""


def _sources(pyproject: Mapping[str, Any]) -> list[_Source]:
    return [
        _Source(
            name=str(item.get("name", "")),
            url=item["url"] if isinstance(item.get("url"), str) else None,
            priority=str(item.get("priority", "primary")).lower(),
        )
        for item in tables(table_at(pyproject, "tool", "poetry").get("source"))
    ]


def _locked_legacy_urls(lock: Mapping[str, Any] | None) -> Iterator[str]:
    """The index URLs poetry.lock records (`legacy` sources; git and file sources are not
    indexes)."""
    for package in tables((lock or {}).get("package")):
        locked = table_at(package, "source")
        if locked.get("type") == "legacy" and isinstance(locked.get("url"), str):
            yield locked["url"]


def _shadowing_warnings(
    sources: list[_Source], private_names: Mapping[str, PrivateIndex]
) -> list[str]:
    warnings: list[str] = []
    has_primary = any(source.priority == "primary" for source in sources)
    implicit_public = not has_primary and all(s.name.lower() != "pypi" for s in sources)
    for position, private in enumerate(sources):
        index = private_names.get(private.name)
        if index is None or private.priority not in ("primary", "supplemental"):
            continue
        pin = f'pin them with `source = "{private.name}"`'
        for other_position, other in enumerate(sources):
            if other.name in private_names:
                continue
            fix = _demotion(private, other, declared_before=other_position < position)
            if fix is not None:
                warnings.append(
                    f"poetry source '{other.name}' (priority {other.priority}) could provide "
                    f"projects that also exist on private index {index.url}; {pin} or {fix}"
                )
        if implicit_public:
            warnings.append(
                "poetry's implicit public index (priority primary, on because no source is "
                f"primary) could provide projects that also exist on private index {index.url}; "
                f"{pin} or make source '{private.name}' primary"
            )
    return warnings


def _demotion(private: _Source, other: _Source, *, declared_before: bool) -> str | None:
    """How to keep `other` from being searched with or before the registered `private`;
    None when poetry searches it only after `private` (or never for unpinned projects)."""
    if other.priority == "primary":
        if private.priority == "primary":
            return "make the other source supplemental or explicit"
        return "make the other source explicit"
    if other.priority == "supplemental" and private.priority == "supplemental" and declared_before:
        return "make the other source explicit"
    return None
