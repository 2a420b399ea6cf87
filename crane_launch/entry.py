"""The `crane` console script's entry point.

`crane pip --version` (and `-V`, and the same for uv and poetry) uses no index, so crane
has nothing to do but hide the secret variables: it replaces itself with the tool
(`execve`) before importing click, the planners or the proxy. The tool then starts as
fast as it would alone, keeps crane's process id, gets signals straight from the
terminal, and its exit status is crane's. Anything else, and any doubt (an unreadable
registry, a tool not on PATH), goes to `cli.main`, which reports it as usual.
"""

from __future__ import annotations

import json
import os
import sys

from crane_launch.environ import ALWAYS_HIDDEN, SECRET_VARIABLE_FIELDS, config_dir

TYPE_CHECKING = False  # `typing` costs 2 ms of start-up; mypy reads this name as True
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import NoReturn

__all__ = ["VERSION_QUERIES", "main"]

VERSION_QUERIES = frozenset(
    (tool, flag) for tool in ("pip", "uv", "poetry") for flag in ("--version", "-V")
)
"""Commands that only print the tool's version. (`uv version` is not one: it reads and
can change the project.)"""


def main() -> NoReturn:
    argv = sys.argv[1:]
    if argv == ["--version"]:  # what click's version option prints, without importing click
        from crane_launch import __version__

        print(f"crane, version {__version__}")
        sys.exit(0)
    if tuple(argv) in VERSION_QUERIES and os.name == "posix" and not os.environ.get("CRANE_REPORT"):
        # (A report asked for by the environment is written by the full path.)
        _exec_tool(argv, os.environ)
    from crane_launch.cli import main as cli_main

    cli_main()


def _exec_tool(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Become the tool of a version query; return (to the full path) on any doubt."""
    hidden = _secret_variables()
    found = _which(argv[0], environ.get("PATH", os.defpath))
    if hidden is None or found is None:
        return
    child = {name: value for name, value in environ.items() if name not in hidden}
    sys.stdout.flush()
    sys.stderr.flush()
    # What the full path's Popen gives the child: the signals Python ignores (SIGPIPE,
    # SIGXFSZ) back to their defaults, and no descriptor but the standard three.
    import signal

    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    os.closerange(3, _MAX_FD)
    try:
        os.execve(found, [found, *argv[1:]], child)  # noqa: S606 - found like resolve_command
    except OSError:
        return  # not executable after all: the full path says so in one line


_MAX_FD = 1 << 20
"""Above any descriptor a process has here (`closerange` uses close_range(2) on Linux)."""


def _which(name: str, path: str) -> str | None:
    """`shutil.which(name, path=path)` on POSIX for a bare name, as `run.resolve_command`
    asks it (importing shutil costs 2 ms of start-up; a test holds the two together)."""
    if not path:
        return None
    seen: set[str] = set()
    for directory in path.split(os.pathsep):
        if directory in seen:
            continue
        seen.add(directory)
        candidate = os.path.join(directory, name)
        if (
            os.path.exists(candidate)
            and os.access(candidate, os.F_OK | os.X_OK)
            and not os.path.isdir(candidate)
        ):
            return candidate
    return None


def _secret_variables() -> frozenset[str] | None:
    """`ALWAYS_HIDDEN` and every variable a registered index names; None when the
    registry cannot be read plainly (the full path reports why)."""
    try:
        raw = (config_dir() / "indexes.json").read_bytes()
    except FileNotFoundError:
        return ALWAYS_HIDDEN
    except OSError:
        return None
    try:
        indexes = json.loads(raw)["indexes"]
        named = {
            index[field]
            for index in indexes
            for field in SECRET_VARIABLE_FIELDS
            if index.get(field) is not None
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(name, str) for name in named):
        return None
    return ALWAYS_HIDDEN | named
