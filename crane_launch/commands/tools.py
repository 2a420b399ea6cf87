"""`crane pip | uv | poetry | serve`: a tool command through one of crane's doors.

Each tool command reads the user's argv and environment into a `Plan` (the planners in
`launch` are pure) and hands it to `launch.run.run`, which returns the child's exit
code. `serve` keeps an index door open until a signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from crane_launch.config import Registry
from crane_launch.console import say
from crane_launch.errors import CraneError, LoginRequiredError, UsageError
from crane_launch.launch.plan import Plan, Unchanged
from crane_launch.launch.run import run

if TYPE_CHECKING:
    from crane_launch.auth import Authorizer
    from crane_launch.launch.report import Report

__all__ = ["pdm", "pip", "pipx", "poetry", "run_command", "serve", "uv", "uvx"]


def _split_python(args: list[str]) -> tuple[str | None, list[str]]:
    if args and args[0] == "--python":
        if len(args) < 2:
            raise UsageError("--python needs a value: the interpreter whose pip to run")
        return args[1], args[2:]
    if args and args[0].startswith("--python="):
        return args[0].split("=", 1)[1], args[1:]
    return None, args


def _pip_site_prefix(environ: Mapping[str, str]) -> Path | None:
    """The `sys.prefix` of the `pip` the child will run (the first on PATH), whose
    `pip.conf` pip reads whether `VIRTUAL_ENV` names it or not: symlinks are followed,
    then the script's own environment or the interpreter its `#!` line names. None when
    that cannot be told (a version manager's shell shim): the planner then follows
    `VIRTUAL_ENV`."""
    found = shutil.which("pip", path=environ.get("PATH", os.defpath))
    if found is None:
        return None
    script = Path(found).resolve()
    if (script.parent.parent / "pyvenv.cfg").is_file():
        return script.parent.parent
    interpreter = _shebang_interpreter(script, environ)
    if interpreter is None:
        return None
    if (interpreter.parent.parent / "pyvenv.cfg").is_file():
        return interpreter.parent.parent
    return interpreter.resolve().parent.parent


def _shebang_interpreter(script: Path, environ: Mapping[str, str]) -> Path | None:
    try:
        with script.open("rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words[:1] == ["/usr/bin/env"] and len(words) > 1:
        found = shutil.which(words[1], path=environ.get("PATH", os.defpath))
        words = [found] if found else []
    if not words or "python" not in Path(words[0]).name:
        return None  # a shell shim (pyenv, asdf): its Python cannot be told from here
    return Path(words[0])


def _run(
    plan: Plan,
    registry: Registry,
    *,
    no_input: bool,
    no_cache: bool,
    report: Report | None = None,
) -> int:
    """Run `plan` with every registered index's secret variables hidden from the child."""
    hidden = plan.hidden | registry.secret_variables()
    replanned = dataclasses.replace(plan, hidden=hidden)
    return run(replanned, os.environ, no_input=no_input, no_cache=no_cache, report=report)


def _report_at(value: str | None) -> Report | None:
    """`--report VALUE` checked now (`Report.at`); the module only when one is asked for."""
    if not value:
        return None
    from crane_launch.launch.report import Report

    return Report.at(value)


@contextlib.contextmanager
def _reported(report: Report | None, tool: str, command: list[str]) -> Iterator[None]:
    """A run crane stops before the tool starts (a refused setting, a login, a probe)
    still gets its record, and a run that never ends (killed, interrupted) leaves none:
    an old report never stands for this run."""
    if report is not None:
        report.path.unlink(missing_ok=True)  # `Report.at` saw a regular file or nothing
    try:
        yield
    except CraneError as exc:
        if report is not None and not report.written:
            report.write_failure(tool, command, exc)
        raise


def pip(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane pip [--python PY] ARGS`: pip (or `PY -m pip`) through the index door."""
    from crane_launch.launch.pip import plan_pip  # each planner is imported for its tool only

    target = _report_at(report)
    with _reported(target, "pip", ["pip", *args]):
        python, rest = _split_python(args)
        registry = Registry.for_run(os.environ)
        plan = plan_pip(
            rest,
            registry=registry,
            environ=os.environ,
            cwd=Path.cwd(),
            home=Path.home(),
            python=python,
            site_prefix=None if python else _pip_site_prefix(os.environ),
        )
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def uv(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane uv ARGS`: `uv pip` through the index door, project commands through the
    transparent door, anything else unchanged."""
    from crane_launch.launch.project import is_uv_project_command, plan_uv_project
    from crane_launch.launch.uv import plan_uv_pip
    from crane_launch.launch.uv_tool import plan_uv_tool, read_tool_command_line

    target = _report_at(report)
    with _reported(target, "uv", ["uv", *args]):
        registry = Registry.for_run(os.environ)
        if args[:1] == ["pip"]:
            plan = plan_uv_pip(
                args, registry=registry, environ=os.environ, cwd=Path.cwd(), home=Path.home()
            )
        elif is_uv_project_command(args):
            plan = plan_uv_project(args, registry=registry, environ=os.environ, cwd=Path.cwd())
        elif args[:1] == ["tool"] or read_tool_command_line(args) is not None:
            plan = plan_uv_tool(
                args, registry=registry, environ=os.environ, cwd=Path.cwd(), home=Path.home()
            )
        else:
            plan = Plan("uv", ["uv", *args], Unchanged(), notes=["this uv command uses no index"])
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def uvx(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane uvx ARGS`: `uv tool run ARGS` through the index door, run as `uvx`."""
    from crane_launch.launch.uv_tool import plan_uv_tool

    target = _report_at(report)
    with _reported(target, "uvx", ["uvx", *args]):
        registry = Registry.for_run(os.environ)
        plan = plan_uv_tool(
            ["tool", "run", *args],
            registry=registry,
            environ=os.environ,
            cwd=Path.cwd(),
            home=Path.home(),
            executable="uvx",
        )
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def pipx(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane pipx ARGS`: pipx with the pip (or uv) it runs behind the index door."""
    from crane_launch.launch.pipx import plan_pipx

    target = _report_at(report)
    with _reported(target, "pipx", ["pipx", *args]):
        registry = Registry.for_run(os.environ)
        plan = plan_pipx(
            args, registry=registry, environ=os.environ, cwd=Path.cwd(), home=Path.home()
        )
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def run_command(
    args: list[str],
    *,
    index_url: str | None,
    no_input: bool,
    no_cache: bool = False,
    report: str | None = None,
) -> int:
    """`crane run [-i URL] -- COMMAND ...`: any command with both doors in its environment."""
    from crane_launch.launch.command import plan_command

    target = _report_at(report)
    with _reported(target, "run", list(args)):
        registry = Registry.for_run(os.environ)
        plan = plan_command(
            args,
            index_url=index_url,
            registry=registry,
            environ=os.environ,
            cwd=Path.cwd(),
            home=Path.home(),
        )
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def pdm(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane pdm ARGS`: pdm with its private sources behind the transparent door."""
    from crane_launch.launch.pdm import plan_pdm

    target = _report_at(report)
    with _reported(target, "pdm", ["pdm", *args]):
        registry = Registry.for_run(os.environ)
        plan = plan_pdm(args, registry=registry, environ=os.environ, cwd=Path.cwd())
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


def poetry(
    args: list[str], *, no_input: bool, no_cache: bool = False, report: str | None = None
) -> int:
    """`crane poetry ARGS`: poetry with its private sources behind the transparent door."""
    from crane_launch.launch.project import plan_poetry

    target = _report_at(report)
    with _reported(target, "poetry", ["poetry", *args]):
        registry = Registry.for_run(os.environ)
        plan = plan_poetry(args, registry=registry, environ=os.environ, cwd=Path.cwd())
        return _run(plan, registry, no_input=no_input, no_cache=no_cache, report=target)


class _ServeTokens:
    """The authorizer of a long-lived door: log in again when a person can answer."""

    def __init__(
        self, authorizer: Authorizer, relogin: Callable[[], Authorizer], *, interactive: bool
    ) -> None:
        self._authorizer = authorizer
        self._relogin = relogin
        self._interactive = interactive
        self._lock = threading.Lock()

    def _or_relogin(self, get: Callable[[Authorizer], str]) -> str:
        try:
            return get(self._authorizer)
        except LoginRequiredError as exc:
            if not self._interactive:
                say(str(exc))
                raise
            with self._lock:
                self._authorizer = self._relogin()
                return self._authorizer.authorization()

    def authorization(self) -> str:
        return self._or_relogin(lambda authorizer: authorizer.authorization())

    def reauthorized(self, stale: str) -> str:
        return self._or_relogin(lambda authorizer: authorizer.reauthorized(stale))


def serve(url: str, *, port: int, no_input: bool, no_cache: bool = False) -> int:
    """`crane serve URL`: the index door for URL until SIGINT or SIGTERM; prints its URL."""
    from crane_launch.auth import LoginPolicy, TerminalUI, TokenStore, authorizer_for
    from crane_launch.launch.doors import credentials_for, file_cache, open_index_door

    registry = Registry.for_run(os.environ)
    index = registry.get(url)
    authorizer = credentials_for(index, os.environ, no_input=no_input)
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not no_input

    def relogin() -> Authorizer:
        return authorizer_for(
            index,
            os.environ,
            store=TokenStore(),
            policy=LoginPolicy.RUN_LIVE,
            ui=TerminalUI(live=True),
        )

    from crane_launch.launch.command import public_index_for

    tokens = _ServeTokens(authorizer, relogin, interactive=interactive)
    public_url = public_index_for(index, os.environ, registry)
    stop = threading.Event()
    cache = None if no_cache else file_cache(os.environ)

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_index_door(index, public_url, tokens, port=port, cache=cache) as door:
            print(door.index_url, flush=True)
            say(f"serving {index.url} at the URL above (private first, then {public_url})")
            say("stop with Ctrl-C")
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if cache is not None:
            cache.save_stats()
    say("stopped")
    return 0
