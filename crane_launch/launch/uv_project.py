"""Plan `crane uv <project command> ...` (`uv sync`, `uv lock`, `uv run`, ...): the
registered indexes a uv project uses, and whether uv could take a private project from
another index. Follows uv 0.13.x; the settings model is `launch.uv_settings`.

Where the indexes come from
---------------------------
The pyproject.toml found by walking up from `--project` (or the working directory after
`--directory`), and the workspace root above it when the project is a workspace member;
the settings files and the command line (`--index`, `--default-index`, `--index-url`,
`--extra-index-url` and their `UV_*` variables) as `uv_settings` reads them; the
`[tool.uv]` indexes of the project and its workspace root even when a `uv.toml` or
`--no-config` hides them (indexes pinned in `[tool.uv.sources]` are read from there); and
`source = { registry = ... }` in the workspace's uv.lock. A URL counts when
`Registry.find` knows it. Collecting is generous (a registered URL anywhere is private);
the warnings follow uv's real precedence.

Warning rules
-------------
Under the default `first-index` strategy a project is taken from the first index, in uv's
order, that has it. crane warns when an unregistered index is consulted before a
registered one, and when `index-strategy` is `unsafe-first-match` or `unsafe-best-match`
while a registered index is consulted: both let another index provide a project the
private index also has. `--no-index` / `UV_NO_INDEX` turns both warnings off.

Not covered: inline script metadata (`uv run script.py` with a `# /// script` block).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crane_launch.config import Registry
from crane_launch.launch.files import ReadText
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    DirectReference,
    Plan,
    Rejection,
    local_location,
    remote_links,
)
from crane_launch.launch.project_scan import (
    RegisteredIndexes,
    ToolArgs,
    load_toml,
    nearest_pyproject,
    parse_tool_args,
    strings,
    table_at,
    tables,
    under,
)
from crane_launch.launch.references import (
    pyproject_references,
    requirement_reference,
    script_metadata,
    script_references,
)
from crane_launch.launch.uv_settings import (
    SettingsLayer,
    UvIndex,
    configured_index_urls,
    consulted_indexes,
    index_order,
    index_strategy,
    settings_layers,
    uv_flag,
    working_directory,
    workspace_root,
)

__all__ = ["UV_PROJECT_COMMANDS", "is_uv_project_command", "plan_uv_project"]

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

# Options of the uv project commands that take a value (from `uv <command> --help`), so
# that an option's value is not taken for the command `uv run` is to run.
_VALUE_OPTIONS = frozenset(
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


def is_uv_project_command(argv: Sequence[str]) -> bool:
    """True for `uv <command>` that resolves or installs through the project's indexes
    (`argv` starts after `uv`); False for help and version requests."""
    args = parse_tool_args(argv, _VALUE_OPTIONS)
    if args.has("-h", "--help", "-V", "--version"):
        return False
    return args.command in UV_PROJECT_COMMANDS


def plan_uv_project(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """Plan `uv *argv` for a project command: the registered indexes it uses and warnings.

    `argv` starts with the subcommand (`["sync", ...]`); the command is always
    `["uv", *argv]`. The mode is `TransparentDoorMode` with the registered indexes in the
    order found (command line and settings in uv's order, the project's `[tool.uv]`, then
    uv.lock), else `Unchanged` with a note. Raises `ConfigError` for a project or settings
    file that cannot be read or parsed. See the module docstring for the warnings.
    """
    args = parse_tool_args(argv, _VALUE_OPTIONS)
    working_dir = working_directory(cwd, args.last("--directory"), environ)
    start = under(working_dir, args.last("--project") or environ.get("UV_PROJECT"))
    project = _find_project(start, read_text)
    notes = [] if project else [f"no uv project found in {start} or its parents"]
    layers = settings_layers(args, environ, working_dir=working_dir, read_text=read_text)
    layers = _script_layers(args, argv, working_dir, read_text) + layers
    order = index_order(args, environ, [layer.table for layer in layers])
    registered = RegisteredIndexes(registry)
    for index in order:
        registered.check(index.url)
    if project is not None:
        for url in _project_index_urls(project, read_text):
            registered.check(url)
    refusals = _refusals(args, environ, layers, order, registry)
    root = project.root if project is not None else None
    return registered.plan(
        "uv",
        argv,
        refusals=refusals,
        notes=notes,
        project_dir=root,
        direct_references=_references(project, args, argv, cwd, read_text),
        find_links=_local_find_links(args, environ, layers, working_dir),
    )


def _references(
    project: _UvProject | None, args: ToolArgs, argv: Sequence[str], cwd: Path, read_text: ReadText
) -> list[DirectReference]:
    """Where the command will be told to take projects from: the pyproject.toml of the
    project, its workspace root and every workspace member (`[tool.uv.sources]` index pins
    resolved through their `[[tool.uv.index]]` names), `uv add` arguments, `uv run --with`
    requirements and `--with-requirements` files, and a script's PEP 723 metadata."""
    found: list[DirectReference] = []
    for path, data in _project_files(project, read_text):
        names = {
            str(index.get("name")): str(index.get("url"))
            for index in tables(table_at(data, "tool", "uv").get("index"))
            if isinstance(index.get("url"), str)
        }
        found += pyproject_references(data, str(path), names)
    return found + _argv_references(args, argv, cwd, read_text)


