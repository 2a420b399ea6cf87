"""The private-index compatibility matrix: real index servers that crane must work with.

Each ``start_*`` function lays out the server's data from the private distributions, starts
the server on free ports of 127.0.0.1, waits until it answers, and returns an
``IndexServer`` (``url``: the server's own simple-index URL, unauthenticated; ``stop()``;
``startup_seconds``: from launching the process to its first good answer;
``setup_seconds``: everything, data and uploads included). A server that does not come up
raises ``StackError`` with its output.

- ``start_devpi``: devpi-server (``devpi-init`` a fresh server directory without a PyPI
  mirror, then user ``team`` and stage index ``team/private`` made and filled through
  devpi's own HTTP API: ``/+login``, ``PUT /team``, ``PUT /team/private``, the
  ``file_upload`` action). Its simple URL is ``/team/private/+simple/``, file links are
  relative ``../../+f/...`` paths, and it answers PEP 691 JSON when asked. With
  ``mirror_url``, also devpi's usual layout: a mirror index ``team/mirror`` of that URL
  and a stage ``team/inherits`` (the same files) whose base is the mirror.
- ``start_simple_repository_server``: simple-repository-server serving a directory
  (one folder per normalised project name). PEP 691 JSON, PEP 658 ``.metadata`` files
  extracted from the wheels, files under ``/resources/<project>/<file>``.
- ``start_nginx``: our own nginx (Debian's package; ``task system-deps``) with two sites:
  ``basic_url``, a pypiprivate-shaped static tree (relative links without hashes, files
  beside each project page) behind ``auth_basic`` with an ``{SSHA}`` htpasswd entry; and
  ``plain_url``, a bucket-shaped static tree without a root page (``/simple/`` answers
  404, project pages exist, links ``../../packages/<file>#sha256=...``), no auth of its
  own: the tests put the bearer gate in front of it.
- ``RDepotServer``: a stdlib stand-in for a Crane server hosting an RDepot Python
  repository (a server we cannot install): pages with absolute-path links
  (``/repo/packages/<file>``) and no hashes, sdists beside wheels, redirects that add a
  missing slash, and for anything it lacks the "200 Not found" answer of old Crane builds
  (the page of Crane's ``not-found.html`` template, or, with ``not_found = "negotiated"``,
  the JSON error body Spring picks for a JSON-first ``Accept``), always with status 200.

The distributions: ``private_distributions(dir)`` writes the stack's private wheels
(``crane-private-app 1.0`` requiring ``public-only-dep``, ``decoy-pkg 1.0``) and sdists of
both (built by a stdlib-only in-tree backend, so building them needs no index at all).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import importlib.metadata
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
from toolpath import ToolError, project_tool

from stack import servers, wheels
from stack.servers import ManagedProcess, StackError

__all__ = [
    "DEVPI_INDEX",
    "DEVPI_INHERITING_INDEX",
    "DEVPI_USER",
    "Distribution",
    "IndexServer",
    "NginxSites",
    "RDepotServer",
    "find_nginx",
    "private_distributions",
    "start_devpi",
    "start_nginx",
    "start_simple_repository_server",
]


# -- distributions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    project: str  # normalised
    version: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith(".tar.gz")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


_BACKEND = '''\
"""A PEP 517 backend for crane's test sdists: the standard library only, no requirements."""
import base64, hashlib, os, re, zipfile


def _metadata():
    with open("PKG-INFO", encoding="utf-8") as handle:
        text = handle.read()
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    return text, fields["Name"], fields["Version"]


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    text, name, version = _metadata()
    module = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = f"{module}-{version}.dist-info"
    files = []
    for root, _dirs, names in os.walk(module):
        for entry in sorted(names):
            path = os.path.join(root, entry)
            with open(path, "rb") as handle:
                files.append((path.replace(os.sep, "/"), handle.read()))
    files.append((f"{dist_info}/METADATA", text.encode()))
    files.append((
        f"{dist_info}/WHEEL",
        b"Wheel-Version: 1.0\\nGenerator: crane-test-backend\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n\\n",
    ))
    record = ""
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record += f"{path},sha256={digest.decode()},{len(data)}\\n"
    record += f"{dist_info}/RECORD,,\\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    wheel_name = f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w") as archive:
        for path, data in files:
            archive.writestr(path, data)
    return wheel_name
