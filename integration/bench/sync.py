"""The `sync` section: `uv sync --frozen` of a locked project, alone and under crane.

    .venv/bin/python -m integration.bench --quick --only sync

A uv project (`bench-app`, virtual: no build system) depends on `bench-top`, and its one
index, `private` (`default = true`), is the benchmark's nginx (`<direct>/simple/`). Its
`uv.lock` is written once, by uv alone against nginx, and records that URL (the project
pages are open; only the index root asks for credentials, and uv never reads it). Then
each repeat, in alternating order, runs

- `direct`: `uv sync --frozen` (uv alone, straight to nginx);
- `crane door`: `crane --no-input uv sync --frozen` (the real CLI from the project's venv,
  with `CRANE_INDEX_URL` = the lock's index URL, `CRANE_AUTH=token`, `CRANE_TOKEN=x`): a
  uv project keeps its lock's URLs, so crane runs uv through its transparent door (a
  forward proxy in HTTP(S)_PROXY that adds the credentials), in crane's own process;

each with a fresh `UV_CACHE_DIR` and a fresh project environment (`UV_PROJECT_ENVIRONMENT`),
the interpreter running the benchmark, and the clean environment of `measure.tool_env`
except UV_NO_CONFIG (uv's `--no-config` would drop the project's own index too; the
user's uv.toml stays out through XDG_CONFIG_HOME). Every wheel the crane path installs
must reach nginx with the door's token (nginx logs those requests), or the run fails: a
door that uv went around would measure nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import index_site
import measure
import psutil
from toolpath import project_tool

__all__ = ["bench_sync"]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


PYPROJECT = """\
[project]
name = "bench-app"
version = "0"
requires-python = ">=3.8"
dependencies = ["{top}"]

