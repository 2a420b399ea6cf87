"""`crane poetry` and `crane uv <project command>`: the transparent door, lock files untouched.

Real poetry and real uv, the real IdP, and the private index behind HTTPS (a test CA that
the environment trusts, as a corporate CA would be) and behind plain HTTP.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from harness import CRANE, Crane

PROJECT = """\
[project]
name = "demo-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["crane-private-app", "decoy-pkg"]
"""

POETRY_SOURCES = """
[tool.poetry]
package-mode = false

[[tool.poetry.source]]
name = "private"
url = "{private}"
priority = "primary"

[[tool.poetry.source]]
name = "public"
url = "{public}"
priority = "supplemental"
"""

UV_INDEXES = """
[tool.uv]
package = false

[[tool.uv.index]]
name = "private"
url = "{private}"

[[tool.uv.index]]
name = "public"
url = "{public}"
default = true
"""


@pytest.fixture(params=["https", "http"])
def private(request, stack, tls_front):
    """The private index URL (HTTPS front or plain HTTP gate) and its gate."""
    if request.param == "https":
        return tls_front.url, tls_front.gate
    return stack.private_url, stack.gate


@pytest.fixture
def project(stack, project_env, private, tmp_path):
    url, gate = private
    work = tmp_path / "project"
    work.mkdir()
    crane = Crane(project_env, cwd=work)
    crane.register(stack, url, "--public-index", stack.public_url)
    assert crane.login(stack, url).code == 0
    gate.reset()
    gate.clear()
    return crane, url, gate


def installed_origins(site: Path) -> dict[str, str]:
    found = {}
    for name in ("crane_private_app", "public_only_dep", "decoy_pkg"):
        inits = list(site.glob(f"lib/python*/site-packages/{name}/__init__.py"))
        if inits:
            found[name] = "private" if "ORIGIN = 'private'" in inits[0].read_text() else "public"
    return found


EXPECTED = {"crane_private_app": "private", "public_only_dep": "public", "decoy_pkg": "private"}


def assert_bearer_on_every_request(gate) -> None:
    from harness import credentialed

    records = credentialed(gate.records(), "/simple/")
    assert records, "the private index saw no request"
    assert all(r.auth_ok for r in records), [r for r in records if not r.auth_ok]


def snapshot(directory: Path, *names: str) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in names}


def test_poetry_lock_and_install_leave_the_project_untouched(stack, project):
    crane, url, gate = project
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + POETRY_SOURCES.format(private=url, public=stack.public_url)
    )
    locked = crane.run("poetry", "lock", timeout=300)
    assert locked.code == 0, locked.stdout + locked.stderr
    lock_text = (work / "poetry.lock").read_text()
    # The real index URLs (poetry drops the trailing slash), never crane's proxy.
    assert f'url = "{url.rstrip("/")}"' in lock_text
    urls = {line for line in lock_text.splitlines() if line.startswith("url = ")}
    assert urls == {f'url = "{u.rstrip("/")}"' for u in (url, stack.public_url)}
    before = snapshot(work, "pyproject.toml", "poetry.lock")

    installed = crane.run("poetry", "install", timeout=300)
    assert installed.code == 0, installed.stdout + installed.stderr
    assert snapshot(work, "pyproject.toml", "poetry.lock") == before
    assert installed_origins(work / ".venv") == EXPECTED
    assert_bearer_on_every_request(gate)
    assert any("/packages/" in r.path for r in gate.records())  # files came through too


def test_uv_lock_sync_locked_frozen_leave_uv_lock_untouched(stack, project, tmp_path):
    crane, url, gate = project
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=url, public=stack.public_url)
    )
    locked = crane.run("uv", "lock", timeout=300)
    assert locked.code == 0, locked.stderr
    lock_text = (work / "uv.lock").read_text()
    assert f'registry = "{url}"' in lock_text
    assert lock_text.count("registry = ") == lock_text.count(url) + lock_text.count(
        stack.public_url
    )
    before = snapshot(work, "pyproject.toml", "uv.lock")

    for args in (["sync"], ["sync", "--locked"], ["sync", "--frozen"]):
        venv = tmp_path / ("venv-" + "-".join(args).replace("--", ""))
        env = {**crane.env, "UV_PROJECT_ENVIRONMENT": str(venv)}
        result = crane.run("uv", *args, timeout=300, env=env)
        assert result.code == 0, (args, result.stderr)
        assert snapshot(work, "pyproject.toml", "uv.lock") == before, args
        assert installed_origins(venv) == EXPECTED, args
    assert_bearer_on_every_request(gate)

    # A command that changes dependencies: the lock still holds only the real URLs.
    added = crane.run("uv", "add", "public-other", timeout=300)
    assert added.code == 0, added.stderr
    lock_text = (work / "uv.lock").read_text()
    registries = {
        line.split("registry = ")[1] for line in lock_text.splitlines() if "registry = " in line
    }
    assert registries <= {f'"{url}" }}', f'"{stack.public_url}" }}'}, registries


@pytest.mark.parametrize("blind", [True, False], ids=["pass-through", "guarded"])
def test_the_door_demands_its_password_and_guards_or_tunnels_other_hosts(
    stack, project, tls_front, blind
):
    crane, url, _gate = project
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=url, public=stack.public_url)
    )
    # Another TLS host: the same test server addressed as 127.0.0.1 is not a private
    # origin for the https case (that is localhost), nor for the http case (no TLS there).
    other = f"127.0.0.1:{tls_front.gate.port}"
    probe = work / "probe.py"
    probe.write_text(PROBE.format(other=other))
    env = {**crane.env, "ORIGINAL_CERT": str(tls_front.ca_path)}
    if blind:
        env["CRANE_PASS_THROUGH"] = "127.0.0.1"
        env["PROBE_TRUST"] = "ORIGINAL_CERT"
    else:
        env["PROBE_TRUST"] = "SSL_CERT_FILE"  # the bundle crane handed the child
    result = crane.run("uv", "run", "--no-project", "python", str(probe), env=env)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("HTTP/1.1 407")  # no Proxy-Authorization
    assert lines[1].startswith("HTTP/1.1 407")  # a wrong password
    assert lines[2].startswith("HTTP/1.1 200")  # the right one
    if blind:
        # Through a blind tunnel the other host presents its own certificate (the test
        # CA's), verified against the trust the child had before crane.
        assert lines[3] == "issuer: crane integration test CA"
        assert "crane: guard: tunnelling 127.0.0.1 blind (CRANE_PASS_THROUGH)" in result.stderr
    else:
        # The guard terminates TLS for every other host, with the run's CA.
        assert lines[3] == "issuer: crane interception CA (this run only)"


# A child that reads its own environment: a stand-in for any tool run under crane.
PROBE = """\
import base64, os, socket, ssl
from urllib.parse import urlsplit

