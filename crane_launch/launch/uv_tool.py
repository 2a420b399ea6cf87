"""Plan `crane uv tool install|run|upgrade ...` and `crane uvx ...` behind the index door.

uv's behaviour this follows (uv 0.13 `crates/uv/src/lib.rs`, `commands/tool/`; checked
against uv 0.13.9):

- Tool commands read the user's and the system's settings files (or `--config-file` /
  `UV_CONFIG_FILE`), never the project's: "for commands that operate at the user-level,
  ignore local configuration". Only the files' top level counts (`[pip]` is `uv pip`'s).
- `uv tool run` (and `uvx`) stop reading options at the command to run: what follows is
  the command's own (`uvx ruff check --index-url X` gives ruff the option).
- Index order as for `uv pip` (see `launch.uv`): the `--index` / `UV_INDEX` / `[[index]]`
  entries are searched first, in that order, and the default index last; under the default
  `first-index` strategy a project is taken from the first index that has it. So a
  registered index given with `--index` already comes first: crane accepts it there, as
  with `--index-url` / `--default-index`, and hands uv the door as `UV_DEFAULT_INDEX`.
- `uv tool install` and `uv tool upgrade` record the index options in the tool's receipt
  (`<tool dir>/<name>/uv-receipt.toml`, `[tool] options`), and `uv tool upgrade` reuses
  them, after the command line's. crane maps the one-run door URL in the receipts back to
  the private index after the run, so the receipt names the real index: a later plain
  `uv tool upgrade` then fails at the private index for want of credentials instead of
  going anywhere else, and `crane uv tool upgrade NAME` finds the index in the receipt.
- The tool directory is `UV_TOOL_DIR`, else `$XDG_DATA_HOME/uv/tools` (when absolute),
  else `~/.local/share/uv/tools`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crane_launch.config import Registry
from crane_launch.errors import UsageError
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options, strtobool
from crane_launch.launch.files import ReadText, read_unless_missing
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    IndexSetting,
    Plan,
    RecordedUrls,
    Rejection,
    Unchanged,
    remote_links,
)
from crane_launch.launch.reading import DoorSetup, IndexChain, Reading, finish
from crane_launch.launch.reqfiles import Root
from crane_launch.launch.uv import (
    config_refusals,
    env_list,
    environment_refusals,
    index_entries,
    index_url_of,
    local_find_links,
)
from crane_launch.launch.uv_settings import (
    UvConfigFile,
    first_value,
    uv_config_files,
    working_directory,
)
from crane_launch.proxy.routing import normalise_project

__all__ = ["TOOL_INDEX_COMMANDS", "plan_uv_tool", "tool_directory"]

TOOL_INDEX_COMMANDS = frozenset({"install", "run", "upgrade"})

_TOP = ("",)  # the tables of a settings file a tool command reads

_VALUE_LONGS = (
    "--allow-insecure-host --build-constraints --cache-dir --color --config-file "
    "--config-setting --config-settings-package --constraints --default-index --directory "
    "--env-file --exclude-newer --exclude-newer-package --extra-index-url --find-links "
    "--fork-strategy --from --index --index-strategy --index-url --keyring-provider "
    "--link-mode --no-binary-package --no-build-isolation-package --no-build-package "
    "--no-sources-package --overrides --prerelease --project --python --python-platform "
    "--python-preference --refresh-package --reinstall-package --resolution --upgrade-group "
    "--upgrade-package --with --with-editable --with-executables-from --with-requirements "
    "--torch-backend --preview-features --python-version --trusted-host --prerelease-package "
    "--config-setting-package --config-settings --excludes --python-fetch"
)
_FLAG_LONGS = (
    "--all --compile-bytecode --force --help --isolated --lfs --managed-python --native-tls "
    "--no-build --no-build-isolation --no-cache --no-config --no-index --no-managed-python "
    "--no-progress --no-python-downloads --no-sources --offline --preview --quiet --refresh "
    "--reinstall --show-resolution --system-certs --upgrade --verbose --version --editable "
    "--no-env-file --no-binary --exact"
)
_ALIASES = {
    "-i": "--index-url",
    "-f": "--find-links",
    "-c": "--constraints",
    "--constraint": "--constraints",
    "--override": "--overrides",
    "-b": "--build-constraints",
    "--build-constraint": "--build-constraints",
    "-w": "--with",
    "-p": "--python",
    "-P": "--upgrade-package",
    "-C": "--config-setting",
    "-h": "--help",
    "-V": "--version",
}
_TABLE = OptionTable(
    value_longs=frozenset(_VALUE_LONGS.split()),
    flag_longs=frozenset(_FLAG_LONGS.split()),
    value_shorts=frozenset({"-i", "-f", "-c", "-b", "-w", "-p", "-P", "-C"}),
    flag_shorts=frozenset({"-U", "-n", "-q", "-v", "-h", "-V", "-e"}),
    aliases=_ALIASES,
    short_equals_strips=True,
)
# Options and variables that name requirements-format files.
_FILE_OPTIONS = {
    "--with-requirements": None,
    "--constraints": "UV_CONSTRAINT",
    "--overrides": "UV_OVERRIDE",
    "--build-constraints": "UV_BUILD_CONSTRAINT",
}
_DOOR_OPTIONS = ("--default-index", "--index-url", "--index")
_DOOR_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX")
RECEIPT = "uv-receipt.toml"
_FOREIGN_WHY = "uv would search it before crane's proxy; register the index or remove the line"


@dataclass(frozen=True)
class UvToolCommandLine:
    """A `uv tool` index command as clap reads it: uv's options (for `run`, those before
    the command to run) and the positional arguments after the subcommand (the packages
    of `install` / `upgrade`, the command of `run`)."""

    args: tuple[str, ...]
    command: str
    options: tuple[Occurrence, ...]
    targets: tuple[str, ...]
    end: int
    """Where uv's own arguments end: after the command `run` runs, else `len(args)`."""

    def last(self, name: str) -> str | None:
        values = [o.value for o in self.options if o.name == name and o.value]
        return values[-1] if values else None

    def has(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    def values(self, name: str) -> list[str]:
        return [o.value for o in self.options if o.name == name and o.value]


def read_tool_command_line(argv: Sequence[str]) -> UvToolCommandLine | None:
    """clap's reading of `uv *argv`; None unless it is `tool install|run|upgrade` that
    uses an index (not a help or version request)."""
    args = tuple(argv)
    found: list[Occurrence] = []
    words: list[tuple[int, str]] = []
    start = 0
    while len(words) < 2:  # `tool`, then its subcommand, each after uv's global options
        options, positionals = scan_options(args, _TABLE, start=start, stop_at_positional=True)
        found += options
        if not positionals:
            return None
        words.append(positionals[0])
        start = positionals[0][0] + 1
    if words[0][1] != "tool" and "tool" in args:
        # an unknown global option may have taken the next word: refuse rather than guess
        _known_before_target(args, 0, args.index("tool"))
    if words[0][1] != "tool" or words[1][1] not in TOOL_INDEX_COMMANDS:
        return None
    command = words[1][1]
    options, positionals = scan_options(
        args, _TABLE, start=start, stop_at_positional=command == "run"
    )
    if command == "run":
        _known_before_target(args, start, positionals[0][0] if positionals else len(args))
    found += options
    if any(o.name in ("--help", "--version") for o in found):
        return None
    end = positionals[0][0] + 1 if command == "run" and positionals else len(args)
    targets = tuple(word for _, word in positionals)
    return UvToolCommandLine(args, command, tuple(found), targets, end)


def _known_before_target(args: Sequence[str], start: int, target: int) -> None:
    """`uv tool run` stops reading options at the command it runs; an option crane does
    not know might take the next word as its value, so crane could not tell where uv's
    options end (and would miss an index option after it): refused, never guessed."""
    for arg in args[start:target]:
        name = arg.split("=", 1)[0]
        known = name in _TABLE.value_longs | _TABLE.flag_longs
        if arg.startswith("--") and "=" not in arg and not known:
            raise UsageError(
                f"crane does not know uv's option {name}, so it cannot tell where uv's "
                "options end and the command begins; put it after the command, or leave it out"
            )


def tool_directory(environ: Mapping[str, str], cwd: Path, home: Path) -> Path:
    """Where uv keeps its tools' environments and receipts (see the module docstring)."""
    given = environ.get("UV_TOOL_DIR")
    if given:
        return cwd / given
    data_home = environ.get("XDG_DATA_HOME", "")
    if data_home.startswith("/"):
        return Path(data_home) / "uv" / "tools"
    return home / ".local" / "share" / "uv" / "tools"


def plan_uv_tool(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    executable: str = "uv",
    read_text: ReadText = Path.read_text,
) -> Plan:
    """The plan for `uv *argv` (`["tool", <command>, ...]` after uv's global options).

    `executable` "uvx" plans `uvx ARGS` as `uv tool run ARGS` (argv then starts with
    `tool run`, which the child's command drops). Raises like `launch.uv.plan_uv_pip`.
    """
    shown = _shown(executable, argv)
    command_line = read_tool_command_line(argv)
    if command_line is None:
        note = "this uv tool command uses no index" if executable == "uv" else None
        return Plan("uv", shown, Unchanged(), notes=[note] if note else [])
    workdir = working_directory(cwd, command_line.last("--directory"), environ)
    files = uv_config_files(
        environ,
        cwd=workdir,
        home=home,
        config_file=command_line.last("--config-file"),
        no_config=command_line.has("--no-config") or command_line.has("--isolated"),
        project=None,
        read_text=read_text,
        user_level=True,
    )
    tools = tool_directory(environ, workdir, home)
    receipts = (
        _receipt_indexes(command_line, tools, read_text)
        if command_line.command == "upgrade"
        else []
    )
    chain_of_run = _index_chain(command_line, environ, files, registry)
    reading = Reading(
        tool="uv",
        command=tuple(shown),
        index_env_var="UV_DEFAULT_INDEX",
        index_off=_index_off(command_line, environ, files),
        chain=(*chain_of_run, *_receipt_chain(receipts, registry)),
        requirements=_requirements_roots(command_line, environ),
        dialect="uv",
        cwd=workdir,
        rejections=_refusals(command_line, environ, files, registry, receipts),
        foreign_index_why=_FOREIGN_WHY,
        find_links=local_find_links(command_line.options, environ, files, _TOP),
        requirement_args=tuple(_shown(executable, argv[: command_line.end])),
    )

    def open_door(_walk: object) -> DoorSetup:
        edited = apply_edits(
            command_line.args, remove=[o for o in command_line.options if o.name in _DOOR_OPTIONS]
        )
        recorded: tuple[RecordedUrls, ...] = ()
        if command_line.command != "run":
            only = _receipts_to_restore(chain_of_run, receipts, registry)
            recorded = (RecordedUrls(tools, f"*/{RECEIPT}", only),)
        return DoorSetup(
            command=tuple(_shown(executable, edited)),
            env_unset=frozenset(name for name in _DOOR_VARIABLES if name in environ),
            recorded=recorded,
        )

    return finish(
        reading, registry=registry, environ=environ, read_text=read_text, open_door=open_door
    )


def _shown(executable: str, argv: Sequence[str]) -> list[str]:
    """The child's argv: `uv ARGV`, or `uvx ARGS` for the `tool run ARGS` it was planned as."""
    if executable == "uvx":
        return ["uvx", *list(argv)[2:]]
    return ["uv", *argv]


def _index_off(
    command_line: UvToolCommandLine, environ: Mapping[str, str], files: Sequence[UvConfigFile]
) -> str | None:
    if command_line.has("--no-index"):
        return "--no-index on the command line"
    if strtobool(environ.get("UV_NO_INDEX", "")) is True:
        return "UV_NO_INDEX is set"
    setting = first_value(files, "", "no-index")
    if setting is not None and setting.value is True:
        return f"no-index is set ({setting.place})"
    return None


@dataclass(frozen=True)
class _Searched:
    """An index uv searches before its default index: `--index`, `UV_INDEX`, `[[index]]`."""

    url: str
    place: str
    explicit: bool


def _searched_first(
    command_line: UvToolCommandLine, environ: Mapping[str, str], files: Sequence[UvConfigFile]
) -> list[_Searched]:
    given = [
        _Searched(index_url_of(v), "command line", True) for v in command_line.values("--index")
    ]
    if not given:  # clap reads the variable only when the option is absent
        place = "environment variable UV_INDEX"
        given = [_Searched(index_url_of(v), place, False) for v in env_list(environ, "UV_INDEX")]
    for entry in index_entries(files, _TOP):
        if not (entry.default or entry.explicit or entry.flat):
            given.append(_Searched(entry.url, entry.place, False))
    return given


def _index_chain(
    command_line: UvToolCommandLine,
    environ: Mapping[str, str],
    files: Sequence[UvConfigFile],
    registry: Registry,
) -> IndexChain:
    """The registered indexes uv searches first, then the default index (`--default-index`,
    else `UV_DEFAULT_INDEX`, `--index-url`, else `UV_INDEX_URL`, the config's). What the
    receipts of the tools being upgraded record comes after (`_receipt_chain`): uv applies
    the command line first."""
    chain = [
        IndexSetting(s.url, s.place, explicit=s.explicit)
        for s in _searched_first(command_line, environ, files)
        if registry.find(s.url) is not None
    ]
    for option, variable in (
        ("--default-index", "UV_DEFAULT_INDEX"),
        ("--index-url", "UV_INDEX_URL"),
    ):
        value = command_line.last(option)
        if value is not None:
            chain.append(IndexSetting(index_url_of(value), "command line", explicit=True))
        elif environ.get(variable):
            chain.append(
                IndexSetting(index_url_of(environ[variable]), f"environment variable {variable}")
            )
    for entry in index_entries(files, _TOP):
        if entry.default:
            chain.append(IndexSetting(entry.url, entry.place))
    setting = first_value(files, "", "index-url")
    if setting is not None and isinstance(setting.value, str):
        chain.append(IndexSetting(setting.value, setting.place))
    return tuple(chain)


def _receipt_chain(receipts: Sequence[_Recorded], registry: Registry) -> IndexChain:
    first = [r for r in receipts if r.searched_first and registry.find(r.url) is not None]
    defaults = [r for r in receipts if not r.searched_first]
    return tuple(IndexSetting(r.url, r.place) for r in [*first, *defaults])


def _receipts_to_restore(
    chain: IndexChain, receipts: Sequence[_Recorded], registry: Registry
) -> frozenset[str] | None:
    """Which receipts get the private index after the run: all of them when the run's own
    settings name it (uv records it in every receipt it writes, as the user asked), else
    only those of the tools whose receipts named it already (`uv tool upgrade --all`
    upgrades the others through the door too, but they came from elsewhere)."""
    if any(registry.find(setting.url) is not None for setting in chain):
        return None
    return frozenset(r.tool for r in receipts if registry.find(r.url) is not None)


@dataclass(frozen=True)
class _Recorded:
    """An index a tool's receipt records; `searched_first`: an `--index` or extra index,
    which uv searches before any default."""

    url: str
    place: str
    searched_first: bool
    tool: str = ""
    """The tool (its directory's name) whose receipt records it."""


def _receipt_indexes(
    command_line: UvToolCommandLine, tools: Path, read_text: ReadText
) -> list[_Recorded]:
    """The indexes the receipts of the tools `uv tool upgrade` is given (all with `--all`)
    record: uv upgrades each from them, after the command line's."""
    if command_line.has("--all"):
        try:
            names = sorted(entry.name for entry in tools.iterdir() if entry.is_dir())
        except OSError:
            names = []
    else:
        names = [normalise_project(name) for name in command_line.targets]
    found: list[_Recorded] = []
    for name in names:
        path = tools / name / RECEIPT
        text = read_unless_missing(read_text, path)
        if text is None:
            continue
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError):
            continue  # uv reports a broken receipt itself
        found += [
            dataclasses.replace(recorded, tool=name)
            for recorded in _recorded_urls(data, f"uv tool receipt {path}")
        ]
    return found


