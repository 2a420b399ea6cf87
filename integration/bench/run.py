"""crane's benchmarks: the index door against the direct path, in the same run.

    .venv/bin/python integration/bench/run.py [--quick] [--repeats N] [--only pip,uv,...]
    .venv/bin/python -m integration.bench [...]            (what `task bench` runs)

Everything is loopback: a static PEP 503 index served by our own nginx (a real listen
backlog, sendfile), and crane's index door (`open_index_door`, credential probe included)
in front of it with a fake token source, run in a process of its own (`door_proc.py`) as
`crane pip` runs it. Every number is a median over N repeats, and every comparison a
ratio against the direct path measured in the same run, alternating the order of the
paths from one repeat to the next: the machine is shared and noisy, so absolute numbers
mean little from one run to the next. Nothing here asserts a timing.

Sections (see README.md in this directory for what each number means):

- pip:        `pip install --target T --no-cache-dir bench-top` (60 wheels)
- uv:         `uv pip install --target T bench-top`, fresh cache, default concurrency
- sync:       `uv sync --frozen` of a locked project against `crane uv sync --frozen`
              (the transparent door; `sync.py`)
- doors:      `uvx --from bench-top python -c pass` and `uv pip install` alone against
              `crane uvx ...` and `crane run -- uv pip install ...` (`doors.py`)
- throughput: one large file with curl, direct / through the door's `/files/` route /
              through nginx's own `proxy_pass` (reference); plus the door's RSS growth
- concurrent: 64 downloads of a 16 MiB file at once (curl's parallel mode), aggregate MB/s
- https:      the large file and a project page from an HTTPS upstream (a test CA made at
              run time), direct over TLS / through a door whose private index is https://
- latency:    sequential keep-alive GETs of a small project page
- startup:    `open_index_door` entry -> door open -> first 200, in this process; the
              cost of a fresh interpreter importing crane; `crane pip --version` against
              `pip --version` and `crane --version` against `python -c pass`
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE.parent):  # the benchmark helpers, and the integration `stack`
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import door_proc  # noqa: E402
import doors  # noqa: E402
import index_site  # noqa: E402
import measure  # noqa: E402
import repeat  # noqa: E402
import sync  # noqa: E402
import tlsca  # noqa: E402
from stack import servers  # noqa: E402
from toolpath import project_tool  # noqa: E402

SECTIONS = (
    "pip",
    "uv",
    "sync",
    "doors",
    "throughput",
    "concurrent",
    "https",
    "latency",
    "startup",
    "guard",
    "repeat",
)
_MIB = 1024 * 1024
CONCURRENT_DOWNLOADS = 64
CONCURRENT_MIB = 16
CLI_REPEATS_MIN = 10
"""`crane pip --version` and friends: ~0.1 s each, so at least this many even in --quick."""


@dataclass
class Settings:
    repeats: int
    wheels: int
    big_mib: int
    requests: int
    latency_rounds: int
    startup_repeats: int
    sections: tuple[str, ...]
    sparse: bool
    profile_dir: Path | None
    max_minutes: float
    json_path: Path | None


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a 128 MiB file")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 5, quick 3)")
    parser.add_argument("--wheels", type=int, default=60, help="wheels to install (default 60)")
    parser.add_argument("--size-mib", type=int, help="large file size (default 512, quick 128)")
    parser.add_argument("--requests", type=int, default=500, help="keep-alive GETs per round")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument("--sparse", action="store_true", help="a sparse large file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the door's event-loop thread; write .prof files into this directory "
        "and print the top functions (timings are inflated while profiling)",
    )
    parser.add_argument("--max-minutes", type=float, default=45.0, help="overall time budget")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.only.split(",")) if args.only else SECTIONS
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    repeats = args.repeats or (3 if args.quick else 5)
    return Settings(
        repeats=max(1, repeats),
        wheels=max(2, args.wheels),
        big_mib=args.size_mib or (128 if args.quick else 512),
        requests=max(1, args.requests),
        latency_rounds=1 if args.quick else 3,
        startup_repeats=5 if args.quick else 10,
        sections=sections,
        sparse=args.sparse,
        profile_dir=args.profile,
        max_minutes=args.max_minutes,
        json_path=args.json,
    )


class Budget:
    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + minutes * 60

    def left(self) -> bool:
        return time.monotonic() < self.deadline


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the door in its own process --------------------------------------------------------------


@dataclass
class DoorInfo:
    index_url: str
    files_url: str
    proxy_url: str
    open_ms: float
    pid: int

    @property
    def proxy_authorization(self) -> str:
        """The guard's `Proxy-Authorization` header value (the URL's user and password)."""
        userinfo = self.proxy_url.split("//", 1)[1].rsplit("@", 1)[0]
        return "Basic " + base64.b64encode(userinfo.encode()).decode()

    @property
    def port(self) -> int:
        return int(self.index_url.split(":")[2].split("/")[0])

    @property
    def prefix(self) -> str:
        """`/<token>` (the path in front of `/simple/` and `/files/`)."""
        return "/" + self.index_url.split("/")[3]


@contextlib.contextmanager
def door_process(
    upstream: str, env: dict[str, str], profile: Path | None = None, cache: Path | None = None
) -> Iterator[DoorInfo]:
    argv = [sys.executable, str(HERE / "door_proc.py"), upstream]
    if profile is not None:
        argv += ["--profile", str(profile)]
    if cache is not None:
        argv += ["--cache", str(cache)]
    proc = servers.ManagedProcess("crane-door", argv, env=env, stdin_pipe=True)
    try:
        line = proc.wait_for_line(lambda text: text.startswith("READY "), timeout=30)
        if line is None:
            raise RuntimeError(f"the door did not start:\n{proc.output(last=30)}")
        yield DoorInfo(**json.loads(line.removeprefix("READY ")))
    finally:
        if proc.popen.stdin is not None:
            with contextlib.suppress(OSError):
                proc.popen.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(15)
        proc.stop()


def _profile_path(settings: Settings, name: str, index: int) -> Path | None:
    if settings.profile_dir is None or index != 0:
        return None
    settings.profile_dir.mkdir(parents=True, exist_ok=True)
    return settings.profile_dir / f"{name}.prof"


# -- 1. pip / uv install ---------------------------------------------------------------------


def _install_argv(tool: str, index_url: str, target: Path) -> list[str]:
    if tool == "pip":
        return [
            sys.executable,
            *("-m", "pip", "install", "-q", "--no-cache-dir"),
            *("--target", str(target), "--index-url", index_url, index_site.TOP),
        ]
    uv = project_tool("uv")
    return [
        uv,
        *("pip", "install", "-q", "--no-config", "--python", sys.executable),
        *("--target", str(target), "--index-url", index_url, index_site.TOP),
    ]


def _install_once(tool: str, index_url: str, scratch: Path, expected: int) -> float:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch))
    try:
        target = run_dir / "target"
        env = measure.tool_env(scratch, {"UV_CACHE_DIR": str(run_dir / "uv-cache")})
        started = time.perf_counter()
        out = subprocess.run(
            _install_argv(tool, index_url, target),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"{tool} install failed ({out.returncode}):\n{out.stderr[-3000:]}")
        installed = len(list(target.glob("*.dist-info")))
        if installed != expected:
            raise RuntimeError(f"{tool} installed {installed} distributions, not {expected}")
        return elapsed
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def bench_install(
    tool: str, settings: Settings, nginx: index_site.Nginx, scratch: Path, budget: Budget
) -> measure.Row:
    upstream = nginx.direct_url + "/simple/"
    env = measure.tool_env(scratch)
    say(f"{tool}: warm-up (direct, not counted)")
    _install_once(tool, upstream, scratch, settings.wheels)
    direct: list[float] = []
    door: list[float] = []
    door_cpu: list[float] = []
    for i in range(settings.repeats):
        if not budget.left():
            say(f"{tool}: time budget used up after {i} repeats")
            break

        def run_direct() -> None:
            direct.append(_install_once(tool, upstream, scratch, settings.wheels))

        def run_door(index: int = i) -> None:
            # A fresh door per install, as every `crane pip` run opens its own.
            with door_process(upstream, env, _profile_path(settings, tool, index)) as info:
                cpu_before = measure.cpu_seconds(info.pid)
                door.append(_install_once(tool, info.index_url, scratch, settings.wheels))
                door_cpu.append(measure.cpu_seconds(info.pid) - cpu_before)

        _alternate(i, run_direct, run_door)
        say(f"{tool}: repeat {i + 1}: direct {direct[-1]:.2f} s, door {door[-1]:.2f} s")
    return measure.Row(
        f"{tool} install {settings.wheels} wheels",
        "s",
        measure.median(direct),
        measure.median(door),
        note=(
            f"the door process used median {measure.median(door_cpu):.2f} s of CPU "
            "(user + system) per install"
        ),
        samples={"direct": direct, "door": door, "door_cpu": door_cpu},
    )


def _alternate(i: int, first: Callable[[], None], second: Callable[[], None]) -> None:
    for step in (first, second) if i % 2 == 0 else (second, first):
        step()


# -- 2. one large file -------------------------------------------------------------------------


def bench_throughput(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
) -> list[measure.Row]:
    env = measure.tool_env(scratch)
    upstream = nginx.direct_url + "/simple/"
    speeds: dict[str, list[float]] = {"direct": [], "door": [], "proxy": []}
    growth: list[float] = []
    cpu_per_gib: list[float] = []
    with door_process(upstream, env, _profile_path(settings, "throughput", 0)) as info:
        urls = {
            "direct": nginx.direct_url + site.big_path,
            "door": info.files_url + site.big_path,
            "proxy": nginx.proxy_url + site.big_path,
        }
        baseline_rss = measure.RssSampler(info.pid).before
        for name, url in urls.items():  # warm-up: page cache, connections
            _check_download(measure.curl_download(url, env), site.big_bytes, name)
        for i in range(settings.repeats):
            if not budget.left():
                say(f"throughput: time budget used up after {i} repeats")
                break
            names = list(urls)
            names = names[i % 3 :] + names[: i % 3]
            for name in names:
                if name == "door":
                    cpu_before = measure.cpu_seconds(info.pid)
                    with measure.RssSampler(info.pid) as rss:
                        result = measure.curl_download(urls[name], env)
                    growth.append(rss.growth / _MIB)
                    cpu_per_gib.append(
                        (measure.cpu_seconds(info.pid) - cpu_before) * (1 << 30) / site.big_bytes
                    )
                else:
                    result = measure.curl_download(urls[name], env)
                _check_download(result, site.big_bytes, name)
                speeds[name].append(result.mb_per_s)
            say(
                f"throughput: repeat {i + 1}: "
                + ", ".join(f"{n} {speeds[n][-1]:.0f} MB/s" for n in urls)
            )
    cached, fill = _cached_throughput(
        settings, upstream, nginx.direct_url + site.big_path, site, env
    )
    size = f"{site.big_bytes / _MIB:.0f} MiB"
    return [
        measure.Row(
            f"large file {size}, door from crane's cache",
            "MB/s",
            measure.median(speeds["direct"]),
            measure.median(cached),
            measure.median(speeds["door"]),
            lower_is_better=False,
            note=(
                "the door with its file cache warm (the file has no page hash: nginx's ETag "
                "and a 304 per download, then the bytes from disk); third column: the same "
                "door path without a cache (from nginx), not nginx's proxy. The first "
                f"download, which fills the cache (teed: hashed and written as it streams, "
                f"as every crane run with its cache on does), ran at {fill:.0f} MB/s"
            ),
            samples={"cached": cached, "cache_fill": [fill]},
        ),
        measure.Row(
            f"large file {size}",
            "MB/s",
            measure.median(speeds["direct"]),
            measure.median(speeds["door"]),
            measure.median(speeds["proxy"]),
            lower_is_better=False,
            note=(
                "curl to /dev/null; door = /<token>/files/ route; ratios below 1 are slower. "
                f"Door RSS {baseline_rss / _MIB:.0f} MiB before the transfers, peak growth "
                f"during one transfer: median {measure.median(growth):.1f} MiB, "
                f"max {max(growth, default=float('nan')):.1f} MiB; door CPU (user + system) "
                f"median {measure.median(cpu_per_gib):.2f} s per GiB"
            ),
            samples={**speeds, "door_rss_growth_mib": growth, "door_cpu_s_per_gib": cpu_per_gib},
        ),
    ]


def _cached_throughput(
    settings: Settings, upstream: str, direct_url: str, site: index_site.Site, env: dict[str, str]
) -> tuple[list[float], float]:
    """The large file through a door whose file cache holds it, and the speed of the
    first download, which filled it."""
    speeds: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="crane-bench-cache-") as cache,
        door_process(upstream, env, cache=Path(cache)) as info,
    ):
        url = info.files_url + site.big_path
        filled = measure.curl_download(url, env)
        _check_download(filled, site.big_bytes, "cache fill")
        for i in range(settings.repeats):
            result = measure.curl_download(url, env)
            _check_download(result, site.big_bytes, "door from its cache")
            speeds.append(result.mb_per_s)
            say(f"throughput: repeat {i + 1}: door from its cache {speeds[-1]:.0f} MB/s")
    return speeds, filled.mb_per_s


def _check_download(result: measure.Download, size: int, name: str) -> None:
    if result.status != 200 or result.size != size:
        raise RuntimeError(f"{name}: HTTP {result.status}, {result.size} of {size} bytes")


# -- 2b. many downloads at once -----------------------------------------------------------------


def bench_concurrent(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
) -> list[measure.Row]:
    """`CONCURRENT_DOWNLOADS` downloads of the medium file at once, by one curl in
    parallel mode: direct / the door's `/files/` route / nginx's proxy_pass (reference)."""
    env = measure.tool_env(scratch)
    upstream = nginx.direct_url + "/simple/"
    count, size = CONCURRENT_DOWNLOADS, site.medium_bytes
    speeds: dict[str, list[float]] = {"direct": [], "door": [], "proxy": []}
    errors: dict[str, list[float]] = {name: [] for name in speeds}
    """Per batch: transfers that did not end in a 200 of the file's size."""
    growth: list[float] = []
    cpu_per_gib: list[float] = []
    with door_process(upstream, env, _profile_path(settings, "concurrent", 0)) as info:
        urls = {
            "direct": nginx.direct_url + site.medium_path,
            "door": info.files_url + site.medium_path,
            "proxy": nginx.proxy_url + site.medium_path,
        }
        baseline_rss = measure.RssSampler(info.pid).before
        for name, url in urls.items():  # warm-up: page cache, the door's first connection
            _check_download(measure.curl_download(url, env), size, name)
        for i in range(settings.repeats):
            if not budget.left():
                say(f"concurrent: time budget used up after {i} repeats")
                break
            names = list(urls)
            for name in names[i % 3 :] + names[: i % 3]:
                if name == "door":
                    cpu_before = measure.cpu_seconds(info.pid)
                    with measure.RssSampler(info.pid) as rss:
                        result = measure.curl_parallel(urls[name], count, size, env)
                    growth.append(rss.growth / _MIB)
                    cpu_per_gib.append(
                        (measure.cpu_seconds(info.pid) - cpu_before) * (1 << 30) / (count * size)
                    )
                else:
                    result = measure.curl_parallel(urls[name], count, size, env)
                speeds[name].append(result.mb_per_s)
                errors[name].append(float(result.errors))
            say(
                f"concurrent: repeat {i + 1}: "
                + ", ".join(f"{n} {speeds[n][-1]:.0f} MB/s" for n in urls)
                + f"; errors: door {errors['door'][-1]:.0f}, direct {errors['direct'][-1]:.0f}"
            )
    runs = len(speeds["door"])
    failed = {name: f"{sum(counts):.0f}" for name, counts in errors.items()}
    return [
        measure.Row(
            f"{count} concurrent {size / _MIB:.0f} MiB downloads",
            "MB/s",
            measure.median(speeds["direct"]),
            measure.median(speeds["door"]),
            measure.median(speeds["proxy"]),
            lower_is_better=False,
            note=(
                f"one curl -Z, {count} transfers at once, each to /dev/null; aggregate bytes "
                f"over wall time. Errors (not a 200 of {size} bytes) over {runs} x {count} "
                f"transfers: direct {failed['direct']}, door {failed['door']}, nginx proxy "
                f"{failed['proxy']}. Door RSS {baseline_rss / _MIB:.0f} MiB before, peak "
                f"growth during one batch: median {measure.median(growth):.1f} MiB, max "
                f"{max(growth, default=float('nan')):.1f} MiB; door CPU (user + system) "
                f"median {measure.median(cpu_per_gib):.2f} s per GiB"
            ),
            samples={
                **speeds,
                **{f"errors_{name}": counts for name, counts in errors.items()},
                "door_rss_growth_mib": growth,
                "door_cpu_s_per_gib": cpu_per_gib,
            },
        )
    ]


