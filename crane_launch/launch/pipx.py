"""Plan `crane pipx install|run|upgrade|upgrade-all|inject|reinstall ...` behind the index door.

pipx's behaviour this follows (pipx 1.18 `main.py`, `commands/`, `backend`; checked against
pipx 1.18.4):

- pipx installs with a backend: uv when pipx can find it (its default when uv is installed
  beside it), else pip; `--backend` and `PIPX_DEFAULT_BACKEND` choose. pip runs inside
  pipx's own environments (`venv/bin/python -m pip`), so it reads pip's configuration
  sources (`PIP_*`, `PIP_CONFIG_FILE`, the user and global pip.conf); uv runs as
  `uv pip install --python ...` (`uv tool run` for `pipx run`) and reads uv's.
- `-i/--index-url URL` becomes `--index-url URL` in the pip arguments, `--pip-args` is
  split like a shell, and both are recorded in the environment's `pipx_metadata.json`:
  `upgrade`, `upgrade-all` and `reinstall` reuse the recorded arguments when the command
  line gives none. The command line is argparse's: a long option may be abbreviated
  (`--index`, `--pip`), and `pipx run` stops at the application's name.

What crane does: the index options stay on pipx's command line, so pipx records the real
private index (a later plain `pipx upgrade` asks it, and fails for want of credentials,
rather than another index), and the door is handed over as `UV_DEFAULT_INDEX`, which beats
any `--index-url` for uv, and as `PIP_INDEX_URL`. pip lets its command line beat the
environment: with the pip backend crane takes the index options out of the command line
(pipx then records none), and a recorded `--index-url` of an earlier install goes
straight to the private index through the guard, without the public index behind it.
The index in play, and every refusal, is the pip planner's verdict on the pip arguments
pipx would pass (`launch.pip`), plus uv's extra-index variables.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crane_launch.config import Registry
from crane_launch.errors import UsageError
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options
from crane_launch.launch.files import ReadText
from crane_launch.launch.pip import plan_pip
from crane_launch.launch.pip import read_command_line as read_pip_command_line
from crane_launch.launch.plan import IndexDoorMode, PipxRecord, Plan, Unchanged
from crane_launch.launch.uv import environment_refusals, settings_file_refusals

__all__ = ["PIPX_INDEX_COMMANDS", "plan_pipx"]

PIPX_INDEX_COMMANDS = frozenset(
    {
        "install",
        "run",
        "upgrade",
        "upgrade-all",
        "inject",
        "reinstall",
        "reinstall-all",
        "upgrade-shared",
    }
)

_VALUE_LONGS = (
    "--include-resources-from --upgrade-strategy --suffix --python --fetch-python "
    "--preinstall --app --lock --index-url --pip-args --cooldown --backend --output "
    "--python-args --with --spec --requirement --skip"
)
_FLAG_LONGS = (
    "--help --version --quiet --verbose --global --skip-maintenance --include-deps --force "
    "--include-injected --no-cache --pypackages --path --install --all-shells "
    "--system-site-packages --include-apps --editable-only --with-suffix --editable"
)
_TABLE = OptionTable(
    value_longs=frozenset(_VALUE_LONGS.split()),
    flag_longs=frozenset(_FLAG_LONGS.split()),
    value_shorts=frozenset({"-i", "-r"}),
    flag_shorts=frozenset({"-h", "-q", "-v", "-f", "-e"}),
    aliases={"-i": "--index-url", "-r": "--requirement", "-h": "--help"},
    abbreviations=True,
    sensitive=frozenset({"--index-url", "--pip-args"}),
)


@dataclass(frozen=True)
class PipxCommandLine:
    args: tuple[str, ...]
    command: str
    options: tuple[Occurrence, ...]
    names: tuple[str, ...] = ()
    """The positional arguments after the subcommand (for `run`, the application)."""

    def values(self, name: str) -> list[str]:
        return [o.value for o in self.options if o.name == name and o.value is not None]


def read_pipx_command_line(argv: Sequence[str]) -> PipxCommandLine | None:
    """argparse's reading of `pipx *argv`; None unless it installs from an index."""
    args = tuple(argv)
    found, positionals = scan_options(args, _TABLE, stop_at_positional=True)
    if not positionals or positionals[0][1] not in PIPX_INDEX_COMMANDS:
        return None
    position, command = positionals[0]
    more, words = scan_options(
        args, _TABLE, start=position + 1, stop_at_positional=command == "run"
    )
    found += more
    if any(o.name in ("--help", "--version") for o in found):
        return None
    return PipxCommandLine(args, command, tuple(found), tuple(word for _, word in words))