def _recorded_urls(receipt: Mapping[str, object], place: str) -> list[_Recorded]:
    """The index URLs a receipt's `[tool.options]` records, in uv's order."""
    tool = receipt.get("tool")
    options = tool.get("options") if isinstance(tool, dict) else None
    if not isinstance(options, dict):
        return []
    found: list[_Recorded] = []
    entries = options.get("index")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            if entry.get("explicit") is True or entry.get("format") == "flat":
                continue
            found.append(_Recorded(entry["url"], place, entry.get("default") is not True))
    extra = options.get("extra-index-url")
    for url in extra if isinstance(extra, list) else []:
        if isinstance(url, str):
            found.append(_Recorded(url, place, True))
    if isinstance(options.get("index-url"), str):
        found.append(_Recorded(options["index-url"], place, False))
    return found


def _requirements_roots(
    command_line: UvToolCommandLine, environ: Mapping[str, str]
) -> tuple[Root, ...]:
    roots = [
        Root(o.name, o.value, "command line")
        for o in command_line.options
        if o.name in _FILE_OPTIONS and o.value
    ]
    for option, variable in _FILE_OPTIONS.items():
        if variable and not command_line.last(option):
            place = f"environment variable {variable}"
            roots.extend(Root(option, value, place) for value in env_list(environ, variable))
    return tuple(roots)