# -- 2c. an HTTPS upstream -------------------------------------------------------------------------


def bench_https(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
    *,
    ca: tlsca.BenchCa,
) -> list[measure.Row]:
    """The large file and a project page from nginx's HTTPS server block: directly (curl
    with `--cacert`, Python's client with a context trusting the test CA) and through a
    door (plain HTTP to the door) whose private index is the https:// URL. The door trusts
    the test CA through `SSL_CERT_FILE` in its environment."""
    env = measure.tool_env(scratch, {"SSL_CERT_FILE": str(ca.ca)})
    upstream = nginx.https_url + "/simple/"
    page = f"/simple/{site.page_project}/"
    speeds: dict[str, list[float]] = {"direct": [], "door": []}
    series: dict[str, list[float]] = {"direct": [], "door": []}
    growth: list[float] = []
    cpu_per_gib: list[float] = []
    with door_process(upstream, env, _profile_path(settings, "https", 0)) as info:
        urls = {"direct": nginx.https_url + site.big_path, "door": info.files_url + site.big_path}
        for name, url in urls.items():  # warm-up
            _check_download(measure.curl_download(url, env, cacert=ca.ca), site.big_bytes, name)
        for i in range(settings.repeats):
            if not budget.left():
                say(f"https: time budget used up after {i} repeats")
                break

            def run_direct() -> None:
                result = measure.curl_download(urls["direct"], env, cacert=ca.ca)
                _check_download(result, site.big_bytes, "direct (https)")
                speeds["direct"].append(result.mb_per_s)

            def run_door() -> None:
                cpu_before = measure.cpu_seconds(info.pid)
                with measure.RssSampler(info.pid) as rss:
                    result = measure.curl_download(urls["door"], env)
                _check_download(result, site.big_bytes, "door (https upstream)")
                speeds["door"].append(result.mb_per_s)
                growth.append(rss.growth / _MIB)
                cpu_per_gib.append(
                    (measure.cpu_seconds(info.pid) - cpu_before) * (1 << 30) / site.big_bytes
                )

            _alternate(i, run_direct, run_door)
            say(
                f"https: repeat {i + 1}: direct {speeds['direct'][-1]:.0f} MB/s, "
                f"door {speeds['door'][-1]:.0f} MB/s"
            )
        context = ca.client_context()
        for i in range(settings.latency_rounds):
            if not budget.left():
                say(f"https: time budget used up after {i} latency rounds")
                break

            def gets_direct() -> None:
                series["direct"] += measure.keepalive_gets(
                    nginx.tls_port, page, settings.requests, tls=context
                ).samples_ms

            def gets_door() -> None:
                series["door"] += measure.keepalive_gets(
                    info.port, info.prefix + page, settings.requests
                ).samples_ms

            _alternate(i, gets_direct, gets_door)
            say(
                f"https: round {i + 1}: page direct {measure.median(series['direct']):.3f} ms, "
                f"door {measure.median(series['door']):.3f} ms"
            )
    size = f"{site.big_bytes / _MIB:.0f} MiB"
    return [
        measure.Row(
            f"large file {size}, HTTPS upstream",
            "MB/s",
            measure.median(speeds["direct"]),
            measure.median(speeds["door"]),
            lower_is_better=False,
            note=(
                "nginx over TLS (test CA made at run time); direct = curl https:// with "
                "--cacert; door = curl http:// to a door whose private index is the https:// "
                "URL (SSL_CERT_FILE = the test CA). Door peak RSS growth during one transfer: "
                f"median {measure.median(growth):.1f} MiB; door CPU (user + system) median "
                f"{measure.median(cpu_per_gib):.2f} s per GiB"
            ),
            samples={**speeds, "door_rss_growth_mib": growth, "door_cpu_s_per_gib": cpu_per_gib},
        ),
        measure.Row(
            "project page GET, median, HTTPS upstream",
            "ms",
            measure.median(series["direct"]),
            measure.median(series["door"]),
            note=(
                f"{settings.requests} sequential GETs x {settings.latency_rounds} round(s) on "
                "one keep-alive connection; direct = HTTPS to nginx (one handshake); door = "
                "HTTP to the door, which fetches the page from nginx over HTTPS"
            ),
            samples=series,
        ),
    ]


