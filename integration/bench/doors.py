"""The `doors` section: the front doors of issue 15, each tool alone against under crane.

    .venv/bin/python -m integration.bench --quick --only doors

Each row times the whole command line, from start to exit, in alternating order:

- `uvx`: `uvx --default-index <direct> --from bench-top python -c pass` (uv resolves and
  installs bench-top's 60 wheels into a cached tool environment, then runs the command)
  against `crane --no-input uvx ...` with the same arguments (the index door);
- `crane run`: `uv pip install --target T --default-index <direct> bench-top` against
  `crane --no-input run -- uv pip install --target T bench-top` (the door reaches uv only
  as `UV_DEFAULT_INDEX`, from `crane run`'s environment).

Every run has a fresh `UV_CACHE_DIR`, and crane runs with `--no-cache` (its file cache
would serve the wheels of an earlier run). crane's index is `CRANE_INDEX_URL` = nginx's index
(`CRANE_AUTH=token`), and every crane run must fetch all 60 wheels from nginx with the
door's token (nginx logs those requests), or the run fails: a door that uv went around
would measure nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import index_site
import measure
from toolpath import project_tool

__all__ = ["bench_doors"]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class _Door:
    name: str
    direct: Callable[[str, Path], list[str]]
    crane: Callable[[str, Path], list[str]]


def _uvx(index_url: str, run_dir: Path) -> list[str]:
    del run_dir
    return ["--default-index", index_url, "--from", index_site.TOP, "python", "-c", "pass"]


DOORS = (
    _Door(
        "uvx --from bench-top",
        lambda url, run: [project_tool("uvx"), *_uvx(url, run)],
        lambda url, run: [
            project_tool("crane"), "--no-input", "--no-cache", "uvx", *_uvx(url, run),
        ],
    ),
    _Door(
        "crane run -- uv pip install",
        lambda url, run: [
            project_tool("uv"), "pip", "install", "--target", str(run / "t"),
            "--default-index", url, index_site.TOP,
        ],
        lambda url, run: [
            project_tool("crane"), "--no-input", "--no-cache", "run", "--",
            project_tool("uv"), "pip", "install", "--target", str(run / "t"), index_site.TOP,
        ],
    ),
)  # fmt: skip


LAST_STDERR = [""]


def _once(argv: list[str], env: dict[str, str], name: str) -> float:
    started = time.perf_counter()
    out = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    LAST_STDERR[0] = out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"doors: {name} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return elapsed


def bench_doors(
    nginx: index_site.Nginx,
    scratch: Path,
    *,
    repeats: int,
    wheels: int,
    budget_left: Callable[[], bool],
) -> list[measure.Row]:
    index_url = nginx.direct_url + "/simple/"
    rows = []
    for door in DOORS:
        direct: list[float] = []
        crane: list[float] = []

        def run(
            path: str,
            door: _Door = door,
            direct: list[float] = direct,
            crane: list[float] = crane,
        ) -> None:
            run_dir = Path(tempfile.mkdtemp(prefix="doors-", dir=scratch))
            try:
                extra = {"UV_CACHE_DIR": str(run_dir / "uv-cache"), "UV_PYTHON": sys.executable}
                if path == "direct":
                    env = measure.tool_env(scratch, extra)
                    direct.append(_once(door.direct(index_url, run_dir), env, door.name))
                    return
                extra |= {"CRANE_INDEX_URL": index_url, "CRANE_AUTH": "token", "CRANE_TOKEN": "x"}
                env = measure.tool_env(scratch, extra)
                before = nginx.credentialed_file_requests()
                crane.append(_once(door.crane(index_url, run_dir), env, door.name))
                files = nginx.credentialed_file_requests() - before
                if files < wheels:
                    raise RuntimeError(
                        f"doors: {door.name}: only {files} of {wheels} wheels reached nginx "
                        "with the door's token: the tool went around crane's door\n"
                        + LAST_STDERR[0][-2000:]
                    )
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)

        say(f"doors: {door.name}: warm-up (direct, not counted)")
        run("direct")
        direct.clear()
        for i in range(repeats):
            if not budget_left():
                say(f"doors: time budget used up after {i} repeats")
                break
            for path in ("direct", "crane") if i % 2 == 0 else ("crane", "direct"):
                run(path)
            last = f"direct {direct[-1]:.2f} s, crane {crane[-1]:.2f} s"
            say(f"doors: {door.name}: repeat {i + 1}: {last}")
        if direct and crane:
            rows.append(
                measure.Row(
                    f"{door.name}, {wheels} wheels",
                    "s",
                    measure.median(direct),
                    measure.median(crane),
                    note="the whole command line, fresh UV_CACHE_DIR each run (doors.py)",
                    samples={"direct": direct, "door": crane},
                )
            )
    return rows
