"""Small measuring helpers for the benchmarks: statistics, a clean tool environment,
keep-alive GETs, curl downloads, RSS sampling and the result table."""

from __future__ import annotations

import http.client
import math
import os
import socket
import ssl
import statistics
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from toolpath import child_path

__all__ = [
    "Row",
    "RssSampler",
    "cpu_seconds",
    "curl_download",
    "curl_parallel",
    "keepalive_gets",
    "median",
    "p95",
    "render_table",
    "tool_env",
]

_DROP_PREFIXES = ("PIP_", "UV_", "POETRY_", "CRANE_")
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)


def tool_env(scratch: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for pip, uv, curl and the door: no machine config, no proxies.

    TMPDIR is inside `scratch`, so whatever a tool leaves in its temp dir goes with it.
    """
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_DROP_PREFIXES) and not k.upper().endswith("_PROXY")
    }
    env.update(
        PATH=child_path(env.get("PATH", os.defpath)),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
        XDG_CONFIG_HOME=str(scratch / "xdg-config"),
        TMPDIR=str(scratch / "tmp"),
        CRANE_HOME=str(scratch / "crane-home"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        # The benchmark's projects name no public index, so a run's check of the public
        # index would go to pip's default index on the network: off.
        CRANE_PUBLIC_CHECK="0",
    )
    env.update(extra or {})
    return env


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-95 * len(ordered) // 100))
    return ordered[rank - 1]


# -- clients -------------------------------------------------------------------------------


@dataclass
class GetSeries:
    samples_ms: list[float]
    reconnects: int
    body_bytes: int


def keepalive_gets(
    port: int,
    path: str,
    count: int,
    *,
    warmup: int = 20,
    timeout: float = 10.0,
    proxy_authorization: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> GetSeries:
    """`count` sequential GETs on one keep-alive connection; per-request wall time in ms.
    With `proxy_authorization`, `port` is a proxy and `path` an absolute URL; with `tls`,
    the connection is HTTPS (one handshake, before the first request)."""
    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Accept": PIP_ACCEPT, "User-Agent": "crane-bench"}
    if proxy_authorization is not None:
        headers["Proxy-Authorization"] = proxy_authorization
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reconnects = 0
        samples: list[float] = []
        size = 0
        for i in range(warmup + count):  # bounded by count
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
            if conn.sock is None:  # the server closed it; http.client reopens next time
                reconnects += 1
            if i >= warmup:
                samples.append(elapsed)
                size = len(body)
        return GetSeries(samples, reconnects, size)
    finally:
        conn.close()


def fresh_get_ms(port: int, path: str, timeout: float = 10.0) -> tuple[int, float]:
    """One GET on a new connection: (status, ms)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": PIP_ACCEPT})
        response = conn.getresponse()
        response.read()
        return response.status, (time.perf_counter() - started) * 1000
    finally:
        conn.close()


@dataclass
class Download:
    status: int
    size: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.size / self.seconds / 1e6 if self.seconds > 0 else float("nan")


def curl_download(
    url: str,
    env: Mapping[str, str],
    *,
    max_seconds: int = 600,
    proxy: str | None = None,
    cacert: Path | None = None,
) -> Download:
    """Download `url` to /dev/null with curl (a C client: it does not limit the server),
    directly or through `proxy`; `cacert`: the CA to trust for an https:// URL."""
    route = ["--noproxy", "*"] if proxy is None else ["--proxy", proxy]
    if cacert is not None:
        route += ["--cacert", str(cacert)]
    out = subprocess.run(
        [
            "curl",
            "-q",
            "-sS",
            *route,
            "--max-time",
            str(max_seconds),
            "-o",
            os.devnull,
            "-w",
            "%{http_code} %{size_download} %{time_total}",
            url,
        ],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=max_seconds + 30,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr.strip()}")
    status, size, seconds = out.stdout.split()
    return Download(int(status), int(float(size)), float(seconds))


@dataclass
class ParallelDownloads:
    seconds: float
    """Wall time of the whole batch (curl's start to its exit)."""
    total_bytes: int
    """Bytes received, over every transfer, complete or not."""
    errors: int
    """Transfers that did not end in a 200 with the expected size (or did not report)."""

    @property
    def mb_per_s(self) -> float:
        """Aggregate rate: every byte received over the wall time, 10^6 bytes/s."""
        return self.total_bytes / self.seconds / 1e6 if self.seconds > 0 else float("nan")


def curl_parallel(
    url: str,
    count: int,
    size: int,
    env: Mapping[str, str],
    *,
    max_seconds: int = 600,
) -> ParallelDownloads:
    """`count` downloads of `url` at once with one curl in parallel mode (`-Z`, one
    connection per transfer, all started at once), each to /dev/null. An error is a
    transfer that ends in anything but a 200 of `size` bytes."""
    argv = [
        "curl",
        "-q",
        "-sS",
        *("--noproxy", "*"),
        "-Z",
        *("--parallel-max", str(count), "--parallel-immediate"),
        *("--max-time", str(max_seconds)),
        *("-w", "%{http_code} %{size_download}\\n"),
    ]
    for _ in range(count):
        argv += ["-o", os.devnull, url]
    started = time.perf_counter()
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=max_seconds + 30,
        check=False,
    )
    seconds = time.perf_counter() - started
    reports = [line.split() for line in out.stdout.splitlines() if line.strip()]
    total = sum(int(float(fields[1])) for fields in reports if len(fields) == 2)
    good = sum(1 for fields in reports if fields == ["200", str(size)])
    return ParallelDownloads(seconds, total, count - good)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 when it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


class RssSampler:
    """Sample a process's RSS every `interval` seconds on a thread (bounded in time)."""

    def __init__(self, pid: int, *, interval: float = 0.02, max_seconds: float = 900.0) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self.before = self._rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return int(self._proc.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.before


# -- the table -----------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    unit: str
    direct: float
    door: float
    proxy: float | None = None
    """nginx proxy_pass, where measured (a reference C proxy)."""
    lower_is_better: bool = True
    note: str = ""
    compare: bool = True
    """False: `direct` is only a point of reference, and no ratio is shown."""
    samples: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, value: float | None) -> str:
        if not self.compare or value is None or not self.direct:
            return ""
        if math.isnan(value) or math.isnan(self.direct):
            return ""
        return f"{value / self.direct:.2f}x"


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return ""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_table(rows: Sequence[Row]) -> str:
    head = (
        "benchmark",
        "unit",
        "direct",
        "crane door",
        "door/direct",
        "nginx proxy",
        "proxy/direct",
    )
    body = [
        (
            r.name,
            r.unit,
            _num(r.direct),
            _num(r.door),
            r.ratio(r.door),
            _num(r.proxy),
            r.ratio(r.proxy),
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*line) for line in body]
    notes = [f"  {r.name}: {r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)