# -- 3. per-request latency --------------------------------------------------------------------


def bench_latency(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
) -> list[measure.Row]:
    env = measure.tool_env(scratch)
    upstream = nginx.direct_url + "/simple/"
    page = f"/simple/{site.page_project}/"
    series: dict[str, list[float]] = {"direct": [], "door": [], "proxy": []}
    reconnects = 0
    with door_process(upstream, env, _profile_path(settings, "latency", 0)) as info:
        targets = {
            "direct": (nginx.port, page),
            "door": (info.port, info.prefix + page),
            "proxy": (nginx.proxy_port, page),
        }
        for i in range(settings.latency_rounds):
            if not budget.left():
                say(f"latency: time budget used up after {i} rounds")
                break
            names = list(targets)
            names = names[i % 3 :] + names[: i % 3]
            for name in names:
                port, path = targets[name]
                got = measure.keepalive_gets(port, path, settings.requests)
                series[name] += got.samples_ms
                if name == "door":
                    reconnects += got.reconnects
            say(
                f"latency: round {i + 1}: "
                + ", ".join(f"{n} {measure.median(series[n]):.3f} ms" for n in targets)
            )
    note = (
        f"{settings.requests} sequential GETs x {settings.latency_rounds} round(s) on one "
        f"keep-alive connection, pip's Accept header; the door rewrites the page"
    )
    if reconnects:
        note += f"; the door closed the connection {reconnects} time(s)"
    return [
        measure.Row(
            "project page GET, median",
            "ms",
            measure.median(series["direct"]),
            measure.median(series["door"]),
            measure.median(series["proxy"]),
            note=note,
            samples=series,
        ),
        measure.Row(
            "project page GET, p95",
            "ms",
            measure.p95(series["direct"]),
            measure.p95(series["door"]),
            measure.p95(series["proxy"]),
        ),
    ]