def _project_files(
    project: _UvProject | None, read_text: ReadText
) -> list[tuple[Path, dict[str, Any]]]:
    if project is None:
        return []
    files = dict(project.pyprojects)
    workspace = table_at(files.get(project.root / "pyproject.toml"), "tool", "uv", "workspace")
    for pattern in strings(workspace.get("members")):
        for member in sorted(project.root.glob(pattern)):
            path = member / "pyproject.toml"
            if path not in files and (data := load_toml(path, read_text)) is not None:
                files[path] = data
    return list(files.items())


def _argv_references(
    args: ToolArgs, argv: Sequence[str], cwd: Path, read_text: ReadText
) -> list[DirectReference]:
    texts = [value for name, value in args.options if name in ("--with", "--with-editable", "-w")]
    if args.command == "add":
        texts += [a for a in argv[1:] if not a.startswith("-")]
    found = [
        reference
        for text in texts
        if (reference := requirement_reference(text, "command line")) is not None
    ]
    for name, value in args.options:
        if (name == "--with-requirements" and value) or (name == "--script" and value):
            found += _file_references(cwd / value, read_text)
    script = _run_script(args, argv)
    if script is not None:
        found += _file_references(cwd / script, read_text)
    return found


def _script_layers(
    args: ToolArgs, argv: Sequence[str], cwd: Path, read_text: ReadText
) -> list[SettingsLayer]:
    """A script's PEP 723 `[tool.uv]` (`uv run s.py`, `--script s.py`): uv applies it over
    every settings file, so crane judges its index settings like theirs."""
    given = args.last("--script") or _run_script(args, argv)
    if not given:
        return []
    path = cwd / given
    try:
        metadata = script_metadata(read_text(path))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    uv = table_at(metadata, "tool", "uv")
    return [SettingsLayer(f"{path} script metadata [tool.uv]", uv)] if uv else []


def _local_find_links(
    args: ToolArgs, environ: Mapping[str, str], layers: Sequence[SettingsLayer], cwd: Path
) -> list[Path]:
    """Every local find-links location uv is given (command line, `UV_FIND_LINKS`, the
    settings files and scripts, local `format = "flat"` indexes): the runner refuses one
    that holds a file of a private project, which no request would show the guard."""
    given = [value for name, value in args.options if name in ("--find-links", "-f")]
    given += environ.get("UV_FIND_LINKS", "").replace(",", " ").split()
    for layer in layers:
        given += strings(layer.table.get("find-links"))
        given += [
            str(index.get("url"))
            for index in tables(layer.table.get("index"))
            if index.get("format") == "flat" and isinstance(index.get("url"), str)
        ]
    paths = (local_location(v, cwd) for v in given if not remote_links([v]))
    return [path for path in paths if path is not None]


def _run_script(args: ToolArgs, argv: Sequence[str]) -> str | None:
    """The script `uv run` runs, when its first argument after the options (their values
    skipped, as uv's parser does) is a .py file."""
    del argv  # the parser has already found it
    target = args.target if args.command == "run" else None
    return target if target is not None and target.endswith(".py") else None


def _file_references(path: Path, read_text: ReadText) -> list[DirectReference]:
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    if path.suffix == ".py":
        return script_references(text, str(path))
    return [
        reference
        for number, line in enumerate(text.splitlines(), start=1)
        if (reference := requirement_reference(line.split(" #")[0], f"{path} line {number}"))
        is not None
    ]


@dataclass
class _UvProject:
    root: Path
    """The workspace root (the project itself outside a workspace): uv.lock and the
    project-level settings are found from here."""
    pyprojects: list[tuple[Path, dict[str, Any]]]
    """The project's pyproject.toml, then the workspace root's when they differ."""


def _find_project(start: Path, read_text: ReadText) -> _UvProject | None:
    """The nearest project and its workspace root, as `uv_settings.workspace_root` finds
    it. The project's own pyproject.toml must parse (uv needs it); the root's too."""
    found = nearest_pyproject(start, read_text)
    if found is None:
        return None
    project, data = found
    pyprojects = [(project / "pyproject.toml", data)]
    root = workspace_root(project, read_text)
    if root != project:
        above = load_toml(root / "pyproject.toml", read_text)
        if above is not None:
            pyprojects.append((root / "pyproject.toml", above))
    return _UvProject(root, pyprojects)


