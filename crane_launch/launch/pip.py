"""Plan `crane pip ...`: which index pip would use, and how to put crane's proxy there.

pip's behaviour this follows (pip 26.3 source; the same rules hold back to pip 23):

- Command line. pip's main parser reads the general options up to the first positional
  argument, the command; the command's parser then reads every argument but the command
  name, so general options may come before or after it. Both are optparse parsers:
  unambiguous prefixes of long options are accepted (`--index` is `--index-url`,
  `--extra` is `--extra-index-url`); `--pypi-url` is another name of `--index-url`.
  The option tables below are pip 26.3's; an abbreviation that could mean an option that
  matters to crane and is ambiguous in them is refused rather than guessed.
- Configuration: see `pip_config`. `--isolated` (only that exact spelling,
  `cli/main.py`) makes pip ignore `PIP_*` variables, and crane hands pip its proxy through
  `PIP_INDEX_URL`, so an isolated run with a registered index is refused.
- Requirements files: see `reqfiles`. Their `--index-url` beats everything above, so a
  registered index line is hidden from pip in a copy of the file.
- `PIP_REQUIREMENT` / `PIP_CONSTRAINT` / `PIP_BUILD_CONSTRAINT` and the matching config
  keys name requirements files too (whitespace-separated), added to those of the command
  line; crane reads them and, when one needs a copy, points the variable at the copy.

The planner reads pip's inputs into a `PipReading` (`read_command_line`, then
`read_pip_settings`, then `_requirements_files`), derives the shared `Reading` from it
(`_index_off`, `_refusals`, `_index_chain`) and lets `reading.finish` decide; the pip-only
run changes (file copies, `pip lock`'s output) are `_open_door`'s.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from crane_launch.config import Registry
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options, strtobool
from crane_launch.launch.files import ReadText, display_path
from crane_launch.launch.pip_config import PipSettings, read_pip_settings, setting_key
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    LEGACY_BUILD_WHY,
    NO_PROXY_ENV_WHY,
    PROXY_WHY,
    FileCopy,
    IndexSetting,
    Plan,
    Rejection,
    Unchanged,
    remote_links,
)
from crane_launch.launch.reading import DoorSetup, IndexChain, Reading, finish
from crane_launch.launch.reqfiles import RequirementsWalk, Root, copy_value, plan_copies

__all__ = [
    "FOREIGN_INDEX_WHY",
    "INDEX_COMMANDS",
    "ISOLATED_WHY",
    "PipCommandLine",
    "PipReading",
    "PipRequirements",
    "RequirementsOption",
    "RequirementsSetting",
    "plan_pip",
    "read_command_line",
    "settings_refusals",
]

INDEX_COMMANDS = frozenset({"install", "download", "wheel", "index", "lock"})

FOREIGN_INDEX_WHY = (
    "pip lets a requirements file's index override the command line and the environment, "
    "so it would bypass crane's proxy; register the index or remove the line"
)
ISOLATED_WHY = (
    "it makes pip ignore PIP_INDEX_URL, the variable through which crane hands pip its proxy"
)

_GENERAL_VALUE = (
    "--cache-dir --cert --client-cert --default-timeout --exists-action --keyring-provider "
    "--local-log --log --log-file --proxy --python --resume-retries --retries --timeout "
    "--trusted-host --use-deprecated --use-feature"
)
_GENERAL_FLAG = (
    "--debug --disable-pip-version-check --help --isolated --no-cache-dir --no-color "
    "--no-input --no-proxy-env --no-python-version-warning --quiet --require-venv "
    "--require-virtualenv --verbose --version"
)
_SHARED_VALUE = (
    "--all-releases --extra-index-url --find-links --index-url --no-binary --only-binary "
    "--only-final --pypi-url --refresh-package --uploaded-prior-to"
)
_RESOLVING_VALUE = (
    "--build-constraint --constraint --group --progress-bar --requirement "
    "--requirements-from-script --source --source-dir --source-directory --src"
)
_RESOLVING_FLAG = (
    "--check-build-dependencies --ignore-requires-python --no-build-isolation --no-clean "
    "--no-dependencies --no-deps --no-index --no-require-hashes --only-dependencies "
    "--only-deps --pre --prefer-binary --require-hashes --use-pep517"
)
_PLATFORM_VALUE = "--abi --implementation --platform --python-version"
_COMMAND_OPTIONS: dict[str, tuple[str, str]] = {
    "install": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} {_PLATFORM_VALUE} --config-settings --editable "
        "--prefix --report --root --root-user-action --target --upgrade-strategy",
        f"{_RESOLVING_FLAG} --break-system-packages --compile --dry-run --force-reinstall "
        "--ignore-installed --no-compile --no-user --no-warn-conflicts "
        "--no-warn-script-location --upgrade --user",
    ),
    "download": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} {_PLATFORM_VALUE} --dest --destination-dir "
        "--destination-directory",
        _RESOLVING_FLAG,
    ),
    "wheel": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} --config-settings --editable --wheel-dir",
        f"{_RESOLVING_FLAG} --no-verify",
    ),
    "index": (
        f"{_SHARED_VALUE} {_PLATFORM_VALUE}",
        "--ignore-requires-python --json --no-index --pre --prefer-binary",
    ),
    "lock": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} --config-settings --editable --output",
        _RESOLVING_FLAG,
    ),
}
_ALIASES = {
    "-i": "--index-url",
    "-o": "--output",
    "-f": "--find-links",
    "--pypi-url": "--index-url",
    "-r": "--requirement",
    "-c": "--constraint",
    "-h": "--help",
    "-V": "--version",
}
_SENSITIVE = frozenset(
    {
        "--index-url",
        "--extra-index-url",
        "--proxy",
        "--no-proxy-env",
        "--no-index",
        "--requirement",
        "--constraint",
        "--build-constraint",
        "--help",
    }
)
_VALUE_SHORTS = frozenset({"-r", "-c", "-e", "-f", "-i", "-t", "-d", "-w", "-o", "-C"})
_FLAG_SHORTS = frozenset({"-U", "-I", "-h", "-q", "-v", "-V"})

_GENERAL_TABLE = OptionTable(
    value_longs=frozenset(_GENERAL_VALUE.split()),
    flag_longs=frozenset(_GENERAL_FLAG.split()),
    value_shorts=frozenset(),
    flag_shorts=frozenset({"-h", "-q", "-v", "-V"}),
    aliases=_ALIASES,
    abbreviations=True,
    sensitive=_SENSITIVE,
)
_COMMAND_TABLES = {
    name: OptionTable(
        value_longs=frozenset(_GENERAL_VALUE.split() + values.split()),
        flag_longs=frozenset(_GENERAL_FLAG.split() + flags.split()),
        value_shorts=_VALUE_SHORTS,
        flag_shorts=_FLAG_SHORTS,
        aliases=_ALIASES,
        abbreviations=True,
        sensitive=_SENSITIVE,
    )
    for name, (values, flags) in _COMMAND_OPTIONS.items()
}
# Config keys and variables that name requirements files, with their option names.
_FILE_KEYS = {
    "requirement": "--requirement",
    "constraint": "--constraint",
    "build-constraint": "--build-constraint",
}
_INDEX_KEYS = frozenset({"index-url", "pypi-url"})


def plan_pip(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
    python: str | None = None,
    site_prefix: Path | None = None,
    platform: str = sys.platform,
    copy_token: str | None = None,
) -> Plan:
    """The plan for `pip *argv` (or `python -m pip *argv` when `python` is given).

    `site_prefix` is the `sys.prefix` of the Python that will run pip, for its site config
    file; by default the virtual environment of `python`, else `$VIRTUAL_ENV`.
    `copy_token` names the requirements-file copies (random by default).

    Raises `UnknownIndexError` for an unregistered `-i` on the command line,
    `RejectedSettingError` for a setting that would bypass crane's proxy, and
    `ConfigError` for two registered indexes in one run or an unreadable pip config.
    """
    launcher = (python, "-m", "pip") if python else ("pip",)
    command_line = read_command_line(argv)
    if command_line is None:
        return Plan("pip", [*launcher, *argv], Unchanged())
    # pip's own `--python X` re-runs pip under X: X's environment holds the site pip.conf.
    own_python = _last_value(command_line, "--python")
    if own_python:
        site_prefix = None
    settings = read_pip_settings(
        environ,
        command=command_line.command,
        isolated=command_line.isolated,
        python=own_python or python,
        site_prefix=site_prefix,
        home=home,
        cwd=cwd,
        read_text=read_text,
        platform=platform,
    )
    requirements = _requirements_files(command_line, settings)
    pip = PipReading(launcher, command_line, settings, requirements, cwd)
    door = partial(_open_door, pip, registry=registry, environ=environ, copy_token=copy_token)
    return finish(
        _index_reading(pip), registry=registry, environ=environ, read_text=read_text, open_door=door
    )


# --- reading pip's inputs ----------------------------------------------------------------


def _last_value(command_line: PipCommandLine, name: str) -> str | None:
    values = [o.value for o in command_line.options if o.name == name and o.value]
    return values[-1] if values else None


@dataclass(frozen=True)
class PipCommandLine:
    """An index command's argv as pip's two parsers read it.

    `options` are the command's options (general ones included), each placed in `args`.
    """

    args: tuple[str, ...]
    command: str
    options: tuple[Occurrence, ...]
    isolated: bool

    def values(self, name: str) -> list[str]:
        """The non-empty values given to option `name`, in order."""
        return [o.value for o in self.options if o.name == name and o.value]

    @property
    def index_options(self) -> list[Occurrence]:
        return [o for o in self.options if o.name == "--index-url" and o.value]


def read_command_line(argv: Sequence[str]) -> PipCommandLine | None:
    """pip's reading of `argv`; None when the command uses no index (`pip freeze`) or
    only prints help or pip's version."""
    args = tuple(argv)
    _, positionals = scan_options(args, _GENERAL_TABLE, stop_at_positional=True)
    if not positionals or positionals[0][1] not in INDEX_COMMANDS:
        return None
    command_at, command = positionals[0]
    command_args = args[:command_at] + args[command_at + 1 :]
    found, _ = scan_options(command_args, _COMMAND_TABLES[command])
    options = tuple(_remap(o, command_at) for o in found)
    if any(o.name in ("--help", "--version") for o in options):
        return None
    return PipCommandLine(args, command, options, isolated="--isolated" in command_args)