# -- 4. the guard ---------------------------------------------------------------------------------


def bench_guard(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
) -> list[measure.Row]:
    """What the guard costs a request to a host that is not the private index: nginx's
    proxy_pass server block stands for that host (another origin than the private index),
    reached directly and through the guard (absolute-form requests, as pip and uv send
    through HTTP_PROXY for http:// URLs)."""
    env = measure.tool_env(scratch)
    upstream = nginx.direct_url + "/simple/"
    public = nginx.proxy_url
    page, big = "/simple/", public + site.big_path
    speeds: dict[str, list[float]] = {"direct": [], "guard": []}
    series: dict[str, list[float]] = {"direct": [], "guard": []}
    with door_process(upstream, env, _profile_path(settings, "guard", 0)) as info:
        auth = info.proxy_authorization
        guard_url = info.proxy_url
        for i in range(settings.repeats):
            if not budget.left():
                say(f"guard: time budget used up after {i} repeats")
                break
            if site.big_bytes:
                for name, proxy in (("direct", None), ("guard", guard_url)):
                    result = measure.curl_download(big, env, proxy=proxy)
                    _check_download(result, site.big_bytes, name)
                    speeds[name].append(result.mb_per_s)
            series["direct"] += measure.keepalive_gets(
                nginx.proxy_port, page, settings.requests
            ).samples_ms
            series["guard"] += measure.keepalive_gets(
                info.port, public + page, settings.requests, proxy_authorization=auth
            ).samples_ms
            say(
                f"guard: repeat {i + 1}: page {measure.median(series['direct']):.3f} ms direct, "
                f"{measure.median(series['guard']):.3f} ms through the guard"
            )
    rows = [
        measure.Row(
            "public page GET through the guard, median",
            "ms",
            measure.median(series["direct"]),
            measure.median(series["guard"]),
            note="keep-alive GETs of an index root on another origin than the private index",
            samples=series,
        )
    ]
    if speeds["direct"]:
        rows.append(
            measure.Row(
                f"public file {site.big_bytes / _MIB:.0f} MiB through the guard",
                "MB/s",
                measure.median(speeds["direct"]),
                measure.median(speeds["guard"]),
                lower_is_better=False,
                note="curl --proxy; the guard forwards a name it does not judge",
                samples=speeds,
            )
        )
    return rows