proxy = urlsplit(os.environ["HTTPS_PROXY"])
good = base64.b64encode(f"{{proxy.username}}:{{proxy.password}}".encode()).decode()

def connect(target, auth):
    s = socket.create_connection((proxy.hostname, proxy.port))
    head = f"CONNECT {{target}} HTTP/1.1\\r\\nHost: {{target}}\\r\\n"
    if auth:
        head += "Proxy-Authorization: Basic " + auth + "\\r\\n"
    s.sendall((head + "\\r\\n").encode())
    status = s.recv(4096).split(b"\\r\\n")[0].decode()
    return s, status

print(connect("localhost:443", None)[1])
print(connect("localhost:443", base64.b64encode(b"crane:wrong").decode())[1])
print(connect("localhost:443", good)[1])
sock, status = connect("{other}", good)
assert status.startswith("HTTP/1.1 200"), status
context = ssl.create_default_context(cafile=os.environ[os.environ["PROBE_TRUST"]])
with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
    issuer = dict(part[0] for part in tls.getpeercert()["issuer"])
print("issuer:", issuer["commonName"])
"""


def _children(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_tear_down_the_child_and_the_ca_bundle(stack, project, signum, expected):
    crane, url, gate = project
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=url, public=stack.public_url)
    )
    gate.mode = "slow"
    gate.slow_seconds = 1.0
    proc = subprocess.Popen(
        [*CRANE, "uv", "lock"], env=crane.env, cwd=work, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        child = None
        while child is None and time.monotonic() < deadline:
            for candidate in _children(proc):
                try:
                    if "SSL_CERT_FILE" in candidate.environ():
                        child = candidate
                        break
                except psutil.Error:
                    continue
            time.sleep(0.05)
        assert child is not None
        child_env = child.environ()
        bundle = Path(child_env["SSL_CERT_FILE"])
        assert bundle.exists()
        # The child holds only a per-run proxy password, never the index's tokens.
        tokens = json.loads(
            next((Path(crane.env["CRANE_HOME"]) / "state" / "tokens").glob("*.json")).read_text()
        )
        for value in child_env.values():
            assert tokens["access_token"] not in value
            assert tokens["refresh_token"] not in value
        # The CA's key lives only in crane's memory: nothing crane wrote holds a key.
        for path in bundle.parent.iterdir():
            assert b"PRIVATE KEY" not in path.read_bytes()
        tree = [psutil.Process(proc.pid), *_children(proc)]
        proc.send_signal(signum)
        proc.communicate(timeout=30)
    finally:
        gate.reset()
    assert proc.returncode == expected
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not bundle.parent.exists()
    assert not (work / "uv.lock").exists()


DAEMON = """
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(pidfile + ".tmp", "w").write(str(os.getpid()))
        os.replace(pidfile + ".tmp", pidfile)
        time.sleep(60)
    os._exit(0)
