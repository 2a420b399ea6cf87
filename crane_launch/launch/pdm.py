"""Plan `crane pdm install|lock|sync|add|update|remove ...`: the registered sources a pdm
project uses, through the transparent door (like poetry: pyproject.toml and pdm.lock are
never rewritten). Follows pdm 2.29 (`pdm/project/core.py` sources, `pdm/models/repositories`),
checked against pdm 2.29.4.

Where the sources come from
---------------------------
`[[tool.pdm.source]]` of the pyproject.toml found by walking up from `-p/--project` (else
the working directory), with `${VAR}` expanded from the environment; `[pypi.NAME] url` of
the project's `pdm.toml` and of the global config (`-c/--config`, else `PDM_CONFIG_FILE`,
else `$XDG_CONFIG_HOME/pdm/config.toml`); and the default source, `pypi.url`
(`PDM_PYPI_URL`, else `pdm.toml`, else the global config, else the public index), which a
source named `pypi` replaces. `PDM_IGNORE_STORED_INDEX` drops the config's sources and the
default one.

Refusal rule
------------
pdm asks every source for every project and takes the best version across them, and
`respect-source-order` still asks the later sources (pdm 2.29.4, measured). Only a source's
`include_packages` keeps a project's name away from the others: when any source includes
a name, only the sources that include it are asked. So a registered source must list its
projects in `include_packages` (patterns like `corp-*`) whenever pdm has another index
source; otherwise the guard would refuse pdm's request for the private projects on the
other index in the middle of the run. Projects a private index has that its patterns miss
are still the guard's to refuse.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane_launch.config import Registry, builtin_public_index
from crane_launch.launch.argv import strtobool
from crane_launch.launch.files import ReadText
from crane_launch.launch.plan import FIND_LINKS_WHY, Plan, Unchanged, local_location, remote_links
from crane_launch.launch.project_scan import (
    RegisteredIndexes,
    load_toml,
    nearest_pyproject,
    parse_tool_args,
    strings,
    table_at,
    tables,
    under,
)
from crane_launch.launch.references import pyproject_references

__all__ = ["PDM_INDEX_COMMANDS", "plan_pdm"]

PDM_INDEX_COMMANDS = frozenset(
    {"install", "lock", "sync", "add", "update", "remove", "build", "show", "outdated", "search"}
)
"""The pdm commands that ask an index: resolving and installing, `build` (its build
requirements), `show` and `outdated` (a project's releases)."""
_VALUE_OPTIONS = frozenset(
    """
    -c --config -p --project -L --lockfile -C --config-setting -G --group --with --without
    --override -k --skip -S --strategy --exclude-newer --exclude-newer-override --python
    --platform --implementation -e --editable
    """.split()  # noqa: SIM905 - one option per word
)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class _Source:
    name: str
    url: str
    place: str
    kind: str  # "index" or "find_links"
    include: tuple[str, ...]


def plan_pdm(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """Plan `pdm *argv`: `TransparentDoorMode` for the registered sources it uses, else
    `Unchanged` with a note. Raises `ConfigError` for a source setup that lets another
    index answer for a private project, and for a project file that cannot be parsed."""
    args = parse_tool_args(argv, _VALUE_OPTIONS)
    if args.command not in PDM_INDEX_COMMANDS or args.has("-h", "--help", "-V", "--version"):
        return Plan("pdm", ["pdm", *argv], Unchanged(), notes=["this pdm command uses no index"])
    start = under(cwd, args.last("-p", "--project"))
    found = nearest_pyproject(start, read_text)
    if found is None:
        note = f"no pyproject.toml in {start} or its parents; running pdm unchanged"
        return Plan("pdm", ["pdm", *argv], Unchanged(), notes=[note])
    project, data = found
    sources = list(_sources(data, project, args.last("-c", "--config"), environ, read_text))
    registered = RegisteredIndexes(registry)
    private = [s for s in sources if registered.check(s.url) is not None]
    refusals = _refusals(sources, private, registry)
    references = pyproject_references(data, str(project / "pyproject.toml"), {})
    links = [
        path for s in sources if s.kind == "find_links" and (path := local_location(s.url, project))
    ]
    return registered.plan(
        "pdm",
        argv,
        refusals=refusals,
        notes=[],
        project_dir=project,
        direct_references=references,
        find_links=links,
    )


def _sources(
    pyproject: Mapping[str, Any],
    project: Path,
    config_file: str | None,
    environ: Mapping[str, str],
    read_text: ReadText,
) -> Iterator[_Source]:
    """Every source pdm uses: the project's (a url missing there comes from the config's
    `[pypi.NAME]`, or for `pypi` from the default source), then the config's others."""
    place = f"{project / 'pyproject.toml'}: [[tool.pdm.source]]"
    environ = {**environ, "PROJECT_ROOT": str(project)}  # pdm's own variable for source URLs
    declared = tables(table_at(pyproject, "tool", "pdm").get("source"))
    configs = _config_files(project, config_file, environ, read_text)
    stored = _stored_sources(configs, environ)
    default = _default_source(configs, environ)
    names = set()
    for item in declared:
        name = str(item.get("name", ""))
        names.add(name)
        url = item.get("url")
        if not isinstance(url, str):
            completed = stored.get(name) or (default if name == "pypi" else None)
            if completed is None:
                continue
            url = completed.url
        yield _Source(
            name=name,
            url=_expand(url, environ),
            place=place,
            kind=str(item.get("type", "index")),
            include=tuple(strings(item.get("include_packages"))),
        )
    if _ignore_stored_index(configs, environ):
        return
    if "pypi" not in names:
        yield default
    for name, source in stored.items():
        if name not in names:
            yield source


def _stored_sources(
    configs: Sequence[tuple[Path, dict[str, Any]]], environ: Mapping[str, str]
) -> dict[str, _Source]:
    """The `[pypi.NAME] url` sources of the config files (the first file's wins)."""
    found: dict[str, _Source] = {}
    for path, config in configs:
        for name, table in table_at(config, "pypi").items():
            if isinstance(table, dict) and isinstance(table.get("url"), str):
                found.setdefault(
                    name,
                    _Source(
                        name,
                        _expand(table["url"], environ),
                        f"{path}: [pypi.{name}]",
                        str(table.get("type", "index")),
                        tuple(strings(table.get("include_packages"))),
                    ),
                )
    return found


def _ignore_stored_index(
    configs: Sequence[tuple[Path, dict[str, Any]]], environ: Mapping[str, str]
) -> bool:
    """`pypi.ignore_stored_index`: `PDM_IGNORE_STORED_INDEX`, else the config files'."""
    given = strtobool(environ.get("PDM_IGNORE_STORED_INDEX", ""))
    if given is not None:
        return given
    for _path, config in configs:
        value = table_at(config, "pypi").get("ignore_stored_index")
        if isinstance(value, bool):
            return value
    return False


def _default_source(
    configs: Sequence[tuple[Path, dict[str, Any]]], environ: Mapping[str, str]
) -> _Source:
    if environ.get("PDM_PYPI_URL"):
        return _Source(
            "pypi", environ["PDM_PYPI_URL"], "environment variable PDM_PYPI_URL", "index", ()
        )
    for path, config in configs:
        url = table_at(config, "pypi").get("url")
        if isinstance(url, str):
            return _Source("pypi", _expand(url, environ), f"{path}: pypi.url", "index", ())
    return _Source("pypi", builtin_public_index(), "pdm's default source", "index", ())


def _config_files(
    project: Path, config_file: str | None, environ: Mapping[str, str], read_text: ReadText
) -> list[tuple[Path, dict[str, Any]]]:
    """pdm's config files, highest precedence first: the project's `pdm.toml`, then the
    global config."""
    given = config_file or environ.get("PDM_CONFIG_FILE")
    if given:
        global_path = Path(given)
    else:
        xdg = environ.get("XDG_CONFIG_HOME", "")
        base = Path(xdg) if xdg.startswith("/") else Path(environ.get("HOME", "~")) / ".config"
        global_path = base / "pdm" / "config.toml"
    found = []
    for path in (project / "pdm.toml", global_path):
        data = load_toml(path, read_text)
        if data is not None:
            found.append((path, data))
    return found


def _expand(url: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` in a source URL, as pdm expands it (`${PROJECT_ROOT}` is in `environ`:
    `_sources` puts it there)."""
    return _VARIABLE.sub(lambda m: environ.get(m.group(1), m.group(0)), url)


def _refusals(
    sources: Sequence[_Source], private: Sequence[_Source], registry: Registry
) -> list[str]:
    refusals: list[str] = []
    others = [s for s in sources if s.kind != "find_links" and registry.find(s.url) is None]
    for source in private:
        index = registry.find(source.url)
        if source.include or not others or index is None:
            continue
        other = others[0]
        refusals.append(
            f"pdm asks every source for every project and takes the best version, so source "
            f"'{other.name}' ({other.place}) could provide projects of private index "
            f"{index.url}; list them in include_packages of source '{source.name}' "
            f'({source.place}), e.g. include_packages = ["corp-*"]'
        )
    for source in sources:
        if source.kind == "find_links" and registry.find(source.url) is None:
            for link in remote_links([source.url]):
                refusals.append(f"{source.place}: find-links source {link}: {FIND_LINKS_WHY}")
    return refusals
