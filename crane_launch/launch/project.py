"""Plans for `crane poetry ...` and `crane uv <project command> ...`: which registered
indexes a project uses, and whether its configuration lets another index shadow them.

Poetry and uv record index URLs in their lock files, so crane rewrites nothing here: the
child runs with its argv unchanged and reaches the private hosts through the transparent
door (design section 7). Planning only has to find the private indexes (for the door's
certificate name constraints and `NO_PROXY`) and warn when the tool's own priority rules
could take a private project from another index. Everything is a function of argv, an
environment mapping, a working directory and a file reader; nothing runs or connects.

Where the indexes come from
---------------------------
poetry (2.x): `[[tool.poetry.source]]` `url`s in the pyproject.toml found by walking up
from the project directory (`-C/--directory` changes the working directory, then
`-P/--project` is resolved against it), and `[package.source] url` of type `legacy` in
the poetry.lock beside it. Poetry reads sources from no other place.

uv project commands: the pyproject.toml found by walking up from `--project` (or the
working directory after `--directory`), and the workspace root above it when the project
is a workspace member; `[[tool.uv.index]]`, `index-url` and `extra-index-url` in the
settings file (the first directory, from the workspace root upwards, holding a `uv.toml`
or a pyproject.toml with a `[tool.uv]` table; `uv.toml` wins in the same directory), in
the user-level `uv.toml` (`$XDG_CONFIG_HOME/uv` or `~/.config/uv`), or in `--config-file`
/ `UV_CONFIG_FILE` instead of both; `--index`, `--default-index`, `--index-url`,
`--extra-index-url` and their `UV_*` variables; and `source = { registry = ... }` in the
workspace's uv.lock. A URL counts when `Registry.find` knows it. Collecting is generous
(a registered URL anywhere is private); the warnings follow the tool's real precedence.

Warning rules
-------------
poetry: priorities are `primary` (the default), `supplemental` and `explicit`. All primary
sources are searched and their candidates merged, so the best version wins across them;
supplemental sources are searched, in order, only when nothing was found before them;
explicit ones only for dependencies pinned with `source = "<name>"`. The implicit public
index is added as primary when no source is primary and none is named `pypi`. For each
registered source S that is primary or supplemental, crane warns about each unregistered
source P that is searched with or before it: P primary, or P supplemental and declared
before a supplemental S; and about the implicit public index when it is on.

uv: under the default `first-index` strategy a project is taken from the first index, in
uv's order, that has it. That order (checked with `uv lock --show-settings`) combines each
kind across the layers, command line first (a variable only when its option is absent),
then the settings files: `--default-index`, `--index`, `[[index]]`; then
`--extra-index-url`, `extra-index-url`; then `--index-url`, `index-url`. A name defined
twice keeps its first definition; `explicit = true` indexes only serve projects pinned in
`[tool.uv.sources]`; the first index marked default (else the implicit public index) is
consulted last. crane warns when an unregistered index is consulted before a registered
one, and when `index-strategy` (`--index-strategy`, `UV_INDEX_STRATEGY`, then the settings
files) is `unsafe-first-match` or `unsafe-best-match` while a registered index is
consulted: both let another index provide a project the private index also has.

Not covered: inline script metadata (`uv run script.py` with a `# /// script` block),
abbreviated long options (`poetry --dir`), and uv's system-level configuration file.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from crane_launch.config import PrivateIndex, Registry, origin_of
from crane_launch.errors import ConfigError

__all__ = [
    "UV_PROJECT_COMMANDS",
    "ProjectPlan",
    "ReadText",
    "find_project",
    "is_uv_project_command",
    "plan_poetry",
    "plan_uv_project",
    "read_file",
]

ReadText = Callable[[Path], str | None]
"""Reads a text file; returns None when there is no such file."""

# The uv subcommands that read the project's index settings and resolve or install from an
# index (each has `--index` / `--default-index`). `tool`, `pip`, `python`, `publish` and the
# rest do not use the project's indexes.
UV_PROJECT_COMMANDS: frozenset[str] = frozenset(
    {
        "add",
        "audit",
        "build",
        "check",
        "export",
        "lock",
        "remove",
        "run",
        "sync",
        "tree",
        "venv",
        "version",
    }
)

_POETRY_VALUE_OPTIONS = frozenset({"--directory", "-C", "--project", "-P"})

# Options of the uv project commands that take a value (from `uv <command> --help`), so
# that an option's value is not taken for the command `uv run` is to run.
_UV_VALUE_OPTIONS = frozenset(
    """
    --allow-insecure-host --bounds --branch --build-constraints --bump --cache-dir --color
    --config-file --config-setting --config-settings-package --constraints --default-index
    --depth --directory --env-file --exclude-newer --exclude-newer-package --extra
    --extra-index-url --find-links --fork-strategy --format --group --index --index-strategy
    --index-url --keyring-provider --link-mode --marker --no-binary-package
    --no-build-isolation-package --no-build-package --no-editable-package --no-emit-package
    --no-extra --no-group --no-install-package --no-sources-package --only-group --optional
    --out-dir --output-file --package --prerelease --prerelease-package --project --prompt
    --python --python-platform --python-version --refresh-package --reinstall-package
    --requirements --resolution --rev --script --tag --upgrade-group --upgrade-package
    --with --with-editable --with-requirements -C -P -b -c -d -f -i -o -p -r -w
    """.split()  # noqa: SIM905 - a literal would take one line per option
)

_UNSAFE_STRATEGIES = frozenset({"unsafe-first-match", "unsafe-best-match"})
_TRUE = frozenset({"1", "true", "yes", "y", "on", "t"})


@dataclass
class ProjectPlan:
    """What `crane poetry` / `crane uv <project command>` will do. The argv is never changed."""

    tool: str
    command: list[str]
    privates: list[PrivateIndex]
    private_hosts: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    project: Path | None = None
    """The project directory (for uv, the workspace root), None when none was found."""


def read_file(path: Path) -> str | None:
    """The default `ReadText`: the file's UTF-8 text, None when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None


