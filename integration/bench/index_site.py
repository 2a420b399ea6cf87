"""The benchmark's index: static files (a PEP 503 index, wheels, one big file) and nginx.

`build_site(root, wheels=60, big_bytes=...)` writes

    root/simple/index.html                 every project
    root/simple/<project>/index.html       one link per file, `#sha256=` fragment
    root/packages/<wheel>                  bench-pkg-00 .. bench-pkg-NN and bench-top,
                                           which requires all the others
    root/files/big.bin                     random bytes (or a sparse file)
    root/files/medium.bin                  `medium_bytes` random bytes (16 MiB), for
                                           the concurrent downloads

`Nginx(site_root, workdir)` serves it as a child process (`daemon off`, pid, logs and
temp paths in `workdir`) on two free ports of 127.0.0.1 (three with `tls=`):

- `direct_url`: nginx serving the files (sendfile, keep-alive, backlog 511);
- `proxy_url`:  a second server block that `proxy_pass`es to the first one, with keep-alive
  upstream connections and in-memory buffers: a C reverse proxy on the same machine, as a
  reference point for what any proxy costs here;
- `https_url`:  with `tls=` (a certificate and key, see `tlsca.py`), a third server block
  serving the same files as the first over HTTPS (HTTP/1.1, TLS session cache).

Links in the project pages are relative (`../../packages/x.whl`), so the index door
resolves them against the private origin and serves them from `/<token>/files/...`.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_INTEGRATION = Path(__file__).resolve().parent.parent
if str(_INTEGRATION) not in sys.path:
    sys.path.insert(0, str(_INTEGRATION))

import psutil  # noqa: E402
from stack import servers, wheels  # noqa: E402

__all__ = ["Nginx", "Site", "build_site", "find_nginx"]

TOP = "bench-top"
BIG_NAME = "big.bin"
MEDIUM_NAME = "medium.bin"
_MIB = 1024 * 1024


@dataclass
class Site:
    root: Path
    projects: list[str]
    """Normalised project names, `bench-top` last."""
    big_path: str
    """URL path of the big file (`/files/big.bin`)."""
    big_bytes: int
    page_project: str
    """A small project page for the latency benchmark."""
    medium_path: str = ""
    """URL path of the medium file (`/files/medium.bin`), when there is one."""
    medium_bytes: int = 0


def build_site(
    root: Path,
    *,
    wheels_count: int = 60,
    big_bytes: int,
    sparse: bool = False,
    medium_bytes: int = 0,
) -> Site:
    """Write the static index (see the module docstring); return what the benchmarks need."""
    packages = root / "packages"
    simple = root / "simple"
    leaves = [f"bench-pkg-{i:02d}" for i in range(max(wheels_count - 1, 1))]
    built: dict[str, Path] = {}
    for name in leaves:
        built[name] = wheels.build_wheel(packages, name, "1.0", origin="bench")
    built[TOP] = wheels.build_wheel(packages, TOP, "1.0", leaves, origin="bench")

    simple.mkdir(parents=True, exist_ok=True)
    rows = "".join(f'<a href="{name}/">{name}</a>\n' for name in built)
    _write_page(simple / "index.html", "Simple index", rows)
    for name, path in built.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        href = html.escape(f"../../packages/{path.name}#sha256={digest}")
        _write_page(
            simple / name / "index.html",
            f"Links for {name}",
            f'<a href="{href}">{html.escape(path.name)}</a>\n',
        )

    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    _write_big(files / BIG_NAME, big_bytes, sparse=sparse)
    if medium_bytes:
        _write_big(files / MEDIUM_NAME, medium_bytes, sparse=False)
    return Site(
        root,
        list(built),
        f"/files/{BIG_NAME}",
        big_bytes,
        leaves[0],
        f"/files/{MEDIUM_NAME}" if medium_bytes else "",
        medium_bytes,
    )


def _write_page(path: Path, title: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{title}</title></head><body>\n{body}</body></html>\n",
        encoding="utf-8",
    )


def _write_big(path: Path, size: int, *, sparse: bool) -> None:
    with path.open("wb") as handle:
        if sparse:
            handle.truncate(size)
            return
        block = os.urandom(_MIB)
        written = 0
        counter = 0
        while written < size:  # bounded: size / 1 MiB iterations
            # A counter in every block keeps the file from being trivially deduplicated.
            chunk = counter.to_bytes(8, "little") + block[8:]
            chunk = chunk[: size - written]
            handle.write(chunk)
            written += len(chunk)
            counter += 1


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _tls_server(site: Path, tls_port: int, tls: tuple[Path, Path] | None) -> str:
    """The HTTPS server block: the first block's files and rules, over TLS."""
    if tls is None:
        return ""
    cert, key = tls
    return f"""
    server {{
        listen 127.0.0.1:{tls_port} ssl backlog=511;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:1m;
        root {site};
        location / {{ }}
        location = /simple/ {{
            if ($http_authorization = "") {{ return 401; }}
        }}
    }}"""