# -- 5. start-up ---------------------------------------------------------------------------------


def bench_startup(
    settings: Settings,
    nginx: index_site.Nginx,
    site: index_site.Site,
    scratch: Path,
    budget: Budget,
) -> list[measure.Row]:
    from crane_launch.launch.doors import open_index_door

    upstream = nginx.direct_url + "/simple/"
    index = door_proc.bench_index(upstream)
    page = f"/simple/{site.page_project}/"
    opened: list[float] = []
    first: list[float] = []
    closed: list[float] = []
    direct_first: list[float] = []
    for i in range(settings.startup_repeats):
        if not budget.left():
            break
        started = time.perf_counter()
        with open_index_door(index, upstream, door_proc.FakeTokens()) as door:
            at_open = time.perf_counter()
            prefix = "/" + door.index_url.split("/")[3]
            status, _ms = measure.fresh_get_ms(door.port, prefix + page)
            at_first = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"start-up: the door answered {status}")
        at_closed = time.perf_counter()
        status, ms = measure.fresh_get_ms(nginx.port, page)
        if status != 200:
            raise RuntimeError(f"start-up: nginx answered {status}")
        direct_first.append(ms)
        opened.append((at_open - started) * 1000)
        first.append((at_first - started) * 1000)
        closed.append((at_closed - at_first) * 1000)
        if i == 0:
            say(f"startup: open {opened[-1]:.1f} ms, first 200 {first[-1]:.1f} ms")

    env = measure.tool_env(scratch)
    bare: list[float] = []
    imported: list[float] = []
    for _ in range(settings.startup_repeats):
        if not budget.left():
            break
        bare.append(_wall_ms([sys.executable, "-c", "pass"], env))
        imported.append(_wall_ms([sys.executable, "-c", "import crane_launch.launch.run"], env))
    cli = _cli_startup(settings, upstream, scratch, budget)
    n = len(first)
    return [
        measure.Row(
            "door start-up: entry -> first 200",
            "ms",
            measure.median(direct_first),
            measure.median(first),
            note=(
                f"in-process, {n} repeats; direct = one GET on a new connection to nginx; "
                f"door = open_index_door entry (thread, bind, credential probe) to the first "
                f"200 of a project page on a new connection. Of that, open (probe included): "
                f"median {measure.median(opened):.1f} ms; closing the door: "
                f"median {measure.median(closed):.1f} ms"
            ),
            compare=False,
            samples={"direct": direct_first, "door": first, "open": opened, "close": closed},
        ),
        measure.Row(
            "fresh interpreter: import crane_launch",
            "ms",
            measure.median(bare),
            measure.median(imported),
            note="direct = `python -c pass`; door = `python -c 'import crane_launch.launch.run'`",
            compare=False,
            samples={"direct": bare, "door": imported},
        ),
        *cli,
    ]


