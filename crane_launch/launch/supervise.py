"""Run the child tool and make sure nothing of it outlives crane (POSIX).

The child stays in the terminal's process group, so a Ctrl-C on the terminal reaches
it directly. While it runs, crane's own SIGINT handler does nothing at first (not
SIG_IGN, which the child would inherit); SIGTERM and SIGHUP are forwarded. If the
child has not finished some seconds after crane was signalled, crane escalates over
the whole process tree: SIGINT to the child (a SIGINT sent to crane alone), then
SIGTERM to every descendant, then SIGKILL.

Every descendant is caught (Linux): crane is a child subreaper while the child runs
(`PR_SET_CHILD_SUBREAPER`), so a daemon the child double-forks is re-parented to crane
instead of init, and torn down with the rest even when the child has already exited.
The direct child gets `PR_SET_PDEATHSIG` SIGTERM: if crane itself is killed with
SIGKILL, the child does not go on retrying against a dead proxy.

Exit status: the child's own code; 128 + n for a child killed by signal n; and
128 + n when crane itself was stopped by signal n (what a shell reports for a
program killed by that signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import enum
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType

import psutil

from crane_launch.errors import ConfigError

__all__ = ["run_supervised"]

_POLL = 0.1
_SIGINT_GRACE = 1.0
_TERM_GRACE = 2.0


def run_supervised(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    grace: float = _TERM_GRACE,
) -> int:
    received: list[int] = []
    me = psutil.Process()
    before = {proc.pid for proc in _children(me)}
    with _subreaper():
        try:
            child = psutil.Popen(list(command), env=dict(env), preexec_fn=_die_with_parent())
        except OSError as exc:  # a broken install: a script whose interpreter is gone
            raise ConfigError(
                f"{command[0]} cannot be started ({exc.strerror or exc}); reinstall it"
            ) from None
        tree: dict[int, psutil.Process] = {child.pid: child}
        try:
            return _supervise(
                child, tree=tree, received=received, grace=grace, me=me, before=before
            )
        finally:
            _reap_orphans(me, before, grace)


def _supervise(
    child: psutil.Popen,
    *,
    tree: dict[int, psutil.Process],
    received: list[int],
    grace: float,
    me: psutil.Process,
    before: set[int],
) -> int:

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        # Look once more before the child can die of this signal: a descendant started
        # since the last poll would be orphaned, unknown, and outlive crane.
        _remember_descendants(child, tree)
        _remember_orphans(me, before, tree)
        if signum != signal.SIGINT:
            with contextlib.suppress(psutil.Error, OSError):
                child.send_signal(signum)

    with _handlers(on_signal):
        try:
            code = _wait(child, tree, received, grace)
        finally:
            _kill_tree(tree, grace)
    if received:
        return 128 + received[0]
    if code < 0:
        return 128 - code
    return code


class _Escalation(enum.Enum):
    """How far crane has gone in stopping the child after it was itself signalled."""

    WAITING = enum.auto()  # nobody asked crane to stop
    SIGNALLED = enum.auto()  # crane got a signal; the child got it too (or the terminal's)
    SIGINT_SENT = enum.auto()  # a SIGINT for crane alone, passed on to the child
    TERM_SENT = enum.auto()  # every descendant got SIGTERM
    KILL_SENT = enum.auto()  # every descendant got SIGKILL


def _wait(
    child: psutil.Popen,
    tree: dict[int, psutil.Process],
    received: list[int],
    grace: float,
) -> int:
    stage = _Escalation.WAITING
    first_signal_at = 0.0
    while True:
        with contextlib.suppress(psutil.TimeoutExpired):
            code = child.wait(timeout=_POLL)
            return int(code) if code is not None else 0
        _remember_descendants(child, tree)
        if not received:
            continue
        now = time.monotonic()
        if stage is _Escalation.WAITING:
            first_signal_at = now
            stage = _Escalation.SIGNALLED
        stage = _escalate(
            stage,
            now - first_signal_at,
            child=child,
            tree=tree,
            first_signal=received[0],
            grace=grace,
        )


def _escalate(
    stage: _Escalation,
    elapsed: float,
    *,
    child: psutil.Popen,
    tree: dict[int, psutil.Process],
    first_signal: int,
    grace: float,
) -> _Escalation:
    """The next step of stopping the child, `elapsed` seconds after crane's first signal."""
    if (
        stage is _Escalation.SIGNALLED
        and first_signal == signal.SIGINT
        and elapsed >= _SIGINT_GRACE
    ):
        with contextlib.suppress(psutil.Error):
            child.send_signal(signal.SIGINT)
        stage = _Escalation.SIGINT_SENT
    if (
        stage in (_Escalation.SIGNALLED, _Escalation.SIGINT_SENT)
        and elapsed >= _SIGINT_GRACE + grace
    ):
        _signal_all(tree, signal.SIGTERM)
        stage = _Escalation.TERM_SENT
    if stage is _Escalation.TERM_SENT and elapsed >= _SIGINT_GRACE + 2 * grace:
        _signal_all(tree, signal.SIGKILL)
        stage = _Escalation.KILL_SENT
    return stage


def _children(me: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return me.children(recursive=True)
    return []


def _remember_orphans(
    me: psutil.Process, before: set[int], tree: dict[int, psutil.Process]
) -> None:
    """Crane's own new children (and theirs): orphans of the child, re-parented to crane
    the subreaper; never a process crane had before the child started."""
    for proc in _children(me):
        if proc.pid not in before:
            tree.setdefault(proc.pid, proc)


def _reap_orphans(me: psutil.Process, before: set[int], grace: float) -> None:
    orphans: dict[int, psutil.Process] = {}
    _remember_orphans(me, before, orphans)
    _kill_tree(orphans, grace)


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


@contextlib.contextmanager
def _subreaper() -> Iterator[None]:
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        if prctl is not None:
            prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that asks for SIGTERM when crane dies. It only calls an already
    loaded C function between fork and exec (no Python-level locks, no imports)."""
    prctl = _prctl()
    if prctl is None:
        return None
    term = int(signal.SIGTERM)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)

    return arm


def _remember_descendants(child: psutil.Process, tree: dict[int, psutil.Process]) -> None:
    # Remember every descendant while the child is alive: once it is gone its orphans
    # are re-parented and can no longer be found from it.
    with contextlib.suppress(psutil.Error):
        for proc in child.children(recursive=True):
            tree.setdefault(proc.pid, proc)


def _alive(tree: dict[int, psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in list(tree.values()):  # a signal handler may add to `tree` meanwhile
        # is_running() also checks the creation time, so a reused pid is not ours.
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def _signal_all(tree: dict[int, psutil.Process], signum: int) -> None:
    for proc in _alive(tree):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signum)


def _kill_tree(tree: dict[int, psutil.Process], grace: float) -> None:
    """SIGTERM what is left of the tree, wait, then SIGKILL; reap what we can."""
    alive = _alive(tree)
    if not alive:
        return
    _signal_all(tree, signal.SIGTERM)
    _gone, alive = psutil.wait_procs(alive, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)


@contextlib.contextmanager
def _handlers(handler: signal.Handlers | object) -> Iterator[None]:
    wanted = [signal.SIGINT, signal.SIGTERM]
    if sys.platform != "win32":
        wanted.append(signal.SIGHUP)
    previous = {}
    for signum in wanted:
        previous[signum] = signal.signal(signum, handler)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