def _remap(occurrence: Occurrence, skipped: int) -> Occurrence:
    """An occurrence found with the command name left out, placed back in the full argv."""

    def shift(index: int) -> int:
        return index + 1 if index >= skipped else index

    value_index = occurrence.value_index
    return dataclasses.replace(
        occurrence,
        index=shift(occurrence.index),
        value_index=None if value_index is None else shift(value_index),
    )


@dataclass(frozen=True)
class RequirementsSetting:
    """A setting that names requirements files (`constraint = a.txt b.txt`): the roots it
    names, and the variable that overrides it for the child when one of them is copied."""

    variable: str
    roots: tuple[Root, ...]


@dataclass(frozen=True)
class RequirementsOption:
    """A requirements file named by an option on the command line."""

    occurrence: Occurrence
    root: Root


@dataclass(frozen=True)
class PipRequirements:
    """The requirements files pip reads, by where they are named."""

    settings: tuple[RequirementsSetting, ...]
    options: tuple[RequirementsOption, ...]

    @property
    def roots(self) -> tuple[Root, ...]:
        """Every file, the settings' first (pip adds the command line's to them)."""
        named = [root for setting in self.settings for root in setting.roots]
        return (*named, *(option.root for option in self.options))


def _requirements_files(command_line: PipCommandLine, settings: PipSettings) -> PipRequirements:
    from_settings: list[RequirementsSetting] = []
    for key, option in _FILE_KEYS.items():
        setting = settings.effective({key})
        if setting is not None:
            roots = tuple(Root(option, value, setting.place) for value in setting.value.split())
            from_settings.append(RequirementsSetting("PIP_" + key.upper().replace("-", "_"), roots))
    from_options = tuple(
        RequirementsOption(o, Root(o.name, o.value, "command line"))
        for o in command_line.options
        if o.name in _FILE_KEYS.values() and o.value
    )
    return PipRequirements(tuple(from_settings), from_options)