def _project_index_urls(project: _UvProject, read_text: ReadText) -> Iterator[str]:
    """The index URLs the project's files name beyond the settings layers."""
    for _, pyproject in project.pyprojects:
        # Named indexes pinned in [tool.uv.sources] are read from the project even when
        # uv.toml or --no-config hides its other settings.
        yield from configured_index_urls(table_at(pyproject, "tool", "uv"))
    lock = load_toml(project.root / "uv.lock", read_text)
    for package in tables((lock or {}).get("package")):
        registry_url = table_at(package, "source").get("registry")
        if isinstance(registry_url, str):
            yield registry_url


# --- refusals: settings that would let another index provide a private project -------------


def _refusals(
    args: ToolArgs,
    environ: Mapping[str, str],
    layers: list[SettingsLayer],
    order: list[UvIndex],
    registry: Registry,
) -> list[str]:
    """The refusals, then (unless `--no-index` / `UV_NO_INDEX`) the warnings."""
    refusals = _bypass_refusals(args, environ, layers)
    if not uv_flag(args, "--no-index", environ, "UV_NO_INDEX"):
        consulted = consulted_indexes(order)
        refusals += _replaced_defaults(order, consulted, registry)
        refusals += _order_warnings(consulted, registry)
        refusals += _strategy_warnings(args, environ, layers, consulted, registry)
    return refusals


def _replaced_defaults(
    order: list[UvIndex], consulted: list[UvIndex], registry: Registry
) -> list[str]:
    """A private default index that uv drops for another default (`--default-index`,
    `UV_DEFAULT_INDEX`, an earlier `default = true`): its projects would come from the
    other one."""
    kept = {index.url for index in consulted}
    winner = next((index for index in consulted if index.default), None)
    if winner is not None and registry.find(winner.url) is not None:
        return []  # another private index is the default: nothing public wins
    found = []
    for index in order:
        private = registry.find(index.url)
        if index.default and private is not None and index.url not in kept:
            other = f"'{winner.label}'" if winner is not None else "another default index"
            found.append(
                f"uv index {other} replaces private index {private.url} as the default "
                "index, so its projects would come from elsewhere; drop the other default "
                "index or make the private one the default there"
            )
    return found


def _bypass_refusals(
    args: ToolArgs, environ: Mapping[str, str], layers: Sequence[SettingsLayer]
) -> list[str]:
    """`--extra-index-url` wherever it is set, and remote find-links pages (an index in
    disguise), as for `crane uv pip`: each names its place."""
    found: list[tuple[str, str, str]] = []
    for name, value in args.options:
        if name == "--extra-index-url" and value:
            found.append(("command line", "--extra-index-url", EXTRA_INDEX_WHY))
        elif name in ("--find-links", "-f") and remote_links([value]):
            found.append(("command line", f"--find-links {value}", FIND_LINKS_WHY))
    if environ.get("UV_EXTRA_INDEX_URL", "").strip():
        found.append(
            ("environment variable UV_EXTRA_INDEX_URL", "extra-index-url", EXTRA_INDEX_WHY)
        )
    for url in remote_links(environ.get("UV_FIND_LINKS", "").split()):
        found.append(("environment variable UV_FIND_LINKS", f"find-links {url}", FIND_LINKS_WHY))
    for layer in layers:
        if strings(layer.table.get("extra-index-url")):
            found.append((layer.place, "extra-index-url", EXTRA_INDEX_WHY))
        for url in remote_links(strings(layer.table.get("find-links"))):
            found.append((layer.place, f"find-links {url}", FIND_LINKS_WHY))
    return [str(Rejection(place, setting, why).error()) for place, setting, why in found]


def _order_warnings(consulted: list[UvIndex], registry: Registry) -> list[str]:
    warnings: list[str] = []
    before: list[UvIndex] = []
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


def _strategy_warnings(
    args: ToolArgs,
    environ: Mapping[str, str],
    layers: list[SettingsLayer],
    consulted: list[UvIndex],
    registry: Registry,
) -> list[str]:
    setting = index_strategy(args, environ, layers)
    if setting is None or setting[0] not in _UNSAFE_STRATEGIES:
        return []
    strategy, place = setting
    privates = (registry.find(index.url) for index in consulted)
    urls = dict.fromkeys(index.url for index in privates if index is not None)
    return [
        f"uv index-strategy '{strategy}' (set in {place}) lets another index provide projects "
        f"that also exist on private index {url}; remove it to use the default 'first-index'"
        for url in urls
    ]
