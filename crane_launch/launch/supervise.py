"""Run the child tool and make sure nothing of it outlives crane (POSIX).

The child stays in the terminal's process group, so a Ctrl-C on the terminal reaches
it directly. While it runs, crane's own SIGINT handler does nothing at first (not
SIG_IGN, which the child would inherit); SIGTERM and SIGHUP are forwarded. If the
child has not finished some seconds after crane was signalled, crane escalates over
the whole process tree: SIGINT to the child (a SIGINT sent to crane alone), then
SIGTERM to every descendant, then SIGKILL.

Exit status: the child's own code; 128 + n for a child killed by signal n; and
128 + n when crane itself was stopped by signal n (what a shell reports for a
program killed by that signal).
"""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from types import FrameType

import psutil

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
    child = psutil.Popen(list(command), env=dict(env))
    tree: dict[int, psutil.Process] = {child.pid: child}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        # Look once more before the child can die of this signal: a descendant started
        # since the last poll would be orphaned, unknown, and outlive crane.
        _remember_descendants(child, tree)
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
