"""The tool commands: `crane pip`, `crane uv`, `crane serve`.

Each turns the user's argv and environment into a plan (pure, in pip.py / uv.py)
and hands it to `run.run_plan`. `serve` keeps the index door open until a signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from crane_launch.auth import Credentials, LoginPolicy, TerminalUI
from crane_launch.config import PrivateIndex, Registry, builtin_public_index, normalise_url
from crane_launch.errors import LoginRequiredError, UsageError
from crane_launch.launch.pip import plan_pip
from crane_launch.launch.plan import LaunchPlan
from crane_launch.launch.project import is_uv_project_command, plan_poetry, plan_uv_project
from crane_launch.launch.run import (
    LoginOptions,
    credentials_for,
    open_index_door,
    run_plan,
    run_project_plan,
    say,
)
from crane_launch.launch.uv import plan_uv_pip

__all__ = ["pip", "poetry", "serve", "uv"]


def _split_python(args: list[str]) -> tuple[str | None, list[str]]:
    if args and args[0] == "--python":
        if len(args) < 2:
            raise UsageError("--python needs a value: the interpreter whose pip to run")
        return args[1], args[2:]
    if args and args[0].startswith("--python="):
        return args[0].split("=", 1)[1], args[1:]
    return None, args


def pip(args: list[str], *, no_input: bool) -> int:
    python, rest = _split_python(args)
    plan = plan_pip(
        rest,
        registry=Registry.load(),
        environ=os.environ,
        cwd=Path.cwd(),
        home=Path.home(),
        python=python,
    )
    return run_plan(plan, LoginOptions(no_input=no_input), os.environ)


def uv(args: list[str], *, no_input: bool) -> int:
    registry = Registry.load()
    options = LoginOptions(no_input=no_input)
    if args[:1] == ["pip"]:
        plan = plan_uv_pip(
            args, registry=registry, environ=os.environ, cwd=Path.cwd(), home=Path.home()
        )
        return run_plan(plan, options, os.environ)
    if is_uv_project_command(args):
        project = plan_uv_project(args, registry=registry, environ=os.environ, cwd=Path.cwd())
        return run_project_plan(project, options, os.environ)
    return run_plan(_unchanged("uv", args, "this uv command uses no index"), options, os.environ)


def poetry(args: list[str], *, no_input: bool) -> int:
    plan = plan_poetry(args, registry=Registry.load(), environ=os.environ, cwd=Path.cwd())
    return run_project_plan(plan, LoginOptions(no_input=no_input), os.environ)


def _unchanged(tool: str, args: list[str], note: str) -> LaunchPlan:
    return LaunchPlan(
        tool=tool,
        command=[tool, *args],
        private=None,
        public_url="",
        env_set={},
        env_unset=set(),
        index_env_var="",
        file_copies=[],
        notes=[note],
    )


def public_index_for(index: PrivateIndex, environ: Mapping[str, str], registry: Registry) -> str:
    """Where projects the private index lacks come from, for `crane serve`."""
    if index.public_index:
        return index.public_index
    for name in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        value = environ.get(name)
        if value and registry.find(value) is None:
            return normalise_url(value)
    return builtin_public_index()


class _ServeTokens:
    """Tokens for a long-lived proxy: log in again when a person can answer."""

    def __init__(self, credentials: Credentials, *, interactive: bool, open_browser: bool) -> None:
        self._credentials = credentials
        self._interactive = interactive
        self._open_browser = open_browser
        self._lock = threading.Lock()

    def _relogin(self) -> str:
        with self._lock:
            return self._credentials.ensure(
                LoginPolicy.RUN_LIVE, TerminalUI(live=True), self._open_browser
            )

    def _or_relogin(self, get: Callable[[], str]) -> str:
        try:
            return get()
        except LoginRequiredError as exc:
            if not self._interactive:
                say(str(exc))
                raise
            return self._relogin()

    def access_token(self) -> str:
        return self._or_relogin(self._credentials.access_token)

    def refreshed_token(self, stale: str) -> str:
        return self._or_relogin(lambda: self._credentials.refreshed_token(stale))


def serve(url: str, *, port: int, no_input: bool) -> int:
    registry = Registry.load()
    index = registry.get(url)
    options = LoginOptions(no_input=no_input)
    credentials = credentials_for(index, options, os.environ)
    interactive = sys.stdin.isatty() and sys.stderr.isatty() and not no_input
    tokens = _ServeTokens(credentials, interactive=interactive, open_browser=True)
    from crane_launch.proxy.door import IndexSpec

    spec = IndexSpec(index.url, public_index_for(index, os.environ, registry), index.probe_path)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_index_door(spec, tokens, port=port) as (door, server):
            print(door.index_url(server.port), flush=True)
            say(f"serving {index.url} at the URL above (private first, then {spec.public_url})")
            say("stop with Ctrl-C")
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    say("stopped")
    return 0