[[tool.uv.index]]
name = "private"
url = "{url}"
default = true
"""


def write_project(directory: Path, index_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(
        PYPROJECT.format(top=index_site.TOP, url=index_url), encoding="utf-8"
    )
    return directory


def _uv_env(scratch: Path, run_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """`measure.tool_env` without UV_NO_CONFIG: uv's `--no-config` also ignores the
    project's own `[[tool.uv.index]]`. The user's uv.toml stays out all the same
    (XDG_CONFIG_HOME is inside `scratch`), and the project sits in a temporary directory."""
    env = measure.tool_env(
        scratch,
        {
            "UV_CACHE_DIR": str(run_dir / "uv-cache"),
            "UV_PROJECT_ENVIRONMENT": str(run_dir / "venv"),
            "UV_PYTHON": sys.executable,
            **(extra or {}),
        },
    )
    env.pop("UV_NO_CONFIG", None)
    return env


def lock(project: Path, index_url: str, scratch: Path) -> None:
    """`uv lock` by uv alone against nginx; check the lock records the index URL."""
    run_dir = Path(tempfile.mkdtemp(prefix="sync-lock-", dir=scratch))
    try:
        out = subprocess.run(
            [project_tool("uv"), "lock"],
            cwd=project,
            env=_uv_env(scratch, run_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"sync: uv lock failed ({out.returncode}):\n{out.stderr[-3000:]}")
    text = (project / "uv.lock").read_text(encoding="utf-8")
    if f'registry = "{index_url}"' not in text:
        raise RuntimeError(f"sync: uv.lock does not record the index {index_url}")


@dataclass
class SyncRun:
    seconds: float
    crane_cpu: float
    """User + system CPU of the crane process itself (door included, uv excluded);
    sampled every 20 ms while it runs, so slightly under. 0 for the direct path."""


def _cpu_watch(pid: int, stop: threading.Event, last: list[float]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():  # bounded: the caller sets `stop` when the process exits
        try:
            times = proc.cpu_times()
        except psutil.Error:
            return
        last[0] = float(times.user + times.system)
        stop.wait(0.02)


@dataclass
class _Sync:
    project: Path
    index_url: str
    scratch: Path
    wheels: int

    def argv(self, path: str) -> list[str]:
        if path == "direct":
            return [project_tool("uv"), "sync", "--frozen"]
        # The crane CLI runs `uv` from PATH: the project's bin directory first.
        return [project_tool("crane"), "--no-input", "uv", "sync", "--frozen"]

    def once(self, path: str) -> SyncRun:
        run_dir = Path(tempfile.mkdtemp(prefix=f"sync-{path}-", dir=self.scratch))
        try:
            extra = {}
            if path != "direct":
                extra = {
                    "CRANE_INDEX_URL": self.index_url,
                    "CRANE_AUTH": "token",
                    "CRANE_TOKEN": "x",
                }
            env = _uv_env(self.scratch, run_dir, extra)
            last = [0.0]
            stop = threading.Event()
            started = time.perf_counter()
            proc = subprocess.Popen(
                self.argv(path),
                cwd=self.project,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            watcher = None
            if path != "direct":
                watcher = threading.Thread(
                    target=_cpu_watch, args=(proc.pid, stop, last), daemon=True
                )
                watcher.start()
            try:
                stdout, stderr = proc.communicate(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join(5)
            elapsed = time.perf_counter() - started
            if proc.returncode != 0:
                raise RuntimeError(
                    f"sync: {' '.join(self.argv(path)[-5:])} failed ({proc.returncode}):\n"
                    f"{(stdout + stderr)[-3000:]}"
                )
            installed = len(list((run_dir / "venv").glob("lib/python*/site-packages/*.dist-info")))
            if installed != self.wheels:
                raise RuntimeError(f"sync: {path} installed {installed}, not {self.wheels}")
            return SyncRun(elapsed, last[0])
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)


def bench_sync(
    nginx: index_site.Nginx,
    scratch: Path,
    *,
    repeats: int,
    wheels: int,
    budget_left: Callable[[], bool],
) -> list[measure.Row]:
    index_url = nginx.direct_url + "/simple/"
    project = write_project(scratch / "sync-project", index_url)
    say("sync: uv lock (uv alone, against nginx)")
    lock(project, index_url, scratch)
    bench = _Sync(project, index_url, scratch, wheels)
    say("sync: warm-up (direct, not counted)")
    bench.once("direct")
    direct: list[float] = []
    door: list[float] = []
    cpu: list[float] = []
    through_door: list[float] = []
    for i in range(repeats):
        if not budget_left():
            say(f"sync: time budget used up after {i} repeats")
            break

        def run_direct() -> None:
            direct.append(bench.once("direct").seconds)

        def run_crane() -> None:
            before = nginx.credentialed_file_requests()
            result = bench.once("crane")
            files = nginx.credentialed_file_requests() - before
            if files < wheels:
                raise RuntimeError(
                    f"sync: only {files} of {wheels} wheels reached nginx with the door's "
                    "token: uv went around crane's door"
                )
            door.append(result.seconds)
            cpu.append(result.crane_cpu)
            through_door.append(float(files))

        for step in (run_direct, run_crane) if i % 2 == 0 else (run_crane, run_direct):
            step()
        say(f"sync: repeat {i + 1}: direct {direct[-1]:.2f} s, crane {door[-1]:.2f} s")
    return [
        measure.Row(
            f"crane uv sync --frozen {wheels} wheels",
            "s",
            measure.median(direct),
            measure.median(door),
            note=(
                "fresh UV_CACHE_DIR and project environment each run; direct = `uv sync "
                "--frozen` straight to nginx; door = `crane uv sync --frozen` (the CLI: "
                "probe, transparent door as uv's HTTP proxy, in crane's process). The crane "
                f"process used median {measure.median(cpu):.2f} s of CPU (user + system, uv "
                f"excluded) per run; {measure.median(through_door):.0f} wheel requests per "
                "run reached nginx with the door's token"
            ),
            samples={"direct": direct, "door": door, "crane_cpu": cpu, "door_files": through_door},
        )
    ]