'''

_FIXED_MTIME = 1577836800  # 2020-01-01: the same inputs give byte-identical sdists


def build_sdist(
    directory: Path, name: str, version: str, requires: Iterable[str] = (), origin: str = "private"
) -> Path:
    """``<module>-<version>.tar.gz``: the same module as ``wheels.build_wheel`` writes, built
    into a wheel by an in-tree backend (``backend-path``), so no index is asked at build time."""
    directory.mkdir(parents=True, exist_ok=True)
    module = wheels.module_name(name)
    top = f"{module}-{version}"
    pkg_info = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
            f"Summary: crane integration test package ({origin}, sdist)",
            *(f"Requires-Dist: {req}" for req in requires),
        ]
    )
    members = {
        "PKG-INFO": pkg_info + "\n\n",
        "pyproject.toml": (
            "[build-system]\n"
            "requires = []\n"
            'build-backend = "_crane_test_backend"\n'
            'backend-path = ["."]\n'
        ),
        "_crane_test_backend.py": _BACKEND,
        f"{module}/__init__.py": (
            f'"""Test package {name} {version} ({origin} index, built from its sdist)."""\n'
            f"ORIGIN = {origin!r}\nNAME = {name!r}\nVERSION = {version!r}\n"
        ),
    }
    target = directory / f"{top}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            info.mtime = _FIXED_MTIME
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return target


def private_distributions(directory: Path) -> list[Distribution]:
    """The private index's wheels and sdists (ORIGIN "private"), as in ``wheels.PRIVATE_SET``."""
    out: list[Distribution] = []
    for name, version, requires in wheels.PRIVATE_SET:
        project = _normalise(name)
        wheel = wheels.build_wheel(directory, name, version, requires, origin="private")
        sdist = build_sdist(directory, name, version, requires, origin="private")
        out += [Distribution(project, version, wheel), Distribution(project, version, sdist)]
    return out


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- common ------------------------------------------------------------------------------------


@dataclass
class IndexServer:
    """A started index server (see the module docstring)."""

    name: str  # what it is, with its version
    url: str  # the server's own simple-index URL (no auth in front)
    startup_seconds: float
    setup_seconds: float
    proc: ManagedProcess | None = None
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
        elif self.proc is not None:
            self.proc.stop()


def _child_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy") and not key.upper().startswith(("PIP_", "CRANE_"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _tool(name: str) -> str:
    try:
        return project_tool(name)
    except ToolError as exc:
        raise StackError(str(exc)) from None


def _answers(client: httpx.Client, url: str, status: int) -> bool:
    try:
        return client.get(url).status_code == status
    except httpx.TransportError:
        return False


def _launch(
    name: str,
    argv_for: Callable[[list[int]], list[str]],
    ready: Callable[[list[int]], list[tuple[str, int]]],
    *,
    ports: int = 1,
    timeout: float = 30.0,
    attempts: int = 4,
) -> tuple[list[int], ManagedProcess, float]:
    """Start ``argv_for(ports)`` until every ``(url, status)`` of ``ready(ports)`` answers
    with its status; retried on new ports when the process exits (a port taken meanwhile).
    Returns the ports, the process and the seconds from launch to ready."""
    last = ""
    for _ in range(attempts):
        chosen = sorted({servers.free_port() for _ in range(ports)})
        if len(chosen) != ports:
            continue
        started = time.monotonic()
        proc = ManagedProcess(f"{name}:{chosen[0]}", argv_for(chosen), env=_child_env())
        deadline = started + timeout
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline and proc.poll() is None:
                answered = all(_answers(client, url, status) for url, status in ready(chosen))
                if answered and proc.poll() is None:  # ours answered, not a stranger
                    return chosen, proc, time.monotonic() - started
                time.sleep(0.05)
        still_running = proc.poll() is None
        proc.stop()
        last = proc.output(last=40)
        if still_running:
            raise StackError(f"{name} did not answer within {timeout:.0f}s:\n{last}")
    raise StackError(f"{name} failed to start after {attempts} attempts:\n{last}")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


# -- devpi-server ------------------------------------------------------------------------------

DEVPI_USER = "team"
DEVPI_INDEX = "private"
DEVPI_INHERITING_INDEX = "inherits"
_DEVPI_ROOT_PASSWORD = "matrix-root"  # a throwaway server on 127.0.0.1


def start_devpi(
    workdir: Path, distributions: Sequence[Distribution], *, mirror_url: str | None = None
) -> IndexServer:
    """devpi-server with ``team/private`` holding ``distributions`` (see the module docstring)."""
    began = time.monotonic()
    serverdir = workdir / "devpi"
    init = subprocess.run(
        [
            _tool("devpi-init"),
            *("--serverdir", str(serverdir), "--no-root-pypi"),
            *("--root-passwd", _DEVPI_ROOT_PASSWORD),
        ],
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if init.returncode != 0:
        raise StackError(f"devpi-init failed ({init.returncode}):\n{init.stdout}{init.stderr}")
    server = _tool("devpi-server")

    def argv(ports: list[int]) -> list[str]:
        return [
            server,
            *("--serverdir", str(serverdir), "--host", "127.0.0.1", "--port", str(ports[0])),
            # devpi derives its login-token key with argon2 at start-up, tuned for a server
            # (4 s on this machine); its own test suite lowers the cost the same way.
            *("--argon2-memory-cost", "8", "--argon2-time-cost", "1"),
            *("--argon2-parallelism", "1"),
        ]

    ports, proc, startup = _launch(
        "devpi-server", argv, lambda ports: [(f"http://127.0.0.1:{ports[0]}/+api", 200)]
    )
    base = f"http://127.0.0.1:{ports[0]}"
    try:
        _devpi_publish(base, distributions, mirror_url)
    except Exception as exc:
        proc.stop()
        raise StackError(
            f"devpi: publishing the test files failed: {exc}\n{proc.output()}"
        ) from exc
    return IndexServer(
        name=f"devpi-server {_version('devpi-server')}",
        url=f"{base}/{DEVPI_USER}/{DEVPI_INDEX}/+simple/",
        startup_seconds=startup,
        setup_seconds=time.monotonic() - began,
        proc=proc,
    )


def _devpi_publish(
    base: str, distributions: Sequence[Distribution], mirror_url: str | None
) -> None:
    """Make user ``team`` and its stage index ``private`` (and with ``mirror_url``, the
    mirror ``team/mirror`` and the stage ``team/inherits`` on it), and upload every file,
    through devpi's HTTP API (what devpi-client does)."""
    accept = {"Accept": "application/json"}
    with httpx.Client(base_url=base, trust_env=False, timeout=30.0) as client:
        login = client.post(
            "/+login", json={"user": "root", "password": _DEVPI_ROOT_PASSWORD}, headers=accept
        )
        login.raise_for_status()
        token = login.json()["result"]["password"]
        auth = base64.b64encode(f"root:{token}".encode()).decode()
        headers = {**accept, "X-Devpi-Auth": auth}
        client.put(
            f"/{DEVPI_USER}",
            json={"password": "matrix-team", "email": "team@example.invalid"},
            headers=headers,
        ).raise_for_status()
        stages: dict[str, list[str]] = {DEVPI_INDEX: []}
        if mirror_url is not None:
            client.put(
                f"/{DEVPI_USER}/mirror",
                json={"type": "mirror", "mirror_url": mirror_url},
                headers=headers,
            ).raise_for_status()
            stages[DEVPI_INHERITING_INDEX] = [f"{DEVPI_USER}/mirror"]
        for stage, bases in stages.items():
            client.put(
                f"/{DEVPI_USER}/{stage}",
                json={"type": "stage", "bases": bases, "volatile": True, "acl_upload": ["root"]},
                headers=headers,
            ).raise_for_status()
            for dist in distributions:
                answer = client.post(
                    f"/{DEVPI_USER}/{stage}/",
                    data={":action": "file_upload", "name": dist.project, "version": dist.version},
                    files={"content": (dist.filename, dist.path.read_bytes())},
                    headers=headers,
                )
                if answer.status_code != 200:
                    raise StackError(
                        f"upload of {dist.filename}: {answer.status_code} {answer.text}"
                    )


# -- simple-repository-server -----------------------------------------------------------------


def start_simple_repository_server(
    workdir: Path, distributions: Sequence[Distribution]
) -> IndexServer:
    """simple-repository-server serving a directory of ``distributions``."""
    began = time.monotonic()
    tree = workdir / "simple-repository"
    for dist in distributions:
        (tree / dist.project).mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.path, tree / dist.project / dist.filename)
    server = _tool("simple-repository-server")
    ports, proc, startup = _launch(
        "simple-repository-server",
        lambda ports: [server, "--host", "127.0.0.1", "--port", str(ports[0]), str(tree)],
        lambda ports: [(f"http://127.0.0.1:{ports[0]}/simple/", 200)],
    )
    return IndexServer(
        name=f"simple-repository-server {_version('simple-repository-server')}",
        url=f"http://127.0.0.1:{ports[0]}/simple/",
        startup_seconds=startup,
        setup_seconds=time.monotonic() - began,
        proc=proc,
    )


# -- nginx -------------------------------------------------------------------------------------


def find_nginx() -> str:
    """nginx from PATH or Debian's sbin directories; StackError naming the task otherwise."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise StackError(
            "nginx is not installed: run `task system-deps` (Debian's nginx-light), "
            "which `task deps` runs"
        )
    return found


@dataclass
class NginxSites:
    """Our nginx: ``basic`` (``basic_url``, user ``username``/``password``) and ``plain``."""

    server: IndexServer
    basic_url: str  # http://127.0.0.1:B/simple/ (pypiprivate shape, Basic auth)
    plain_url: str  # http://127.0.0.1:P/simple/ (no root page, no auth of its own)
    username: str
    password: str


def _ssha(password: str) -> str:
    """An htpasswd ``{SSHA}`` entry, which nginx's auth_basic accepts."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the format's hash
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _page(title: str, links: Iterable[tuple[str, str]], heading: bool = True) -> str:
    anchors = "".join(
        f'    <a href="{html.escape(href)}">{html.escape(text)}</a><br>\n' for href, text in links
    )
    h1 = f"    <h1>{html.escape(title)}</h1>\n" if heading else ""
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n    <meta charset="UTF-8">\n'
        f"    <title>{html.escape(title)}</title>\n</head>\n<body>\n{h1}{anchors}</body>\n</html>\n"
    )


def _by_project(distributions: Iterable[Distribution]) -> dict[str, list[Distribution]]:
    out: dict[str, list[Distribution]] = {}
    for dist in distributions:
        out.setdefault(dist.project, []).append(dist)
    return out


def write_pypiprivate_tree(root: Path, distributions: Sequence[Distribution]) -> None:
    """pypiprivate's layout: ``simple/index.html`` ("Private Index", links to project
    folders without a trailing slash), ``simple/<project>/index.html`` linking bare file
    names (no hashes), the files beside it."""
    simple = root / "simple"
    projects = _by_project(distributions)
    for project, dists in projects.items():
        folder = simple / project
        folder.mkdir(parents=True, exist_ok=True)
        for dist in dists:
            shutil.copy2(dist.path, folder / dist.filename)
        links = [(d.filename, d.filename) for d in sorted(dists, key=lambda d: d.filename)]
        (folder / "index.html").write_text(_page(f"Links for {project}", links))
    root_links = [(p, p) for p in sorted(projects)]
    (simple / "index.html").write_text(_page("Private Index", root_links, heading=False))


def write_rootless_tree(root: Path, distributions: Sequence[Distribution]) -> None:
    """A bucket-shaped tree: project pages only (no ``simple/index.html``), files under
    ``packages/``, links ``../../packages/<file>#sha256=<hex>``."""
    packages = root / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    for project, dists in _by_project(distributions).items():
        folder = root / "simple" / project
        folder.mkdir(parents=True, exist_ok=True)
        links = []
        for dist in sorted(dists, key=lambda d: d.filename):
            shutil.copy2(dist.path, packages / dist.filename)
            links.append((f"../../packages/{dist.filename}#sha256={dist.sha256}", dist.filename))
        (folder / "index.html").write_text(_page(f"Links for {project}", links))


def _nginx_config(prefix: Path, basic: Path, plain: Path, ports: list[int]) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read our tmp dirs
    temp = "".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# crane's compatibility matrix (integration/stack/matrix.py)
{user}worker_processes 1;
pid {prefix / "nginx.pid"};
events {{ worker_connections 512; }}
http {{
    access_log off;
    types {{ text/html html; application/octet-stream whl; application/gzip gz; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
{temp}
    # pypiprivate's tree on a static host with Basic auth
    server {{
        listen 127.0.0.1:{ports[0]} backlog=511;
        root {basic};
        index index.html;
        auth_basic "crane matrix";
        auth_basic_user_file {prefix / "htpasswd"};
    }}
    # a bucket: a URL is an object or 404 (so /simple/ itself is 404)
    server {{
        listen 127.0.0.1:{ports[1]} backlog=511;
        root {plain};
        location ~ /$ {{ try_files ${{uri}}index.html =404; }}
        location / {{ try_files $uri =404; }}
    }}
}}
"""


def start_nginx(
    workdir: Path,
    distributions: Sequence[Distribution],
    *,
    username: str = "alice",
    password: str = "correct horse",  # noqa: S107 - a throwaway server on 127.0.0.1
) -> NginxSites:
    """nginx with the two sites of the module docstring, as our own child process."""
    began = time.monotonic()
    binary = find_nginx()
    prefix = workdir / "nginx"
    basic, plain = workdir / "basic-site", workdir / "plain-site"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    (prefix / "htpasswd").write_text(f"{username}:{_ssha(password)}\n")
    write_pypiprivate_tree(basic, distributions)
    write_rootless_tree(plain, distributions)
    conf = prefix / "nginx.conf"
    probe = next(iter(_by_project(distributions)))

    def argv(ports: list[int]) -> list[str]:
        conf.write_text(_nginx_config(prefix, basic, plain, ports))
        return [binary, "-e", "stderr", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]

    ports, proc, startup = _launch(
        "nginx",
        argv,
        lambda ports: [
            (f"http://127.0.0.1:{ports[0]}/simple/", 401),
            (f"http://127.0.0.1:{ports[1]}/simple/{probe}/", 200),
        ],
        ports=2,
    )
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    workers: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        workers = psutil.Process(proc.pid).children(recursive=True)

    def stop() -> None:
        proc.stop(timeout=10)
        # Workers follow their master; make sure none of ours outlives it.
        _gone, alive = psutil.wait_procs(workers, timeout=5)
        for worker in alive:
            with contextlib.suppress(psutil.Error):
                worker.send_signal(signal.SIGKILL)

    server = IndexServer(
        name=version.removeprefix("nginx version: "),
        url=f"http://127.0.0.1:{ports[0]}/simple/",
        startup_seconds=startup,
        setup_seconds=time.monotonic() - began,
        proc=proc,
        _stop=stop,
    )
    return NginxSites(
        server=server,
        basic_url=f"http://127.0.0.1:{ports[0]}/simple/",
        plain_url=f"http://127.0.0.1:{ports[1]}/simple/",
        username=username,
        password=password,
    )


# -- a Crane server hosting an RDepot Python repository ---------------------------------------

# Crane's templates/not-found.html, as its error controller renders it for a missing path.
_CRANE_NOT_FOUND = """<!DOCTYPE html>
<html>
<head>
    <title>Crane - not found</title>
    <link media="screen" rel="stylesheet" href="/css/default.css"/>
</head>
<body>
<div class="container">
    <h1>Not found</h1>
    <p>The resource <code>{resource}</code> was not found.</p>
    <a href="{main_page}">Go back to the main page</a>
</div>
</body>
</html>
"""


class _RDepotHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "crane-rdepot-stand-in/1"
    timeout = 60
    sys_version = ""
    server: _RDepotHTTPServer

    def log_message(self, format, *args):
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _send(self, status: int, body: bytes, content_type: str, head: bool, **headers: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner.requests.append(path)
        target = owner.resolve(path)
        if target is not None and target.is_dir() and not path.endswith("/"):
            host = self.headers.get("Host", f"127.0.0.1:{owner.port}")
            self._send(302, b"", "text/html", head, Location=f"http://{host}{path}/")
            return
        if target is not None and path.endswith("/"):
            target = target / "index.html"
        if target is None or not target.is_file():
            self._not_found(path, head)
            return
        if target.name == "index.html":
            content_type = "text/html"
        elif target.name.endswith(".tar.gz"):
            content_type = "application/gzip"
        else:
            content_type = "application/zip"
        self._send(200, target.read_bytes(), content_type, head)

    def _not_found(self, path: str, head: bool) -> None:
        """Old Crane builds forward a miss to their error controller without a status: the
        answer goes out as 200. Spring picks the JSON error view when the client ranks a
        JSON type first, the not-found.html page otherwise."""
        owner = self.server.owner
        accept = self.headers.get("Accept", "")
        if owner.not_found == "negotiated" and _prefers_json(accept):
            body = json.dumps({"status": "not-found", "code": 404, "resource": path})
            first = accept.split(",")[0].split(";")[0].strip()
            media = first if first.endswith("json") else "application/json"
            self._send(200, body.encode(), media, head)
            return
        host = self.headers.get("Host", f"127.0.0.1:{owner.port}")
        page = _CRANE_NOT_FOUND.format(resource=html.escape(path), main_page=f"http://{host}/")
        self._send(200, page.encode(), "text/html;charset=UTF-8", head)


def _prefers_json(accept: str) -> bool:
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                with contextlib.suppress(ValueError):
                    quality = float(param[2:])
        ranked.append((-quality, position, media))
    return bool(ranked) and min(ranked)[2].endswith("json")


class _RDepotHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, owner: RDepotServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RDepotHandler)


class RDepotServer:
    """A Crane server's answers for an RDepot Python repository named ``repo``.

    Layout served (everything under ``/repo/``): ``simple/index.html`` listing the projects
    by absolute path, ``simple/<project>/index.html`` linking ``/repo/packages/<file>``
    (no hashes), the files in ``packages/``. ``not_found``: ``"html"`` (the not-found page
    whatever the client accepts) or ``"negotiated"`` (see ``_not_found``). ``requests``:
    the paths asked, in order.
    """

    def __init__(self, workdir: Path, distributions: Sequence[Distribution]) -> None:
        self._began = time.monotonic()
        self.root = workdir / "rdepot" / "repo"
        self.not_found = "html"
        self.requests: list[str] = []
        self.port = 0
        self._server: _RDepotHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._write(distributions)

    def _write(self, distributions: Sequence[Distribution]) -> None:
        packages = self.root / "packages"
        packages.mkdir(parents=True, exist_ok=True)
        projects = _by_project(distributions)
        for project, dists in projects.items():
            folder = self.root / "simple" / project
            folder.mkdir(parents=True, exist_ok=True)
            links = []
            for dist in sorted(dists, key=lambda d: d.filename):
                shutil.copy2(dist.path, packages / dist.filename)
                links.append((f"/repo/packages/{dist.filename}", dist.filename))
            (folder / "index.html").write_text(_page(f"Links for {project}", links))
        root_links = [(f"/repo/simple/{p}/", p) for p in sorted(projects)]
        (self.root / "simple" / "index.html").write_text(_page("Simple index", root_links))

    def resolve(self, path: str) -> Path | None:
        """The file or folder for a request path under ``/repo/``; None outside it."""
        if not path.startswith("/repo/") or "/../" in path or path.endswith("/.."):
            return None
        target = self.root / path.removeprefix("/repo/")
        return target if target.exists() else None

    def start(self) -> IndexServer:
        began = time.monotonic()
        self._server = _RDepotHTTPServer(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"rdepot:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return IndexServer(
            name="a Crane/RDepot stand-in (stdlib)",
            url=f"http://127.0.0.1:{self.port}/repo/simple/",
            startup_seconds=time.monotonic() - began,
            setup_seconds=time.monotonic() - self._began,
            _stop=self.stop,
        )

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