# --- argv ------------------------------------------------------------------------------


@dataclass
class _Args:
    command: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)

    def values(self, *names: str) -> list[str]:
        return [value for name, value in self.options if name in names]

    def last(self, *names: str) -> str | None:
        found = self.values(*names)
        return found[-1] if found else None

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.options)


def _parse(argv: Sequence[str], value_options: frozenset[str]) -> _Args:
    """The tool's own options and its subcommand.

    Stops at `--` and, for `run`, at the command to run: what follows belongs to the child.
    """
    args = _Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
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
            break
        i += 1
    return args


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


def _under(base: Path, value: str | None) -> Path:
    return base / value if value else base


def _poetry_start(args: _Args, cwd: Path) -> Path:
    working = _under(cwd, args.last("--directory", "-C"))
    return _under(working, args.last("--project", "-P"))


def _uv_start(args: _Args, environ: Mapping[str, str], cwd: Path) -> Path:
    working = _under(cwd, args.last("--directory") or environ.get("UV_WORKING_DIR"))
    return _under(working, args.last("--project") or environ.get("UV_PROJECT"))


def _uv_working_dir(args: _Args, environ: Mapping[str, str], cwd: Path) -> Path:
    return _under(cwd, args.last("--directory") or environ.get("UV_WORKING_DIR"))


# --- files ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _load_toml(path: Path, read_text: ReadText) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML ({_one_line(str(exc))})") from None