def _cli_startup(
    settings: Settings, upstream: str, scratch: Path, budget: Budget
) -> list[measure.Row]:
    """`crane pip --version` against `pip --version`, and `crane --version` against
    `python -c pass`: fresh processes from the project's bin directory, a clean
    environment (the project's bin directory first on PATH) with crane's index set by
    CRANE_INDEX_URL as a user's would be; alternating order."""
    env = measure.tool_env(
        scratch, {"CRANE_INDEX_URL": upstream, "CRANE_AUTH": "token", "CRANE_TOKEN": "x"}
    )
    crane, pip = project_tool("crane"), project_tool("pip")
    pairs = {
        "pip": ([pip, "--version"], [crane, "pip", "--version"]),
        "bare": ([sys.executable, "-c", "pass"], [crane, "--version"]),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"direct": [], "door": []} for k in pairs}
    repeats = max(CLI_REPEATS_MIN, settings.startup_repeats)
    for argv in (a for pair in pairs.values() for a in pair):  # warm-up: the page cache
        _wall_ms(argv, env)
    for i in range(repeats):
        if not budget.left():
            break
        for key, (plain, wrapped) in pairs.items():
            order = [("direct", plain), ("door", wrapped)]
            for path, argv in order if i % 2 == 0 else order[::-1]:
                times[key][path].append(_wall_ms(argv, env))
    n = len(times["pip"]["door"])
    return [
        measure.Row(
            "crane pip --version",
            "ms",
            measure.median(times["pip"]["direct"]),
            measure.median(times["pip"]["door"]),
            note=(
                f"{n} fresh processes each; direct = the venv's `pip --version`; door = "
                "`crane pip --version` (CRANE_INDEX_URL set): what crane adds to a command "
                "that needs no index"
            ),
            samples=times["pip"],
        ),
        measure.Row(
            "crane --version",
            "ms",
            measure.median(times["bare"]["direct"]),
            measure.median(times["bare"]["door"]),
            note=f"{n} fresh processes each; direct = `python -c pass`, a reference only",
            compare=False,
            samples=times["bare"],
        ),
    ]