def plan_pipx(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """The plan for `pipx *argv`: IndexDoorMode when the pip arguments pipx would pass put a
    registered index in play; raises what the pip planner raises for them."""
    command_line = read_pipx_command_line(argv)
    if command_line is None:
        return Plan("pipx", ["pipx", *argv], Unchanged())
    given = _pip_args(command_line)
    recorded = {} if given else _recorded_pip_args(command_line, environ, home, read_text)
    pip_args = given or [arg for args in recorded.values() for arg in args]
    # pip runs in pipx's environments, not in the caller's virtual environment.
    pip_environ = {k: v for k, v in environ.items() if k != "VIRTUAL_ENV"}
    pip_plan = plan_pip(
        ["install", *pip_args, *_requirements(command_line)],
        registry=registry,
        environ=pip_environ,
        cwd=cwd,
        home=home,
        read_text=read_text,
    )
    mode = pip_plan.mode
    if not isinstance(mode, IndexDoorMode):
        notes = [note.replace("running pip", "running pipx") for note in pip_plan.notes]
        return Plan("pipx", ["pipx", *argv], Unchanged(), notes=notes)
    refused = environment_refusals(environ) + settings_file_refusals(
        environ, cwd=cwd, home=home, read_text=read_text
    )
    if refused:
        raise refused[0].error()
    command = list(command_line.args)
    record = None
    if _backend(command_line, environ) == "pip":
        command = apply_edits(command_line.args, **_without_index_options(command_line))
        record = PipxRecord(
            pipx_home(environ, home) / "venvs",
            only=_naming(recorded, registry, mode.private.url) if recorded else None,
            main_package=command_line.command != "inject",
        )
    unset = frozenset(n for n in ("UV_INDEX_URL", "UV_DEFAULT_INDEX") if n in environ)
    # pip's "Looking in indexes: <door>" would reach pipx's log files: pip says less
    quiet = {"PIP_QUIET": "1"} if record is not None else {}
    door = replace(
        mode,
        env_set={**mode.env_set, **quiet},
        also_env_vars=("UV_DEFAULT_INDEX",),
        env_unset=mode.env_unset | unset,
        file_copies=(),
        pipx_record=record,
    )
    return Plan("pipx", ["pipx", *command], door, notes=list(pip_plan.notes))


def _requirements(command_line: PipxCommandLine) -> list[str]:
    """What pipx asks pip to install, as pip arguments: the packages of `install` and
    `inject`, the spec of `run`, `--preinstall` and `--with`, and `inject`'s `-r` files.
    The pip planner then judges them like a command line's (`name @ URL` elsewhere for a
    private project is refused)."""
    names = list(command_line.names)
    found: list[str] = []
    if command_line.command == "install":
        found += names
    elif command_line.command == "inject":
        found += names[1:]
    elif command_line.command == "run":
        found += command_line.values("--spec") or names[:1]
    found += command_line.values("--preinstall") + command_line.values("--with")
    for path in command_line.values("--requirement"):
        found += ["-r", path]
    return found


def _pip_args(command_line: PipxCommandLine) -> list[str]:
    """The pip arguments pipx builds: `--pip-args` split like a shell, then `--index-url`."""
    args: list[str] = []
    for value in command_line.values("--pip-args"):
        try:
            args += split_pip_args(value)
        except ValueError as exc:
            raise UsageError(f"--pip-args {value!r} cannot be split like a shell ({exc})") from None
    for value in command_line.values("--index-url"):
        args += ["--index-url", value]
    return args


_REUSING = frozenset({"upgrade", "upgrade-all", "reinstall", "reinstall-all"})
"""The commands that reuse the pip arguments an environment's metadata records when the
command line gives none."""


def pipx_home(environ: Mapping[str, str], home: Path) -> Path:
    """pipx's home (pipx 1.18 `paths.py`): `PIPX_HOME`, else `~/.local/pipx` when it exists
    (the old default), else `$XDG_DATA_HOME/pipx` (`~/.local/share/pipx`)."""
    if environ.get("PIPX_HOME"):
        return Path(environ["PIPX_HOME"])
    if (home / ".local" / "pipx").is_dir():
        return home / ".local" / "pipx"
    data = environ.get("XDG_DATA_HOME", "")
    return (Path(data) if data.startswith("/") else home / ".local" / "share") / "pipx"


def _naming(
    recorded: Mapping[str, Sequence[str]], registry: Registry, private_url: str
) -> frozenset[str]:
    """The environments whose recorded pip arguments name the private index: the ones an
    `upgrade-all` may record it for (the others came from elsewhere)."""
    named = set()
    for name, args in recorded.items():
        line = read_pip_command_line(["install", *args])
        urls = [o.value or "" for o in line.index_options] if line is not None else []
        if any((found := registry.find(url)) and found.url == private_url for url in urls):
            named.add(name)
    return frozenset(named)


def _recorded_pip_args(
    command_line: PipxCommandLine, environ: Mapping[str, str], home: Path, read_text: ReadText
) -> dict[str, list[str]]:
    """The pip arguments the metadata of each environment `upgrade`, `upgrade-all` or
    `reinstall` acts on records (pipx reuses them when the command line gives none)."""
    if command_line.command not in _REUSING:
        return {}
    venvs = pipx_home(environ, home) / "venvs"
    if command_line.command in ("upgrade-all", "reinstall-all"):
        try:
            names = sorted(entry.name for entry in venvs.iterdir())
        except OSError:
            names = []
    else:
        names = list(command_line.names)
    found: dict[str, list[str]] = {}
    for name in names:
        try:
            metadata = json.loads(read_text(venvs / name / "pipx_metadata.json"))
        except (OSError, ValueError):
            continue  # pipx reports a missing or broken environment itself
        for recorded in recorded_pip_args(metadata):
            args = found.setdefault(name, [])
            args += [arg for arg in recorded if isinstance(arg, str)]
    return found


def recorded_pip_args(metadata: object, *, main_package: bool = True) -> list[list[Any]]:
    """The `pip_args` lists of a `pipx_metadata.json` (pipx 1.18, metadata 0.5+): the main
    package's (unless `main_package` is False) and each injected package's, as they are
    (a caller may extend one in place)."""
    if not isinstance(metadata, dict):
        return []
    injected = metadata.get("injected_packages")
    packages = [metadata.get("main_package")] if main_package else []
    packages += list(injected.values()) if isinstance(injected, dict) else []
    found = []
    for package in packages:
        args = package.get("pip_args") if isinstance(package, dict) else None
        if isinstance(args, list):
            found.append(args)
    return found


def split_pip_args(value: str) -> list[str]:
    """`--pip-args` as pipx 1.18 splits it: one pair of enclosing quotes taken off first
    (`--pip-args="'--index-url URL'"`), then split like a shell."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return shlex.split(text)


def _backend(command_line: PipxCommandLine, environ: Mapping[str, str]) -> str:
    given = command_line.values("--backend")
    return (given[-1] if given else environ.get("PIPX_DEFAULT_BACKEND", "")).strip().lower() or "uv"


def _without_index_options(command_line: PipxCommandLine) -> dict[str, list[Any]]:
    """The edits that take every index option out of pipx's command line: `-i` itself, and
    the index options inside `--pip-args` (the rest of that value kept)."""
    remove = [o for o in command_line.options if o.name == "--index-url"]
    replace_values: list[tuple[Occurrence, str]] = []
    for occurrence in command_line.options:
        if occurrence.name != "--pip-args" or occurrence.value is None:
            continue
        pip_line = read_pip_command_line(["install", *split_pip_args(occurrence.value)])
        if pip_line is None:
            continue
        kept = apply_edits(pip_line.args, remove=pip_line.index_options)[1:]
        replace_values.append((occurrence, shlex.join(kept)))
    return {"remove": remove, "replace": replace_values}