@dataclass(frozen=True)
class PipReading:
    """pip's inputs for one index command: what `_open_door` and the reading's phases see.

    `launcher` runs pip (`pip`, or `python -m pip`); `cwd` is where pip starts.
    """

    launcher: tuple[str, ...]
    command_line: PipCommandLine
    settings: PipSettings
    requirements: PipRequirements
    cwd: Path


def _index_reading(pip: PipReading) -> Reading:
    return Reading(
        tool="pip",
        command=(*pip.launcher, *pip.command_line.args),
        index_env_var="PIP_INDEX_URL",
        index_off=_index_off(pip),
        chain=_index_chain(pip),
        requirements=pip.requirements.roots,
        dialect="pip",
        cwd=pip.cwd,
        rejections=_refusals(pip),
        foreign_index_why=FOREIGN_INDEX_WHY,
        find_links=_local_find_links(pip),
    )


def _index_off(pip: PipReading) -> str | None:
    if any(o.name == "--no-index" for o in pip.command_line.options):
        return "--no-index on the command line"
    setting = pip.settings.effective({"no-index"})
    if setting is not None and strtobool(setting.value):
        return f"no-index is set ({setting.place})"
    return None


def _index_chain(pip: PipReading) -> IndexChain:
    # optparse keeps the last -i: the one pip obeys comes first.
    given = reversed(pip.command_line.values("--index-url"))
    configured = pip.settings.chain(_INDEX_KEYS)
    return (
        *(IndexSetting(url, "command line", explicit=True) for url in given),
        *(IndexSetting(setting.value, setting.place) for setting in configured),
    )


