"""Start and stop the stack's server processes (test-only).

- ``start_pypiserver(dir)``: ``pypi-server run --host 127.0.0.1 --port P --disable-fallback
  -a . -P . DIR`` on a free port (chosen by binding port 0, retried on a collision), waited
  for until ``/simple/`` answers. Returns ``(simple_url, proc)`` with
  ``simple_url = "http://127.0.0.1:P/simple/"``.
- ``start_idp(access_ttl=..., client_secrets=...)``: ``node idp.mjs`` (oidc-provider), waited
  for until it prints ``READY <issuer>``. Returns ``(issuer, proc)``. ``client_secrets``
  (``{"crane-ci": ..., "crane-test-confidential": ...}``, either may be missing) sets the
  confidential clients' secrets; a missing one is idp.mjs's fixed default
  (``IDP_DEFAULT_SECRETS``). Its stdout is read by a thread into
  ``proc.lines``; ``proc.events()`` gives the ``EVENT ...`` lines and ``proc.wait_for_event``
  waits for one (the provider writes the line before it answers, but this process reads it
  on another thread, so assert with ``wait_for_event``, not ``events()``, right after a call).

``proc`` is a ``ManagedProcess``: ``.pid``, ``.poll()``, ``.stop()`` (SIGTERM, wait, SIGKILL),
``.lines``, ``.output()``. ``stop_all(procs)`` stops several. Both servers also exit when this
process dies: at interpreter exit (atexit), and on Linux through PR_SET_PDEATHSIG even when
it is killed (children started from the main thread); the IdP also exits on stdin EOF.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx
from toolpath import ToolError, node_binary

__all__ = [
    "IDP_DEFAULT_SECRETS",
    "STACK_DIR",
    "ManagedProcess",
    "StackError",
    "free_port",
    "start_idp",
    "start_pypiserver",
    "stop_all",
]

STACK_DIR = Path(__file__).resolve().parent
IDP_SCRIPT = STACK_DIR / "idp.mjs"
# The confidential clients of idp.mjs: client id -> (variable it reads, default secret).
_SECRET_VARIABLES = {
    "crane-ci": ("CI_CLIENT_SECRET", "crane-ci-test-secret"),
    "crane-test-confidential": ("CONFIDENTIAL_CLIENT_SECRET", "crane-confidential-test-secret"),
}
IDP_DEFAULT_SECRETS = {client: default for client, (_, default) in _SECRET_VARIABLES.items()}

_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


class StackError(RuntimeError):
    """A stack component could not be started."""


class ManagedProcess:
    """A child process whose stdout+stderr lines are collected by a reader thread."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin_pipe: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,  # a Ctrl-C in the terminal is pytest's, not the servers'
            # only async-signal-safe calls (prctl, getppid, _exit) run in the child
            preexec_fn=_die_with_parent(),  # noqa: PLW1509
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()
        with _live_lock:
            _live.add(self)

    # -- output --------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self, last: int | None = None) -> str:
        with self._cond:
            lines = list(self.lines if last is None else self.lines[-last:])
        return "\n".join(lines)

    def events(self) -> list[str]:
        """The ``EVENT ...`` lines so far (IdP only), in order."""
        with self._cond:
            return [line for line in self.lines if line.startswith("EVENT ")]

    def wait_for_line(self, predicate, timeout: float = 5.0, *, start: int = 0) -> str | None:
        """Wait until a line (from index ``start`` on) satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    return None
                self._cond.wait(min(remaining, 0.2))

    def wait_for_event(self, prefix: str, timeout: float = 5.0, *, start: int = 0) -> str | None:
        """Wait for an event line starting with ``EVENT <prefix>``; ``None`` on timeout."""
        want = prefix if prefix.startswith("EVENT ") else f"EVENT {prefix}"
        return self.wait_for_line(lambda line: line.startswith(want), timeout, start=start)

    def mark(self) -> int:
        """Current number of lines: pass as ``start=`` to wait only for later lines."""
        with self._cond:
            return len(self.lines)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Safe to call twice."""
        try:
            if self.popen.poll() is None:
                self.popen.terminate()
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout)
        finally:
            if self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()
            self._reader.join(timeout=2)
            with _live_lock:
                _live.discard(self)
        return self.popen.returncode

    terminate = stop

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.popen.returncode}>"