def _config(
    site: Path,
    work: Path,
    port: int,
    proxy_port: int,
    *,
    tls_port: int = 0,
    tls: tuple[Path, Path] | None = None,
) -> str:
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# generated by crane's benchmarks
{user}worker_processes auto;
daemon off;
master_process on;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ text/html html; application/octet-stream whl bin; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    # Private-file requests that carry credentials (the door's Bearer token; the tools
    # alone send none): one short line each, so a benchmark can tell that its files went
    # through the door (`Nginx.credentialed_file_requests`). Pages are not logged.
    map "$http_authorization|$uri" $bench_door_file {{
        "~^Bearer [^|]*[|]/packages/" 1;
        default 0;
    }}
    log_format bench_door '$uri $status';
{temp}
    server {{
        listen 127.0.0.1:{port} backlog=511;
        access_log {work / "door-files.log"} bench_door if=$bench_door_file;
        root {site};
        location / {{ }}
        # The root page refuses anonymous requests, as a private index does: crane's
        # door proves its credentials there (a page anybody gets proves nothing). The
        # tools alone never ask for it; every other page and file stays open.
        location = /simple/ {{
            if ($http_authorization = "") {{ return 401; }}
        }}
    }}
    upstream bench_direct {{
        server 127.0.0.1:{port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{proxy_port} backlog=511;
        location / {{
            proxy_pass http://bench_direct;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_buffer_size 64k;
            proxy_buffers 8 256k;
            proxy_busy_buffers_size 512k;
            proxy_max_temp_file_size 0;
        }}
        # This block also stands for another origin than the private index (the guard
        # section): an index whose root is open, as a public one's is.
        location = /simple/ {{
            proxy_pass http://bench_direct;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer public";
        }}
    }}{_tls_server(site, tls_port, tls)}
}}
"""


class Nginx:
    """Our own nginx instance (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        site_root: Path,
        workdir: Path,
        *,
        binary: str,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`tls`: (certificate, key) for a third, HTTPS server block (`https_url`)."""
        self.site_root = site_root
        self.workdir = workdir
        self.binary = binary
        self.tls = tls
        self.proc: servers.ManagedProcess | None = None
        self.port = 0
        self.proxy_port = 0
        self.tls_port = 0
        self._workers: list[psutil.Process] = []

    @property
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def https_url(self) -> str:
        """The HTTPS server block (only with `tls`)."""
        if not self.tls_port:
            raise RuntimeError("this nginx has no HTTPS server block (no tls= given)")
        return f"https://127.0.0.1:{self.tls_port}"

    def credentialed_file_requests(self) -> int:
        """How many `/packages/` requests with a Bearer token the plain-HTTP server block
        has served so far (the door's; see the config)."""
        try:
            with (self.workdir / "door-files.log").open("rb") as handle:
                return sum(1 for _line in handle)
        except FileNotFoundError:
            return 0

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, attempts: int = 5, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(attempts):
            port, proxy_port = servers.free_port(), servers.free_port()
            tls_port = servers.free_port() if self.tls is not None else 0
            ports = (port, proxy_port, tls_port) if tls_port else (port, proxy_port)
            if len(set(ports)) != len(ports):
                continue
            conf = self.workdir / "nginx.conf"
            conf.write_text(
                _config(
                    self.site_root, self.workdir, port, proxy_port, tls_port=tls_port, tls=self.tls
                )
            )
            argv = [self.binary, "-e", str(self.workdir / "error.log")]
            argv += ["-p", str(self.workdir), "-c", str(conf)]
            proc = servers.ManagedProcess(f"nginx:{port}", argv)
            if _wait_listening(ports, proc, timeout):
                self.proc, self.port, self.proxy_port = proc, port, proxy_port
                self.tls_port = tls_port
                with contextlib.suppress(psutil.Error):
                    self._workers = psutil.Process(proc.pid).children(recursive=True)
                return
            proc.stop()
            last = proc.output(last=20) + _tail(self.workdir / "error.log")
        raise RuntimeError(f"nginx did not start:\n{last}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            self._workers = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.stop(timeout=10)
        self.proc = None
        # Workers follow their master; make sure none of ours outlives it.
        _gone, alive = psutil.wait_procs(self._workers, timeout=5)
        for worker in alive:
            with contextlib.suppress(psutil.Error):
                worker.send_signal(signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)


def _wait_listening(ports: tuple[int, ...], proc: servers.ManagedProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:  # bounded by the deadline
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", pending[0]), timeout=1):
                pending.pop(0)
                continue
        except OSError:
            time.sleep(0.05)
    return not pending and proc.poll() is None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