def _refusals(pip: PipReading) -> tuple[Rejection, ...]:
    rejections: list[Rejection] = []
    if pip.command_line.isolated:
        # Reported first: under --isolated pip would not see crane's proxy at all.
        rejections.append(Rejection("command line", "--isolated", ISOLATED_WHY))
    rejections.extend(_command_line_refusals(pip.command_line))
    rejections.extend(settings_refusals(pip.settings))
    return tuple(rejections)


def _local_find_links(pip: PipReading) -> tuple[str, ...]:
    given = [o.value for o in pip.command_line.options if o.name == "--find-links" and o.value]
    given += [
        part
        for value in pip.settings.highest_first()
        if value.key == "find-links"
        for part in value.value.split()
    ]
    return tuple(v for v in given if v and not remote_links([v]))


def _command_line_refusals(command_line: PipCommandLine) -> list[Rejection]:
    rejections: list[Rejection] = []
    if "--no-use-pep517" in command_line.args:  # gone from pip 26, still in older pips
        rejections.append(Rejection("command line", "--no-use-pep517", LEGACY_BUILD_WHY))
    for o in command_line.options:
        if o.name == "--extra-index-url" and o.value:
            rejections.append(Rejection("command line", "--extra-index-url", EXTRA_INDEX_WHY))
        elif o.name == "--proxy" and o.value:
            rejections.append(Rejection("command line", "--proxy", PROXY_WHY))
        elif o.name == "--no-proxy-env":
            rejections.append(Rejection("command line", "--no-proxy-env", NO_PROXY_ENV_WHY))
        elif o.name == "--find-links" and o.value:
            for url in remote_links([o.value]):
                rejections.append(Rejection("command line", f"--find-links {url}", FIND_LINKS_WHY))
    return rejections