def _wall_ms(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, timeout=60, capture_output=True)
    return (time.perf_counter() - started) * 1000


# -- main ----------------------------------------------------------------------------------------


def _versions(nginx_binary: str) -> str:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else "?"

    uv = project_tool("uv")
    pip = first_line([sys.executable, "-m", "pip", "--version"]).split(" from ")[0]
    return (
        f"python {platform.python_version()}, {pip}, {first_line([uv, '--version'])}, "
        f"{first_line([nginx_binary, '-v'])}, {os.cpu_count()} CPUs"
    )


def _print_profiles(directory: Path) -> None:
    for path in sorted(directory.glob("*.prof")):
        print(f"\n== profile of the door's event-loop thread: {path.stem} (top 20 by own time)")
        stats = pstats.Stats(str(path), stream=sys.stdout)
        stats.strip_dirs().sort_stats("tottime").print_stats(20)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the `with` blocks: nginx, doors, temp dirs


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    nginx_binary = index_site.find_nginx()
    if nginx_binary is None:
        say("nginx is not installed: apt-get install -y nginx")
        return 2
    if shutil.which("curl") is None and {"throughput", "concurrent", "https"} & set(
        settings.sections
    ):
        say("curl is not installed (the throughput, concurrent and https benchmarks need it)")
        return 2
    budget = Budget(settings.max_minutes)
    rows: list[measure.Row] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="crane-bench-") as tmp:
        scratch = Path(tmp)
        big_mib = (
            settings.big_mib if {"throughput", "guard", "https"} & set(settings.sections) else 0
        )
        medium_mib = CONCURRENT_MIB if "concurrent" in settings.sections else 0
        say(
            f"building {settings.wheels} wheels"
            + (f", a {big_mib} MiB file" if big_mib else "")
            + (f", a {medium_mib} MiB file" if medium_mib else "")
        )
        site = index_site.build_site(
            scratch / "site",
            wheels_count=settings.wheels,
            big_bytes=big_mib * _MIB,
            sparse=settings.sparse,
            medium_bytes=medium_mib * _MIB,
        )
        ca = tlsca.make_ca(scratch / "tls") if "https" in settings.sections else None
        tls = (ca.cert, ca.key) if ca is not None else None
        with index_site.Nginx(site.root, scratch / "nginx", binary=nginx_binary, tls=tls) as nginx:
            say(
                f"nginx: direct {nginx.direct_url}, proxy_pass {nginx.proxy_url}"
                + (f", https {nginx.https_url}" if tls is not None else "")
            )
            for section in settings.sections:
                if not budget.left():
                    say(f"time budget used up: skipping {section}")
                    continue
                if section in ("pip", "uv"):
                    rows.append(bench_install(section, settings, nginx, scratch, budget))
                elif section == "sync":
                    rows += sync.bench_sync(
                        nginx,
                        scratch,
                        repeats=settings.repeats,
                        wheels=settings.wheels,
                        budget_left=budget.left,
                    )
                elif section == "doors":
                    rows += doors.bench_doors(
                        nginx,
                        scratch,
                        repeats=settings.repeats,
                        wheels=settings.wheels,
                        budget_left=budget.left,
                    )
                elif section == "throughput":
                    rows += bench_throughput(settings, nginx, site, scratch, budget)
                elif section == "concurrent":
                    rows += bench_concurrent(settings, nginx, site, scratch, budget)
                elif section == "https" and ca is not None:
                    rows += bench_https(settings, nginx, site, scratch, budget, ca=ca)
                elif section == "latency":
                    rows += bench_latency(settings, nginx, site, scratch, budget)
                elif section == "startup":
                    rows += bench_startup(settings, nginx, site, scratch, budget)
                elif section == "guard":
                    rows += bench_guard(settings, nginx, site, scratch, budget)
                elif section == "repeat":
                    rows += repeat.bench_repeat(
                        site,
                        scratch,
                        repeats=settings.repeats,
                        wheels=settings.wheels,
                        budget_left=budget.left,
                        nginx_binary=nginx_binary,
                    )
    load_after = os.getloadavg()

    print()
    print(
        f"crane benchmarks: medians over {settings.repeats} repeats "
        f"(latency: {settings.latency_rounds} x {settings.requests} requests; "
        f"start-up: {settings.startup_repeats} repeats)"
    )
    print(_versions(nginx_binary))
    print(
        f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}: "
        "a shared machine; compare the ratios, not the absolute numbers"
    )
    print()
    print(measure.render_table(rows))
    if settings.profile_dir is not None:
        _print_profiles(settings.profile_dir)
    if settings.json_path is not None:
        settings.json_path.write_text(
            json.dumps({"settings": str(settings), "rows": [asdict(r) for r in rows]}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