def _table(data: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    current: Any = data or {}
    for key in keys:
        current = current.get(key) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else {}


def _tables(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _nearest_pyproject(start: Path, read_text: ReadText) -> tuple[Path, dict[str, Any]] | None:
    for directory in (start, *start.parents):
        data = _load_toml(directory / "pyproject.toml", read_text)
        if data is not None:
            return directory, data
    return None


def _is_member(root: Path, workspace: Mapping[str, Any], project: Path) -> bool:
    try:
        relative = PurePosixPath(project.relative_to(root).as_posix())
    except ValueError:
        return False

    def matches(pattern: str) -> bool:
        pattern = pattern.strip("/")
        if "**" in pattern:
            return fnmatch.fnmatchcase(str(relative), pattern)
        parts = PurePosixPath(pattern).parts
        return len(parts) == len(relative.parts) and all(
            fnmatch.fnmatchcase(name, part)
            for name, part in zip(relative.parts, parts, strict=True)
        )

    members = _strings(workspace.get("members"))
    excluded = _strings(workspace.get("exclude"))
    return any(map(matches, members)) and not any(map(matches, excluded))


@dataclass
class _UvProject:
    project: Path
    root: Path
    pyprojects: list[tuple[Path, dict[str, Any]]]


def _uv_project(start: Path, read_text: ReadText) -> _UvProject | None:
    """The nearest project and its workspace root (uv.lock and settings live there)."""
    found = _nearest_pyproject(start, read_text)
    if found is None:
        return None
    project, data = found
    pyprojects = [(project / "pyproject.toml", data)]
    if _table(data, "tool", "uv", "workspace"):
        return _UvProject(project, project, pyprojects)
    for directory in project.parents:
        above = _load_toml(directory / "pyproject.toml", read_text)
        workspace = _table(above, "tool", "uv", "workspace")
        if above is None or not workspace:
            continue
        if _is_member(directory, workspace, project):
            pyprojects.append((directory / "pyproject.toml", above))
            return _UvProject(project, directory, pyprojects)
        break
    return _UvProject(project, project, pyprojects)


def find_project(
    cwd: Path,
    read_text: ReadText = read_file,
    *,
    tool: Literal["poetry", "uv"] = "poetry",
    argv: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The directory whose pyproject.toml (and lock file) the tool would use, or None.

    Walks up from the start directory: for poetry `-C/--directory`, then `-P/--project`
    relative to it; for uv `--directory`/`UV_WORKING_DIR`, then `--project`/`UV_PROJECT`.
    For uv the answer is the workspace root when the project is a member of a workspace
    (`[tool.uv.workspace]` above it whose `members` match it and `exclude` does not).
    """
    environ = environ or {}
    if tool == "poetry":
        found = _nearest_pyproject(
            _poetry_start(_parse(argv, _POETRY_VALUE_OPTIONS), cwd), read_text
        )
        return found[0] if found else None
    start = _uv_start(_parse(argv, _UV_VALUE_OPTIONS), environ, cwd)
    uv_project = _uv_project(start, read_text)
    return uv_project.root if uv_project else None


# --- shared -----------------------------------------------------------------------------


class _Privates:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.found: dict[str, PrivateIndex] = {}

    def check(self, url: str) -> PrivateIndex | None:
        index = self.registry.find(url)
        if index is not None:
            self.found.setdefault(index.url, index)
        return index

    def plan(
        self,
        tool: str,
        argv: Sequence[str],
        project: Path | None,
        warnings: list[str],
        notes: list[str],
    ) -> ProjectPlan:
        privates = list(self.found.values())
        hosts = list(dict.fromkeys(origin_of(index.url)[1] for index in privates))
        if not privates:
            notes.append(f"no registered index in this project; running {tool} unchanged")
        return ProjectPlan(
            tool=tool,
            command=[tool, *argv],
            privates=privates,
            private_hosts=hosts,
            warnings=warnings,
            notes=notes,
            project=project,
        )


# --- poetry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _PoetrySource:
    name: str
    url: str | None
    priority: str


def plan_poetry(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    read_text: ReadText = read_file,
) -> ProjectPlan:
    """Plan `poetry *argv`: the registered sources it uses and the shadowing warnings.

    See the module docstring for where sources come from and when crane warns.
    """
    del environ  # poetry takes no source from the environment
    privates = _Privates(registry)
    start = _poetry_start(_parse(argv, _POETRY_VALUE_OPTIONS), cwd)
    found = _nearest_pyproject(start, read_text)
    if found is None:
        note = f"no pyproject.toml in {start} or its parents; running poetry unchanged"
        return ProjectPlan(
            tool="poetry", command=["poetry", *argv], privates=[], private_hosts=[], notes=[note]
        )
    project, data = found
    sources = [
        _PoetrySource(
            name=str(item.get("name", "")),
            url=item["url"] if isinstance(item.get("url"), str) else None,
            priority=str(item.get("priority", "primary")).lower(),
        )
        for item in _tables(_table(data, "tool", "poetry").get("source"))
    ]
    private_names: dict[str, PrivateIndex] = {}
    for source in sources:
        index = privates.check(source.url) if source.url else None
        if index is not None:
            private_names[source.name] = index
    lock = _load_toml(project / "poetry.lock", read_text)
    for package in _tables((lock or {}).get("package")):
        locked = _table(package, "source")
        if locked.get("type") == "legacy" and isinstance(locked.get("url"), str):
            privates.check(locked["url"])
    warnings = _poetry_warnings(sources, private_names)
    return privates.plan("poetry", argv, project, warnings, [])


def _poetry_warnings(
    sources: list[_PoetrySource], private_names: Mapping[str, PrivateIndex]
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
            if other.priority == "primary":
                fix = (
                    "make the other source supplemental or explicit"
                    if private.priority == "primary"
                    else "make the other source explicit"
                )
            elif (
                other.priority == "supplemental"
                and private.priority == "supplemental"
                and other_position < position
            ):
                fix = "make the other source explicit"
            else:
                continue
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


# --- uv ---------------------------------------------------------------------------------


def is_uv_project_command(argv: Sequence[str]) -> bool:
    """True for `uv <command>` that resolves or installs through the project's indexes."""
    args = _parse(argv, _UV_VALUE_OPTIONS)
    if args.has("-h", "--help", "-V", "--version"):
        return False
    return args.command in UV_PROJECT_COMMANDS


@dataclass(frozen=True)
class _UvIndex:
    label: str
    url: str
    default: bool = False
    explicit: bool = False
    flat: bool = False


def _split_named(entry: str) -> tuple[str | None, str]:
    """uv's `name=url` form for `--index` / `UV_INDEX` entries."""
    name, eq, url = entry.partition("=")
    if eq and name and all(c.isalnum() or c in "-_." for c in name):
        return name, url
    return None, entry


def _cli_index(entry: str, *, default: bool = False) -> _UvIndex:
    name, url = _split_named(entry)
    return _UvIndex(label=name or url, url=url, default=default)


def _uv_indexes(
    args: _Args, environ: Mapping[str, str], settings: Iterable[Mapping[str, Any]]
) -> list[_UvIndex]:
    """Every index uv is given, in the order uv keeps them (checked with `--show-settings`).

    Each kind is combined across layers, command line (or its variable) first, then the
    settings layers: `--default-index` and `--index` with `[[index]]`, then
    `--extra-index-url` with `extra-index-url`, then `--index-url` with `index-url`.
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
    for layer in layers:
        for item in _tables(layer.get("index")):
            url = item.get("url")
            if isinstance(url, str):
                name = item.get("name")
                indexes.append(
                    _UvIndex(
                        label=name if isinstance(name, str) else url,
                        url=url,
                        default=item.get("default") is True,
                        explicit=item.get("explicit") is True,
                        flat=item.get("format") == "flat",
                    )
                )
    extras = given("--extra-index-url", "UV_EXTRA_INDEX_URL")
    extras += [url for layer in layers for url in _strings(layer.get("extra-index-url"))]
    indexes += [_UvIndex(url, url) for url in extras]
    defaults = given("--index-url", "UV_INDEX_URL", "-i")
    defaults += [url for layer in layers for url in _strings(layer.get("index-url"))]
    indexes += [_UvIndex(url, url, default=True) for url in defaults]
    return indexes


def _uv_settings_file(root: Path, read_text: ReadText) -> tuple[Path, dict[str, Any]] | None:
    """The project-level settings: uv.toml, else a pyproject.toml with `[tool.uv]`."""
    for directory in (root, *root.parents):
        uv_toml = _load_toml(directory / "uv.toml", read_text)
        if uv_toml is not None:
            return directory / "uv.toml", uv_toml
        pyproject = _load_toml(directory / "pyproject.toml", read_text)
        if pyproject is not None and "uv" in _table(pyproject, "tool"):
            return directory / "pyproject.toml", _table(pyproject, "tool", "uv")
    return None


def _user_uv_toml(environ: Mapping[str, str]) -> Path | None:
    config_home = environ.get("XDG_CONFIG_HOME")
    if config_home and Path(config_home).is_absolute():
        return Path(config_home) / "uv" / "uv.toml"
    home = environ.get("HOME")
    return Path(home) / ".config" / "uv" / "uv.toml" if home else None


def plan_uv_project(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    read_text: ReadText = read_file,
) -> ProjectPlan:
    """Plan `uv *argv` for a project command: the registered indexes it uses and warnings.

    `argv` starts with the subcommand (`["sync", ...]`). See the module docstring for
    where indexes come from and when crane warns.
    """
    args = _parse(argv, _UV_VALUE_OPTIONS)
    privates = _Privates(registry)
    notes: list[str] = []
    start = _uv_start(args, environ, cwd)
    uv_project = _uv_project(start, read_text)
    if uv_project is None:
        notes.append(f"no uv project found in {start} or its parents")

    # Settings layers, highest precedence first: (place, [tool.uv]-shaped table).
    layers: list[tuple[str, dict[str, Any]]] = []
    config_file = args.last("--config-file") or environ.get("UV_CONFIG_FILE")
    if config_file:
        path = _under(_uv_working_dir(args, environ, cwd), config_file)
        layers.append((str(path), _load_toml(path, read_text) or {}))
    elif not (args.has("--no-config") or _truthy(environ.get("UV_NO_CONFIG"))):
        if uv_project is not None:
            found = _uv_settings_file(uv_project.root, read_text)
            if found is not None:
                layers.append((str(found[0]), found[1]))
        user = _user_uv_toml(environ)
        if user is not None:
            user_data = _load_toml(user, read_text)
            if user_data is not None:
                layers.append((str(user), user_data))

    order = _uv_indexes(args, environ, (data for _, data in layers))
    for index in order:
        privates.check(index.url)
    if uv_project is not None:
        for _, pyproject in uv_project.pyprojects:
            # Named indexes pinned in [tool.uv.sources] are read from the project even
            # when uv.toml or --no-config hides its other settings.
            for index in _uv_indexes(_Args(), {}, [_table(pyproject, "tool", "uv")]):
                privates.check(index.url)
        lock = _load_toml(uv_project.root / "uv.lock", read_text)
        for package in _tables((lock or {}).get("package")):
            registry_url = _table(package, "source").get("registry")
            if isinstance(registry_url, str):
                privates.check(registry_url)

    warnings: list[str] = []
    if not (args.has("--no-index") or _truthy(environ.get("UV_NO_INDEX"))):
        consulted = _consulted(order)
        warnings += _uv_order_warnings(consulted, registry)
        warnings += _uv_strategy_warnings(args, environ, layers, consulted, registry)
    root = uv_project.root if uv_project else None
    return privates.plan("uv", argv, root, warnings, notes)


def _consulted(order: list[_UvIndex]) -> list[_UvIndex]:
    """The indexes uv searches for an unpinned project, in order (see the module docstring)."""
    seen: set[str] = set()
    unique: list[_UvIndex] = []
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


def _uv_order_warnings(consulted: list[_UvIndex], registry: Registry) -> list[str]:
    warnings: list[str] = []
    before: list[_UvIndex] = []
    for index in consulted:
        private = registry.find(index.url)
        if private is None:
            before.append(index)
            continue
        for other in dict.fromkeys(before):
            warnings.append(
                f"uv index '{other.label}' is consulted before private index {private.url}, "
                "so a project it also has would come from it; list the private index first, "
                f"make '{other.label}' explicit, or pin the projects in [tool.uv.sources]"
            )
    return list(dict.fromkeys(warnings))


def _uv_strategy_warnings(
    args: _Args,
    environ: Mapping[str, str],
    layers: list[tuple[str, dict[str, Any]]],
    consulted: list[_UvIndex],
    registry: Registry,
) -> list[str]:
    candidates: list[tuple[str, object]] = [
        ("--index-strategy", args.last("--index-strategy")),
        ("UV_INDEX_STRATEGY", environ.get("UV_INDEX_STRATEGY")),
        *((place, data.get("index-strategy")) for place, data in layers),
    ]
    place, strategy = next(((p, s) for p, s in candidates if isinstance(s, str) and s), ("", ""))
    if strategy not in _UNSAFE_STRATEGIES:
        return []
    privates = (registry.find(index.url) for index in consulted)
    urls = dict.fromkeys(index.url for index in privates if index is not None)
    return [
        f"uv index-strategy '{strategy}' (set in {place}) lets another index provide projects "
        f"that also exist on private index {url}; remove it to use the default 'first-index'"
        for url in urls
    ]