while not os.path.exists(pidfile):
    time.sleep(0.005)
"""


def test_a_daemon_started_under_uv_run_does_not_outlive_crane(stack, project, tmp_path):
    crane, url, _gate = project
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=url, public=stack.public_url)
    )
    pidfile = tmp_path / "daemon.pid"
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON)
    result = crane.run("uv", "run", "--no-project", "python", str(script), str(pidfile))
    assert result.code == 0, result.stderr
    try:
        daemon = psutil.Process(int(pidfile.read_text()))
    except psutil.NoSuchProcess:
        return  # already torn down with the run
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if not daemon.is_running() or daemon.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        daemon.kill()
        raise AssertionError("a daemon of the child outlived the run, with crane's proxy settings")


POSTER = """
import base64, os, socket, sys
from urllib.parse import urlsplit
proxy = urlsplit(os.environ["HTTP_PROXY"])
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
with socket.create_connection((proxy.hostname, proxy.port)) as s:
    head = (
        f"POST {sys.argv[1]} HTTP/1.1\\r\\nHost: {urlsplit(sys.argv[1]).netloc}\\r\\n"
        f"Proxy-Authorization: Basic {auth}\\r\\nContent-Length: 2\\r\\n\\r\\nhi"
    )
    s.sendall(head.encode())
    print(s.recv(4096).split(b"\\r\\n")[0].decode())
"""


def test_only_get_and_head_go_to_a_private_http_origin(stack, crane, tmp_path):
    # Anything else would carry crane's bearer token to the index with a body.
    crane.register(stack, None, "--public-index", stack.public_url)
    assert crane.login(stack).code == 0
    work = crane.cwd
    (work / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=stack.private_url, public=stack.public_url)
    )
    poster = tmp_path / "poster.py"
    poster.write_text(POSTER)
    stack.gate.clear()
    result = crane.run("uv", "run", "--no-project", "python", str(poster), stack.private_url)
    assert result.code == 0, result.stderr
    assert result.stdout.strip().startswith("HTTP/1.1 405"), result.stdout
    assert [r for r in stack.gate.records() if r.method == "POST"] == []


REFUSER = """
import os, socket, ssl
from urllib.parse import urlsplit
import base64
proxy = urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
s = socket.create_connection((proxy.hostname, proxy.port))
s.sendall(f"CONNECT other.example:443 HTTP/1.1\\r\\nHost: other.example:443\\r\\n"
          f"Proxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode())
assert s.recv(4096).startswith(b"HTTP/1.1 200")
context = ssl.create_default_context(cafile=os.environ["ORIGINAL_CERT"])  # not crane's CA
try:
    context.wrap_socket(s, server_hostname="other.example")
except ssl.SSLError:
    print("refused")
"""


def test_a_child_that_refuses_cranes_certificate_gets_one_line(stack, project, tls_front):
    crane, url, _gate = project
    (crane.cwd / "pyproject.toml").write_text(
        PROJECT + UV_INDEXES.format(private=url, public=stack.public_url)
    )
    probe = crane.cwd / "refuser.py"
    probe.write_text(REFUSER)
    env = {**crane.env, "ORIGINAL_CERT": str(tls_front.ca_path)}
    result = crane.run("uv", "run", "--no-project", "python", str(probe), env=env)
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == "refused"
    lines = [line for line in result.stderr.splitlines() if "other.example" in line]
    assert lines == [
        "crane: the child refused crane's certificate for other.example "
        f"({lines[0].split('(', 1)[1].split(')', 1)[0]}); if it pins that host's own "
        "certificate, list the host in CRANE_PASS_THROUGH"
    ], result.stderr
    assert "Traceback" not in result.stderr