def _die_with_parent():
    """On Linux, have the child get SIGTERM when this process dies (even by SIGKILL).

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only used for
    children started from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def stop_all(procs: Iterable[ManagedProcess | None]) -> None:
    errors = []
    for proc in procs:
        if proc is None:
            continue
        try:
            proc.stop()
        except Exception as exc:  # keep stopping the others
            errors.append(exc)
    if errors:
        raise errors[0]


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=2)


def free_port() -> int:
    """A port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pypiserver_argv() -> list[str]:
    # The interpreter running the tests is the project's: pypiserver comes from its
    # environment, never from whatever the machine has on PATH.
    if importlib.util.find_spec("pypiserver") is None:
        raise StackError(
            "pypiserver is not installed in the project's environment: run `task deps`"
        )
    return [sys.executable, "-m", "pypiserver"]


def start_pypiserver(
    packages_dir: str | Path, *, timeout: float = 20.0, attempts: int = 5
) -> tuple[str, ManagedProcess]:
    """Serve ``packages_dir`` with pypiserver; return ``("http://127.0.0.1:P/simple/", proc)``."""
    packages_dir = Path(packages_dir)
    if not packages_dir.is_dir():
        raise StackError(f"packages directory does not exist: {packages_dir}")
    env = _child_env()
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        argv = [
            *_pypiserver_argv(),
            *("run", "--host", "127.0.0.1", "--port", str(port), "--disable-fallback"),
            *("-a", ".", "-P", ".", str(packages_dir)),
        ]
        proc = ManagedProcess(f"pypiserver:{port}", argv, env=env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    resp = client.get(f"{base}/simple/")
                    if resp.status_code == 200:
                        return f"{base}/simple/", proc
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        last_error = proc.output(last=30)
        still_running = proc.poll() is None
        proc.stop()
        if still_running:
            raise StackError(
                f"pypiserver did not answer on {base} within {timeout}s:\n{last_error}"
            )
        # It exited: most likely the port was taken between free_port() and bind. Retry.
    raise StackError(f"pypiserver failed to start after {attempts} attempts:\n{last_error}")


def start_idp(
    access_ttl: int = 300,
    refresh_ttl: int = 86400,
    device_ttl: int = 600,
    *,
    port: int = 0,
    timeout: float = 20.0,
    client_secrets: Mapping[str, str] | None = None,
) -> tuple[str, ManagedProcess]:
    """Start ``node idp.mjs``; return ``(issuer, proc)`` once it printed ``READY <issuer>``."""
    unknown = set(client_secrets or ()) - set(_SECRET_VARIABLES)
    if unknown:
        raise ValueError(f"idp.mjs has no confidential client {sorted(unknown)}")
    if not (STACK_DIR / "node_modules" / "oidc-provider").is_dir():
        raise StackError(
            "oidc-provider is not installed: run `npm install` in integration/stack "
            f"(the directory {STACK_DIR.name}/ next to the integration tests)"
        )
    try:
        node = node_binary()
    except ToolError as exc:
        raise StackError(str(exc)) from None
    env = _child_env()
    env.update(
        ACCESS_TTL=str(int(access_ttl)),
        REFRESH_TTL=str(int(refresh_ttl)),
        DEVICE_TTL=str(int(device_ttl)),
    )
    for name, (variable, _default) in _SECRET_VARIABLES.items():
        env.pop(variable, None)  # never a value from the test process's own environment
        if client_secrets and client_secrets.get(name):
            env[variable] = client_secrets[name]
    argv = [node, str(IDP_SCRIPT), "--port", str(port), "--watch-stdin"]
    proc = ManagedProcess(
        f"idp(access_ttl={access_ttl})", argv, cwd=STACK_DIR, env=env, stdin_pipe=True
    )
    line = proc.wait_for_line(lambda line: line.startswith("READY "), timeout)
    if line is None:
        proc.stop()
        raise StackError(f"the IdP did not print READY within {timeout}s:\n{proc.output(last=40)}")
    issuer = line.split(" ", 1)[1].strip()
    return issuer, proc


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The servers talk to 127.0.0.1 only: no proxies.
    for key in list(env):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[key]
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env
