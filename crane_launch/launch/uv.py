"""Plan `crane uv pip ...`: which index uv's pip interface would use, and how to proxy it.

uv's behaviour this follows (uv 0.13 source: `crates/uv/src/lib.rs`,
`crates/uv/src/settings.rs`, `crates/uv-settings/src/lib.rs`,
`crates/uv-distribution-types/src/index.rs`; checked against uv 0.13.9):

- Command line (clap): long options are spelled out in full (no abbreviations), as
  `--opt value` or `--opt=value`; short options take `-i URL`, `-iURL` or `-i=URL`.
  Global options (`--no-config`, `--config-file`, `--directory`, ...) may stand anywhere.
  `uv pip compile` and `uv pip sync` take their requirements files as positional
  arguments, `uv pip install` through `-r`.
- Index order: the indexes from the command line and the environment come first
  (`--default-index`/`UV_DEFAULT_INDEX`, then `--index`/`UV_INDEX`,
  `--extra-index-url`/`UV_EXTRA_INDEX_URL`, `--index-url`/`UV_INDEX_URL`), then the
  config's (`[pip]` before top level: `index`, `extra-index-url`, `index-url`), then the
  requirements files'. The first index marked default is the default index; later
  defaults are ignored. So crane's proxy, set as `UV_DEFAULT_INDEX`, wins over every
  configured default and over a requirements file's `--index-url`: uv needs no file
  copies. Every non-default index is searched too, hence the rejections.
- Config files: see `uv_settings`, the one model of uv's settings. `--directory` (else
  `UV_WORKING_DIR`, else `UV_WORKING_DIRECTORY`) changes the working directory first;
  `--project`/`UV_PROJECT` where discovery starts.
- `[[index]]` entries with `explicit = true` serve only the packages pinned to them in
  `[tool.uv.sources]`, and `format = "flat"` entries are find-links; neither competes
  for other projects, so crane allows them like `--find-links`.

The planner reads uv's inputs into a `UvPipReading` (`read_command_line`, then the config
files from the working directory), derives the shared `Reading` from it (`_index_off`,
`_refusals`, `_requirements_roots`, `_index_chain`) and lets `reading.finish` decide;
`_open_door` takes the index options out of the command line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crane_launch.config import Registry
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options
from crane_launch.launch.files import ReadText
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    IndexSetting,
    Plan,
    Rejection,
    Unchanged,
    remote_links,
)
from crane_launch.launch.reading import DoorSetup, IndexChain, Reading, finish
from crane_launch.launch.references import script_metadata
from crane_launch.launch.reqfiles import Root
from crane_launch.launch.uv_settings import (
    UvConfigFile,
    UvConfigValue,
    first_value,
    script_config_file,
    split_index_value,
    uv_config_files,
    working_directory,
)

__all__ = [
    "EMIT_WHY",
    "FOREIGN_INDEX_WHY",
    "INDEX_COMMANDS",
    "PIP_TABLES",
    "IndexEntry",
    "UvCommandLine",
    "UvPipReading",
    "config_refusals",
    "env_list",
    "environment_refusals",
    "index_entries",
    "index_url_of",
    "local_find_links",
    "plan_uv_pip",
    "read_command_line",
    "settings_file_refusals",
]

INDEX_COMMANDS = frozenset({"install", "compile", "sync"})

FOREIGN_INDEX_WHY = (
    "under crane uv would ignore it, because crane's proxy is the default index; "
    "register the index or remove the line"
)
EMIT_WHY = "the output file would record crane's one-run proxy address instead of the index"

_VALUE_LONGS = (
    "--allow-insecure-host --annotation-style --build-constraint --build-constraints "
    "--cache-dir --cert --color --config-file --config-setting --config-settings "
    "--config-settings-package --constraint --constraints --custom-compile-command "
    "--default-index --directory --editable --exclude-newer --exclude-newer-package "
    "--excludes --extra --extra-index-url --find-links --fork-strategy --format --group "
    "--index --index-strategy --index-url --keyring-provider --link-mode --no-binary "
    "--no-build-isolation-package --no-editable-package --no-emit-package "
    "--no-sources-package --only-binary --output-file --output-format --override "
    "--overrides --prefix --prerelease --prerelease-package --preview-features --project "
    "--python --python-platform --python-preference --python-version --refresh-package "
    "--reinstall-package --requirement --requirements --resolution --target "
    "--torch-backend --upgrade-group --upgrade-package"
)
_FLAG_LONGS = (
    "--all-extras --allow-empty-requirements --break-system-packages --check "
    "--compile-bytecode --dry-run --emit-build-options --emit-find-links "
    "--emit-index-annotation --emit-index-url --exact --generate-hashes --help --isolated "
    "--managed-python --native-tls --no-allow-empty-requirements --no-annotate "
    "--no-break-system-packages --no-build --no-build-isolation --no-cache --no-config "
    "--no-deps --no-editable --no-header --no-index --no-managed-python --no-progress "
    "--no-python-downloads --no-sources --no-strip-extras --no-strip-markers "
    "--no-verify-hashes --offline --preview --quiet --refresh --reinstall "
    "--require-build-hashes --require-hashes --strict --system --system-certs --universal "
    "--upgrade --user --verbose --version"
)
_ALIASES = {
    "-i": "--index-url",
    "-f": "--find-links",
    "-r": "--requirements",
    "--requirement": "--requirements",
    "-c": "--constraints",
    "--constraint": "--constraints",
    "--override": "--overrides",
    "-b": "--build-constraints",
    "--build-constraint": "--build-constraints",
    "-h": "--help",
    "-V": "--version",
}
_TABLE = OptionTable(
    value_longs=frozenset(_VALUE_LONGS.split()),
    flag_longs=frozenset(_FLAG_LONGS.split()),
    value_shorts=frozenset({"-r", "-e", "-c", "-b", "-t", "-i", "-f", "-P", "-C", "-p", "-o"}),
    flag_shorts=frozenset({"-U", "-n", "-q", "-v", "-h", "-V"}),
    aliases=_ALIASES,
    short_equals_strips=True,
)
# Options and variables that name requirements-format files.
_FILE_OPTIONS = {
    "--requirements": None,
    "--constraints": "UV_CONSTRAINT",
    "--overrides": "UV_OVERRIDE",
    "--build-constraints": "UV_BUILD_CONSTRAINT",
    "--excludes": "UV_EXCLUDE",
}
# Flags that write the index URL into `uv pip compile`'s output.
_EMIT_OPTIONS = ("--emit-index-url", "--emit-index-annotation")


def plan_uv_pip(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """The plan for `uv *argv`, where `argv` is `["pip", <command>, ...]`.

    Raises `UnknownIndexError` for an unregistered `--index-url`/`--default-index` on the
    command line, `RejectedSettingError` for extra indexes and for output that would
    record the proxy's address, and `ConfigError` for two registered indexes in one run
    or a uv config file that cannot be parsed.
    """
    command_line = read_command_line(argv)
    if command_line is None:
        return Plan("uv", ["uv", *argv], Unchanged())
    workdir = working_directory(cwd, command_line.last("--directory"), environ)
    files = _config_files(command_line, environ, workdir=workdir, home=home, read_text=read_text)
    files = _script_config_files(command_line, workdir, read_text) + files
    uv = UvPipReading(command_line, environ, tuple(files), workdir)
    return finish(
        _index_reading(uv),
        registry=registry,
        environ=environ,
        read_text=read_text,
        open_door=lambda _walk: _open_door(uv),
    )


# --- reading uv's inputs -------------------------------------------------------------------


@dataclass(frozen=True)
class UvCommandLine:
    """A `uv pip` index command's argv as clap reads it.

    `words` are the positional arguments: "pip", the command, then its source files.
    """

    args: tuple[str, ...]
    command: str
    options: tuple[Occurrence, ...]
    words: tuple[str, ...]

    def last(self, name: str) -> str | None:
        """The value clap keeps for option `name`: the last non-empty one."""
        values = [o.value for o in self.options if o.name == name and o.value]
        return values[-1] if values else None

    def has(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    @property
    def index_options(self) -> list[Occurrence]:
        names = ("--default-index", "--index-url")
        return [o for o in self.options if o.name in names and o.value]


def read_command_line(argv: Sequence[str]) -> UvCommandLine | None:
    """clap's reading of `argv`; None unless it is a `uv pip` command that uses an index
    (and does not only print help or uv's version)."""
    args = tuple(argv)
    found, positionals = scan_options(args, _TABLE)
    words = tuple(word for _, word in positionals)
    if words[:1] != ("pip",) or len(words) < 2 or words[1] not in INDEX_COMMANDS:
        return None
    if any(o.name in ("--help", "--version") for o in found):
        return None
    return UvCommandLine(args, words[1], tuple(found), words)


def _script_config_files(
    command_line: UvCommandLine, workdir: Path, read_text: ReadText
) -> list[UvConfigFile]:
    """The PEP 723 `[tool.uv]` of scripts given as requirements (`-r s.py`): uv applies
    their settings, so crane judges their index settings like a config file's."""
    found = []
    for option in command_line.options:
        if option.name == "--requirements" and (option.value or "").endswith(".py"):
            path = workdir / (option.value or "")
            try:
                metadata = script_metadata(read_text(path))
            except (OSError, UnicodeDecodeError, ValueError):
                continue
            if metadata is not None:
                found.append(script_config_file(path, metadata))
    return found


def _config_files(
    command_line: UvCommandLine,
    environ: Mapping[str, str],
    *,
    workdir: Path,
    home: Path,
    read_text: ReadText,
) -> list[UvConfigFile]:
    return uv_config_files(
        environ,
        cwd=workdir,
        home=home,
        config_file=command_line.last("--config-file"),
        no_config=command_line.has("--no-config") or command_line.has("--isolated"),
        project=command_line.last("--project"),
        read_text=read_text,
    )


@dataclass(frozen=True)
class UvPipReading:
    """uv's inputs for one `uv pip` index command: its command line, the environment it
    reads, its config files (highest precedence first) and its working directory."""

    command_line: UvCommandLine
    environ: Mapping[str, str]
    config_files: tuple[UvConfigFile, ...]
    workdir: Path


def _index_reading(uv: UvPipReading) -> Reading:
    return Reading(
        tool="uv",
        command=("uv", *uv.command_line.args),
        index_env_var="UV_DEFAULT_INDEX",
        index_off=_index_off(uv),
        chain=_index_chain(uv),
        requirements=_requirements_roots(uv),
        dialect="uv",
        cwd=uv.workdir,
        rejections=_refusals(uv),
        foreign_index_why=FOREIGN_INDEX_WHY,
        find_links=_local_find_links(uv),
    )


def _index_off(uv: UvPipReading) -> str | None:
    if uv.command_line.has("--no-index"):
        return "--no-index on the command line"
    no_index = _pip_setting(uv.config_files, "no-index")
    if no_index is not None and no_index.value is True:
        return f"no-index is set ({no_index.place})"
    return None


def _pip_setting(files: Sequence[UvConfigFile], key: str) -> UvConfigValue | None:
    """A scalar as `uv pip` reads it: `[pip]` of any file beats the top level."""
    return first_value(files, "pip", key) or first_value(files, "", key)


def _requirements_roots(uv: UvPipReading) -> tuple[Root, ...]:
    command_line = uv.command_line
    roots = [
        Root(o.name, o.value, "command line")
        for o in command_line.options
        if o.name in _FILE_OPTIONS and o.value
    ]
    for option, variable in _FILE_OPTIONS.items():
        # clap reads the variable only when the option is not given
        if variable and not command_line.last(option):
            place = f"environment variable {variable}"
            roots.extend(Root(option, value, place) for value in env_list(uv.environ, variable))
    if command_line.command in ("compile", "sync"):
        roots.extend(Root("source file", word, "command line") for word in command_line.words[2:])
    return tuple(roots)


def _index_chain(uv: UvPipReading) -> IndexChain:
    """The default index first: `--default-index` (else `UV_DEFAULT_INDEX`), then
    `--index-url` (else `UV_INDEX_URL`), the other index options given, then the config's."""
    command_line, environ = uv.command_line, uv.environ
    chain: list[IndexSetting] = []
    default_index = command_line.last("--default-index")
    if default_index is not None:
        chain.append(IndexSetting(index_url_of(default_index), "command line", explicit=True))
    elif environ.get("UV_DEFAULT_INDEX"):
        value = environ["UV_DEFAULT_INDEX"]
        chain.append(IndexSetting(index_url_of(value), "environment variable UV_DEFAULT_INDEX"))
    index_url = command_line.last("--index-url")
    if index_url is not None:
        chain.append(IndexSetting(index_url, "command line", explicit=True))
    elif environ.get("UV_INDEX_URL"):
        chain.append(IndexSetting(environ["UV_INDEX_URL"], "environment variable UV_INDEX_URL"))
    chain.extend(
        IndexSetting(index_url_of(o.value or ""), "command line", explicit=True)
        for o in command_line.index_options
        if o.value not in (default_index, index_url)
    )
    chain.extend(_configured_chain(uv.config_files))
    return tuple(chain)


def _configured_chain(files: Sequence[UvConfigFile]) -> list[IndexSetting]:
    chain = [
        IndexSetting(entry.url, entry.place) for entry in index_entries(files) if entry.default
    ]
    index_url = _pip_setting(files, "index-url")
    if index_url is not None and isinstance(index_url.value, str):
        chain.append(IndexSetting(index_url.value, index_url.place))
    return chain


@dataclass(frozen=True)
class IndexEntry:
    """An `[[index]]` entry of a config file, with the flags that decide its role."""

    url: str
    place: str
    default: bool
    explicit: bool
    flat: bool


PIP_TABLES = ("pip", "")
"""The tables `uv pip` reads in each config file: `[pip]`, then the top level."""


def index_entries(
    files: Sequence[UvConfigFile], tables: Sequence[str] = PIP_TABLES
) -> Iterator[IndexEntry]:
    """Every `[[index]]` entry with a URL of `tables` (`[pip]` first for `uv pip`), files
    in precedence order."""
    for table in tables:
        for file in files:
            entries = file.table(table).get("index")
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                    continue
                yield IndexEntry(
                    url=entry["url"],
                    place=file.index_place(table),
                    default=entry.get("default") is True,
                    explicit=entry.get("explicit") is True,
                    flat=entry.get("format") == "flat",
                )


def _refusals(uv: UvPipReading) -> tuple[Rejection, ...]:
    return (
        *_command_line_refusals(uv.command_line),
        *environment_refusals(uv.environ),
        *config_refusals(uv.config_files),
        *_index_entry_refusals(uv.config_files),
    )


def _local_find_links(uv: UvPipReading) -> tuple[str, ...]:
    return local_find_links(uv.command_line.options, uv.environ, uv.config_files)


def local_find_links(
    options: Sequence[Occurrence],
    environ: Mapping[str, str],
    files: Sequence[UvConfigFile],
    tables: Sequence[str] = PIP_TABLES,
) -> tuple[str, ...]:
    """The local find-links locations of the command line, `UV_FIND_LINKS` and `tables`
    of the config files."""
    given = [o.value or "" for o in options if o.name == "--find-links"]
    given += environ.get("UV_FIND_LINKS", "").replace(",", " ").split()
    for file in files:
        for table in tables:
            links = file.table(table).get("find-links")
            given += [v for v in links if isinstance(v, str)] if isinstance(links, list) else []
    return tuple(v for v in given if v and not remote_links([v]))


def _command_line_refusals(command_line: UvCommandLine) -> list[Rejection]:
    rejections: list[Rejection] = []
    for o in command_line.options:
        if o.name in ("--extra-index-url", "--index") and o.value:
            rejections.append(Rejection("command line", o.name, EXTRA_INDEX_WHY))
        elif o.name in _EMIT_OPTIONS:
            rejections.append(Rejection("command line", o.name, EMIT_WHY))
        elif o.name == "--find-links" and o.value:
            for url in remote_links([o.value]):
                rejections.append(Rejection("command line", f"--find-links {url}", FIND_LINKS_WHY))
    return rejections


def environment_refusals(environ: Mapping[str, str]) -> list[Rejection]:
    rejections: list[Rejection] = []
    for name, what in (("UV_EXTRA_INDEX_URL", "extra-index-url"), ("UV_INDEX", "index")):
        if env_list(environ, name):
            rejections.append(Rejection(f"environment variable {name}", what, EXTRA_INDEX_WHY))
    for url in remote_links(environ.get("UV_FIND_LINKS", "").replace(",", " ").split()):
        place = "environment variable UV_FIND_LINKS"
        rejections.append(Rejection(place, f"find-links {url}", FIND_LINKS_WHY))
    return rejections


def config_refusals(
    files: Sequence[UvConfigFile], tables: Sequence[str] = PIP_TABLES
) -> list[Rejection]:
    rejections: list[Rejection] = []
    for file in files:
        for table in tables:
            source, place = file.table(table), file.place(table)
            extra = source.get("extra-index-url")
            if isinstance(extra, list) and extra:
                rejections.append(Rejection(place, "extra-index-url", EXTRA_INDEX_WHY))
            links = source.get("find-links")
            strings = [v for v in links if isinstance(v, str)] if isinstance(links, list) else []
            for url in remote_links(strings):
                rejections.append(Rejection(place, f"find-links {url}", FIND_LINKS_WHY))
            if table == "pip":
                for key in ("emit-index-url", "emit-index-annotation"):
                    if source.get(key) is True:
                        rejections.append(Rejection(place, key, EMIT_WHY))
    return rejections


def _index_entry_refusals(files: Sequence[UvConfigFile]) -> list[Rejection]:
    rejections: list[Rejection] = []
    for entry in index_entries(files):
        if entry.default or entry.explicit:
            continue
        if entry.flat:
            for link in remote_links([entry.url]):
                rejections.append(Rejection(entry.place, f"flat index {link}", FIND_LINKS_WHY))
        else:
            what = f"index {entry.url} without default = true"
            rejections.append(Rejection(entry.place, what, EXTRA_INDEX_WHY))
    return rejections


def settings_file_refusals(
    environ: Mapping[str, str],
    *,
    cwd: Path,
    home: Path,
    read_text: ReadText,
    user_level: bool = False,
) -> list[Rejection]:
    """What `uv pip` refuses in the settings files it reads in `cwd` (with `user_level`,
    the user's and the system's only): extra indexes (an `[[index]]` without
    `default = true` among them) and remote find-links pages."""
    files = uv_config_files(
        environ,
        cwd=cwd,
        home=home,
        config_file=None,
        no_config=False,
        project=None,
        read_text=read_text,
        user_level=user_level,
    )
    return [*config_refusals(files), *_index_entry_refusals(files)]


def env_list(environ: Mapping[str, str], name: str) -> list[str]:
    return environ.get(name, "").split()


def index_url_of(value: str) -> str:
    """The URL of `[name=]url`, as uv's `Index::from_str` splits it."""
    return split_index_value(value)[1]


# --- the run behind the index door ---------------------------------------------------------


def _open_door(uv: UvPipReading) -> DoorSetup:
    """uv's run behind the door: the command line without its index options and the
    index variables unset (crane's proxy arrives as `UV_DEFAULT_INDEX`). uv needs no
    file copies: its default index beats a requirements file's `--index-url`."""
    command_line = uv.command_line
    notes: list[str] = []
    if command_line.command == "compile" and command_line.index_options:
        notes.append(
            "the output's header shows the command without its index option; "
            "use --custom-compile-command to record another"
        )
    unset = frozenset(name for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX") if name in uv.environ)
    return DoorSetup(
        command=("uv", *apply_edits(command_line.args, remove=command_line.index_options)),
        env_unset=unset,
        notes=tuple(notes),
    )