def _refusals(
    command_line: UvToolCommandLine,
    environ: Mapping[str, str],
    files: Sequence[UvConfigFile],
    registry: Registry,
    receipts: Sequence[_Recorded],
) -> tuple[Rejection, ...]:
    """`--extra-index-url` and an unregistered index searched before the default, wherever
    they are set (a receipt too), and remote find-links pages."""
    rejections: list[Rejection] = []
    for o in command_line.options:
        if o.name == "--extra-index-url" and o.value:
            rejections.append(Rejection("command line", o.name, EXTRA_INDEX_WHY))
        elif o.name == "--find-links" and o.value:
            for url in remote_links([o.value]):
                rejections.append(Rejection("command line", f"--find-links {url}", FIND_LINKS_WHY))
    for searched in _searched_first(command_line, environ, files):
        if registry.find(searched.url) is None:
            what = f"--index {searched.url}" if searched.explicit else f"index {searched.url}"
            rejections.append(Rejection(searched.place, what, EXTRA_INDEX_WHY))
    for recorded in receipts:
        if recorded.searched_first and registry.find(recorded.url) is None:
            what = f"index {recorded.url} searched before the default index"
            rejections.append(Rejection(recorded.place, what, EXTRA_INDEX_WHY))
    environment = [r for r in environment_refusals(environ) if r.setting != "index"]
    rejections += environment
    rejections += config_refusals(files, _TOP)
    for entry in index_entries(files, _TOP):
        if entry.flat:
            for link in remote_links([entry.url]):
                rejections.append(Rejection(entry.place, f"flat index {link}", FIND_LINKS_WHY))
    return tuple(rejections)