def settings_refusals(settings: PipSettings) -> list[Rejection]:
    rejections: list[Rejection] = []
    for value in settings.highest_first():
        if value.key == "extra-index-url" and value.value.split():
            rejections.append(Rejection(value.place, "extra-index-url", EXTRA_INDEX_WHY))
        elif value.key == "proxy":
            rejections.append(Rejection(value.place, "proxy", PROXY_WHY))
        elif value.key == "no-use-pep517" and strtobool(value.value):
            rejections.append(Rejection(value.place, "no-use-pep517", LEGACY_BUILD_WHY))
        elif value.key == "no-proxy-env" and strtobool(value.value):
            rejections.append(Rejection(value.place, "no-proxy-env", NO_PROXY_ENV_WHY))
        elif value.key == "find-links":
            for url in remote_links(value.value.split()):
                rejections.append(Rejection(value.place, f"find-links {url}", FIND_LINKS_WHY))
    return rejections


# --- the run behind the index door ---------------------------------------------------------


def _open_door(
    pip: PipReading,
    walk: RequirementsWalk,
    *,
    registry: Registry,
    environ: Mapping[str, str],
    copy_token: str | None,
) -> DoorSetup:
    """pip's run behind the door: the command line without its `-i`, requirements files
    read through copies without registered index lines, the `PIP_*` index variables unset
    (crane sets its own), and `pip lock`'s output file."""
    # The pid lets a later run remove the copies of a crane that was killed outright.
    token = copy_token or f"{os.getpid()}-{secrets.token_hex(4)}"
    copies = plan_copies(walk, strip=lambda url: registry.find(url) is not None, token=token)
    swaps = [
        (option.occurrence, copied)
        for option in pip.requirements.options
        if (copied := _copy_value(option.root, walk, copies)) is not None
    ]
    command_line = pip.command_line
    args = apply_edits(command_line.args, remove=command_line.index_options, replace=swaps)
    notes: list[str] = []
    if copies:
        shown = ", ".join(display_path(path, pip.cwd) for path in copies)
        notes.append(f"reading requirements through copies without the index line: {shown}")
    lock_target, lock_output = _lock_target(command_line), None
    if lock_target == "-":
        notes.append(
            "pip lock writes to standard output: its URLs are crane's one-run proxy "
            "addresses; write to a file to get the real index URLs"
        )
    elif lock_target is not None:
        lock_output = pip.cwd / lock_target
    return DoorSetup(
        command=(*pip.launcher, *args),
        env_set=_copy_variables(pip.requirements, walk, copies),
        env_unset=frozenset(_index_variables(environ)),
        file_copies=tuple(copies.values()),
        lock_output=lock_output,
        notes=tuple(notes),
    )


def _copy_value(root: Root, walk: RequirementsWalk, copies: Mapping[Path, FileCopy]) -> str | None:
    """How to name the copy of `root` in the user's spelling; None when it has none."""
    path = walk.root_paths.get(root)
    if path is None or path not in copies:
        return None
    return copy_value(root.value, copies[path].copy)


def _copy_variables(
    requirements: PipRequirements, walk: RequirementsWalk, copies: Mapping[Path, FileCopy]
) -> dict[str, str]:
    """The variables that point pip's file settings at the copies, where any is copied."""
    env_set: dict[str, str] = {}
    for setting in requirements.settings:
        values = [root.value for root in setting.roots]
        swapped = [_copy_value(root, walk, copies) or root.value for root in setting.roots]
        if swapped != values:
            env_set[setting.variable] = " ".join(swapped)
    return env_set


def _index_variables(environ: Mapping[str, str]) -> list[str]:
    """The `PIP_*` variables that name an index, in any spelling pip accepts."""
    return [
        name for name in environ if name.startswith("PIP_") and setting_key(name[4:]) in _INDEX_KEYS
    ]


def _lock_target(command_line: PipCommandLine) -> str | None:
    """What `pip lock` writes (a path, or "-" for standard output); None for other commands."""
    if command_line.command != "lock":
        return None
    outputs = command_line.values("--output")
    return outputs[-1] if outputs else "pylock.toml"
