"""`run_supervised` with real processes: exit codes, signals, and nothing left behind.

Signal tests must not signal pytest itself, so there crane's supervisor runs in its own
`python -c` process (`SUPERVISOR`), and the test signals that process. The child it
supervises starts a grandchild that ignores SIGTERM; the grandchild writes both pids to a
file once its handlers are in place. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crane_launch.launch.supervise import run_supervised

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX supervision")

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[2]

# argv: pidfile, then flags: "ignore-int" / "ignore-term" (the child ignores SIGINT /
# SIGTERM), "exit" (the child exits 0 soon after the grandchild is ready, orphaning it).
CHILD = """
import os, signal, subprocess, sys, time
pidfile, flags = sys.argv[1], sys.argv[2:]
if "ignore-int" in flags:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
if "ignore-term" in flags:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", GRANDCHILD, pidfile])
while not os.path.exists(pidfile):
    time.sleep(0.01)
if "exit" in flags:
    time.sleep(0.3)  # long enough for the supervisor to poll and see the grandchild
    sys.exit(0)
time.sleep(60)
"""
GRANDCHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
pidfile = sys.argv[1]
with open(pidfile + ".tmp", "w") as handle:
    handle.write(f"{os.getppid()} {os.getpid()}")
os.replace(pidfile + ".tmp", pidfile)
time.sleep(60)
"""
CHILD_SOURCE = f"GRANDCHILD = {GRANDCHILD!r}\n{CHILD}"

SUPERVISOR = """
import os, sys
from crane_launch.launch.supervise import run_supervised
child = [sys.executable, "-c", sys.argv[1], *sys.argv[2:]]
sys.exit(run_supervised(child, os.environ, grace=0.3))
"""


def gone(proc: psutil.Process) -> bool:
    """Exited (a zombie counts: nothing reaps orphans in some containers)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [proc for proc in procs if not gone(proc)]
        if not alive:
            return []
        time.sleep(0.05)
    return [proc for proc in procs if not gone(proc)]


def read_tree(pidfile: Path, timeout: float = 10.0) -> list[psutil.Process]:
    """The child and grandchild, from the pid file; those already gone are left out."""
    deadline = time.monotonic() + timeout
    while not pidfile.exists():
        assert time.monotonic() < deadline, "the child tree did not start"
        time.sleep(0.02)
    tree = []
    for pid in pidfile.read_text().split():
        with contextlib.suppress(psutil.NoSuchProcess):
            tree.append(psutil.Process(int(pid)))
    return tree


@pytest.fixture
def tree_reaper() -> Iterator[list[psutil.Process]]:
    """Processes a test started; whatever is still alive afterwards is killed."""
    started: list[psutil.Process] = []
    yield started
    for proc in started:
        if not gone(proc):
            proc.kill()


def supervise(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[bytes], Path]:
    pidfile = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *sys.path]))}
    supervisor = subprocess.Popen(
        [PYTHON, "-c", SUPERVISOR, CHILD_SOURCE, str(pidfile), *flags],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return supervisor, pidfile


# -- in this process: no signal is sent to pytest ------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 42])
def test_the_childs_exit_code_is_passed_through(code: int) -> None:
    command = [PYTHON, "-c", f"import sys; sys.exit({code})"]
    assert run_supervised(command, os.environ) == code


def test_a_child_killed_by_a_signal_gives_128_plus_the_signal() -> None:
    command = [PYTHON, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    assert run_supervised(command, os.environ) == 128 + signal.SIGKILL == 137


def test_the_child_gets_the_environment_it_is_given() -> None:
    command = [PYTHON, "-c", "import os, sys; sys.exit(7 if os.environ['CRANE_T'] == 'x' else 1)"]
    assert run_supervised(command, {**os.environ, "CRANE_T": "x"}) == 7


def test_crane_signal_handlers_are_restored_afterwards() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    run_supervised([PYTHON, "-c", "pass"], os.environ)
    assert {s: signal.getsignal(s) for s in before} == before


def test_grandchildren_orphaned_by_a_child_that_exits_are_cleaned_up(
    tmp_path: Path, tree_reaper: list[psutil.Process]
) -> None:
    pidfile = tmp_path / "pids"
    command = [PYTHON, "-c", CHILD_SOURCE, str(pidfile), "exit"]

    started = time.monotonic()
    code = run_supervised(command, os.environ, grace=0.3)

    tree = read_tree(pidfile, timeout=0)
    tree_reaper.extend(tree)
    assert code == 0
    assert [proc for proc in tree if not gone(proc)] == [], "an orphan outlived the run"
    assert time.monotonic() - started < 5


# -- crane itself signalled: the supervisor runs in its own process ------------------------


@pytest.mark.parametrize(
    ("signum", "flags"),
    [
        (signal.SIGTERM, []),
        (signal.SIGHUP, []),
        (signal.SIGINT, ["ignore-int"]),
        (signal.SIGTERM, ["ignore-term"]),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGINT-ignored-by-child", "SIGTERM-ignored-by-child"],
)
def test_a_signalled_crane_exits_128_plus_n_and_takes_the_whole_tree_down(
    tmp_path: Path, tree_reaper: list[psutil.Process], signum: int, flags: list[str]
) -> None:
    supervisor, pidfile = supervise(tmp_path, *flags)
    tree_reaper.append(psutil.Process(supervisor.pid))
    try:
        tree = read_tree(pidfile)
        tree_reaper.extend(tree)

        supervisor.send_signal(signum)
        code = supervisor.wait(timeout=10)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(5)

    assert code == 128 + signum
    assert wait_until_gone(tree, timeout=3) == [], "part of the child tree outlived crane"


# -- descendants that escape the polling, and a crane that is killed outright ----------------

DAEMON = """
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:          # the classic daemon: fork, setsid, fork again, parent exits
    os.setsid()
    if os.fork() == 0:
        with open(pidfile + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
        time.sleep(60)
    os._exit(0)
while not os.path.exists(pidfile):  # the daemon is orphaned and known: now leave at once
    time.sleep(0.005)
os._exit(0)
"""


def test_a_double_forked_daemon_is_torn_down_with_the_run(
    tmp_path: Path, tree_reaper: list[psutil.Process]
) -> None:
    pidfile = tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), *sys.path]))}
    supervisor = subprocess.run(
        [PYTHON, "-c", SUPERVISOR, DAEMON, str(pidfile)], env=env, timeout=30, check=False
    )
    daemon = read_tree(pidfile)
    tree_reaper.extend(daemon)
    assert supervisor.returncode == 0
    assert wait_until_gone(daemon, timeout=5) == [], "the daemon outlived crane"


def test_a_child_does_not_outlive_a_crane_killed_outright(
    tmp_path: Path, tree_reaper: list[psutil.Process]
) -> None:
    # SIGKILL gives crane no chance to tear down: the kernel's parent-death signal must.
    supervisor, pidfile = supervise(tmp_path)
    tree = read_tree(pidfile)
    tree_reaper.extend(tree)
    child = tree[0]
    supervisor.kill()
    supervisor.wait(10)
    assert wait_until_gone([child], timeout=5) == [], "the child outlived a killed crane"


def test_a_tool_that_cannot_be_started_is_a_config_error(tmp_path: Path) -> None:
    from crane_launch.errors import ConfigError
    from crane_launch.launch.supervise import run_supervised

    script = tmp_path / "uv"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(ConfigError, match="cannot be started"):
        run_supervised([str(script), "--version"], {"PATH": "/usr/bin:/bin"})
