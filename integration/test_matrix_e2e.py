"""The private-index compatibility matrix: `crane pip` and `crane uv pip` against real index
servers of the kinds people run, each started here on 127.0.0.1 (see ``stack/matrix.py``).

- ``devpi``: devpi-server, index ``team/private``; bearer (the test gate in front).
- ``simple-repository-server``: over a directory of wheels; bearer (gate).
- ``nginx-basic``: nginx, a pypiprivate-shaped static tree, ``auth_basic``; HTTP Basic.
- ``static-no-root``: nginx, a static tree whose ``/simple/`` is 404; bearer (gate) and
  ``--probe-path``.
- ``rdepot``: a Crane/RDepot stand-in (absolute-path links, sdists, "200 Not found");
  bearer (gate).

For every row and both tools: the private package comes from the private index, its
public-only dependency from the public index (the session's public pypiserver; fallback on
the server's own "not here"), and the decoy (``decoy-pkg``: 1.0 private, 99.0 public) from
the private index. An authentication failure exits 4 and takes nothing from the public
index. What got installed is read from the target directory itself (importlib.metadata of
that directory, and the ORIGIN constant the test packages carry), never from crane's output.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from harness import CRANE, Crane, Result
from stack.gate import Gate
from stack.matrix import (
    DEVPI_INDEX,
    DEVPI_INHERITING_INDEX,
    DEVPI_USER,
    Distribution,
    IndexServer,
    NginxSites,
    RDepotServer,
    private_distributions,
    start_devpi,
    start_nginx,
    start_simple_repository_server,
)
from stack.servers import StackError
from toolpath import child_path

ROWS = ("devpi", "simple-repository-server", "nginx-basic", "static-no-root", "rdepot")
TOOLS = ("pip", "uv")
PRIVATE_APP, PUBLIC_DEP, DECOY = "crane-private-app", "public-only-dep", "decoy-pkg"
EXPECTED = {
    PRIVATE_APP: ("1.0", "private"),
    PUBLIC_DEP: ("1.0", "public"),
    DECOY: ("1.0", "private"),  # the public index offers 99.0: never taken
}
PASSWORD_VARIABLE = "CRANE_MATRIX_PASSWORD"
# The servers here are small: keep uv's parallel downloads and builds low.
UV_ENV = {"UV_CONCURRENT_DOWNLOADS": "4", "UV_CONCURRENT_BUILDS": "1"}
T = TypeVar("T")


# -- what got installed -------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(target: Path) -> dict[str, tuple[str, str]]:
    """``{project: (version, origin)}`` for every distribution in ``target``: the version
    from the directory's own metadata, the origin from the ORIGIN constant the test
    package's module carries ("private" or "public")."""
    found = {}
    for dist in importlib.metadata.distributions(path=[str(target)]):
        project = _normalise(dist.metadata["Name"])
        init = target / project.replace("-", "_") / "__init__.py"
        origin = "?"
        if init.is_file():
            for node in ast.parse(init.read_text()).body:
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ORIGIN":
                    origin = ast.literal_eval(node.value)
        found[project] = (dist.version, origin)
    return found


def _explain(result: Result) -> str:
    return f"exit {result.code}\nstderr:\n{result.stderr[-4000:]}\nstdout:\n{result.stdout[-2000:]}"


# -- the rows -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One server of the matrix, as crane sees it."""

    name: str
    url: str  # the URL crane is given (the gate's, or the server's own for Basic)
    server: IndexServer
    sign_in: Callable[[Crane], None]  # a fresh CRANE_HOME gets the row's registration+login
    log_in: Callable[[Crane], None]  # register and log in anew (a login of its own)
    refusing: Callable[[Crane], contextlib.AbstractContextManager[None]]  # auth fails inside
    gate: Gate | None = None
    extra: dict = field(default_factory=dict)

    def close(self) -> None:
        if self.gate is not None:
            self.gate.stop()


def _crane_env(home: Path) -> dict[str, str]:
    """A clean environment for a module's own crane (what ``tool_env`` is for a test)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("PIP_", "UV_", "POETRY_", "CRANE_"))
        and not key.upper().endswith("_PROXY")
    }
    env.update(CRANE_HOME=str(home), CI="true", NO_PROXY="127.0.0.1,localhost", PATH=child_path())
    return env


def _gated_row(
    name: str, server: IndexServer, stack, home: Path, *, probe_path: str | None = None, **extra
) -> Row:
    """The bearer gate in front of ``server``, and one device-flow login to it in ``home``
    that every test of the row starts from. (A login costs 5 s: the provider names no
    polling interval, so crane waits RFC 8628's default before its first poll.)"""
    gate = Gate(server.url, stack.issuer, stack.audience)
    url = gate.start()

    def log_in(crane: Crane) -> None:
        args = ["--public-index", stack.public_url]
        if probe_path is not None:
            args += ["--probe-path", probe_path]
        crane.register(stack, url, *args)
        result = crane.login(stack, url)
        assert result.code == 0, _explain(result)

    def sign_in(crane: Crane) -> None:
        # CRANE_HOME holds crane's whole config and state: a copy is that user's login.
        shutil.copytree(home, crane.env["CRANE_HOME"], dirs_exist_ok=True)

    @contextlib.contextmanager
    def refusing(crane: Crane) -> Iterator[None]:
        gate.mode = "unauthorized"  # every token refused, as after a revocation
        try:
            yield
        finally:
            gate.reset()

    try:
        log_in(Crane(_crane_env(home)))
    except BaseException:
        gate.stop()
        raise
    return Row(name, url, server, sign_in, log_in, refusing, gate=gate, extra=extra)


@contextlib.contextmanager
def _started(announce, what: str, start: Callable[[], T]) -> Iterator[T]:
    """Start a server (``start()`` returns an ``IndexServer`` or something with a ``server``
    attribute), say how long it took, stop it on exit. A server that cannot start fails
    the tests with its output; it never skips them."""
    try:
        started = start()
    except StackError as exc:
        pytest.fail(f"{what} did not start:\n{exc}", pytrace=False)
    server = cast(IndexServer, getattr(started, "server", started))
    announce(
        f"matrix: {server.name} up in {server.startup_seconds:.2f} s "
        f"({server.setup_seconds:.2f} s with its data) at {server.url}"
    )
    try:
        yield started
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> list[Distribution]:
    return private_distributions(tmp_path_factory.mktemp("matrix-dists"))


def _wheels(dists: list[Distribution]) -> list[Distribution]:
    return [d for d in dists if not d.is_sdist]


@pytest.fixture(scope="module")
def devpi_row(stack, dists, tmp_path_factory, announce) -> Iterator[Row]:
    work = tmp_path_factory.mktemp("devpi")
    start = functools.partial(start_devpi, work, _wheels(dists), mirror_url=stack.public_url)
    with _started(announce, "devpi-server", start) as server:
        row = _gated_row("devpi", server, stack, tmp_path_factory.mktemp("devpi-home"))
        try:
            yield row
        finally:
            row.close()


@pytest.fixture(scope="module")
def srs_row(stack, dists, tmp_path_factory, announce) -> Iterator[Row]:
    work = tmp_path_factory.mktemp("srs")
    start = functools.partial(start_simple_repository_server, work, _wheels(dists))
    with _started(announce, "simple-repository-server", start) as server:
        home = tmp_path_factory.mktemp("srs-home")
        row = _gated_row("simple-repository-server", server, stack, home)
        try:
            yield row
        finally:
            row.close()


@pytest.fixture(scope="module")
def nginx_sites(dists, tmp_path_factory, announce) -> Iterator[NginxSites]:
    start = functools.partial(start_nginx, tmp_path_factory.mktemp("nginx"), _wheels(dists))
    with _started(announce, "nginx", start) as sites:
        yield sites


@pytest.fixture(scope="module")
def nginx_basic_row(stack, nginx_sites) -> Row:
    url = nginx_sites.basic_url

    def sign_in(crane: Crane) -> None:
        crane.env[PASSWORD_VARIABLE] = nginx_sites.password
        result = crane.run(
            "index", "register", url, "--auth", "basic", "--username", nginx_sites.username,
            "--password-env", PASSWORD_VARIABLE, "--public-index", stack.public_url,
        )  # fmt: skip
        assert result.code == 0, _explain(result)

    @contextlib.contextmanager
    def refusing(crane: Crane) -> Iterator[None]:
        crane.env[PASSWORD_VARIABLE] = "not the password"
        try:
            yield
        finally:
            crane.env[PASSWORD_VARIABLE] = nginx_sites.password

    return Row("nginx-basic", url, nginx_sites.server, sign_in, sign_in, refusing)


@pytest.fixture(scope="module")
def static_no_root_row(stack, nginx_sites, tmp_path_factory) -> Iterator[Row]:
    server = IndexServer("nginx (no root page)", nginx_sites.plain_url, 0.0, 0.0)
    home = tmp_path_factory.mktemp("static-home")
    probe = f"/simple/{PRIVATE_APP}/"
    row = _gated_row("static-no-root", server, stack, home, probe_path=probe)
    try:
        yield row
    finally:
        row.close()


@pytest.fixture(scope="module")
def rdepot_row(stack, dists, tmp_path_factory, announce) -> Iterator[Row]:
    # Wheel and sdist of the app; the decoy as an sdist only (crane must serve the sdist
    # and pip/uv build it).
    files = [d for d in dists if d.project == PRIVATE_APP or d.is_sdist]
    rdepot = RDepotServer(tmp_path_factory.mktemp("rdepot"), files)
    with _started(announce, "the Crane/RDepot stand-in", rdepot.start) as server:
        home = tmp_path_factory.mktemp("rdepot-home")
        row = _gated_row("rdepot", server, stack, home, rdepot=rdepot)
        try:
            yield row
        finally:
            row.close()


@pytest.fixture(scope="module", params=ROWS)
def row(request) -> Row:
    fixture = {"simple-repository-server": "srs"}.get(request.param, request.param)
    return request.getfixturevalue(fixture.replace("-", "_") + "_row")


def install(crane: Crane, row: Row, tool: str, target: Path, *packages: str, **env: str) -> Result:
    args = ["install", "--target", str(target), "-i", row.url, *packages]
    if tool == "uv":
        return crane.run("uv", "pip", *args, env={**crane.env, **UV_ENV, **env})
    return crane.run("pip", *args, env={**crane.env, **env})


# -- every row, both tools ----------------------------------------------------------------------


@pytest.mark.parametrize("tool", TOOLS)
def test_private_first_with_the_public_dependency_and_the_decoy_private(row, tool, crane, tmp_path):
    row.sign_in(crane)
    target = tmp_path / "target"
    result = install(crane, row, tool, target, PRIVATE_APP, DECOY)
    assert result.code == 0, _explain(result)
    assert installed(target) == EXPECTED


def test_an_authentication_failure_never_falls_back(row, crane, tmp_path):
    """pip, then uv. A login of their own: a refused token makes crane refresh it once, and
    the provider rotates the refresh token, which would spend the row's shared login."""
    row.log_in(crane)
    for tool in TOOLS:
        target = tmp_path / tool
        with row.refusing(crane):
            result = install(crane, row, tool, target, PRIVATE_APP, DECOY)
        assert result.code == 4, f"{tool}: {_explain(result)}"
        assert "Traceback" not in result.stderr
        assert installed(target) == {}, tool  # above all, not the public decoy


# -- what each row is there for -----------------------------------------------------------------


@contextlib.contextmanager
def crane_serve(crane: Crane, url: str) -> Iterator[str]:
    """``crane serve URL``: yields the door's index URL; stopped on exit."""
    proc = subprocess.Popen(
        [*CRANE, "serve", url],
        env=crane.env, cwd=crane.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        door = proc.stdout.readline().strip()
        if not door.startswith("http://127.0.0.1:"):
            proc.kill()
            _, err = proc.communicate(timeout=20)
            pytest.fail(f"crane serve did not start:\n{err}", pytrace=False)
        yield door
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=20)


JSON_FIRST = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)


@pytest.mark.parametrize("name", ["devpi", "simple-repository-server"])
def test_pep_691_json_pages_come_through_the_door(request, name, crane):
    """devpi and simple-repository-server answer JSON when asked: the door passes it on with
    every file URL mapped back through itself, hashes and core-metadata kept."""
    row = request.getfixturevalue("devpi_row" if name == "devpi" else "srs_row")
    row.sign_in(crane)
    with crane_serve(crane, row.url) as door, httpx.Client(trust_env=False, timeout=30) as client:
        page = client.get(door + f"{PRIVATE_APP}/", headers={"Accept": JSON_FIRST})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"] == "application/vnd.pypi.simple.v1+json"
        (entry,) = page.json()["files"]
        token = urlsplit(door).path.split("/")[1]
        assert entry["url"].startswith(f"/{token}/files/")  # on the door, absolute path
        url = urljoin(door, entry["url"])
        wheel = client.get(url)
        assert wheel.status_code == 200
        assert wheel.content[:2] == b"PK"
        if name == "devpi":
            assert entry["hashes"] == {"sha256": hashlib.sha256(wheel.content).hexdigest()}
            assert f"/{token}/files/{DEVPI_USER}/{DEVPI_INDEX}/+f/" in entry["url"]
        else:  # PEP 658: the metadata file, through the same door
            assert entry["core-metadata"] is True
            metadata = client.get(url + ".metadata")
            assert metadata.status_code == 200
            assert f"Requires-Dist: {PUBLIC_DEP}" in metadata.text


@pytest.mark.parametrize("tool", TOOLS)
def test_simple_repository_servers_metadata_files_are_used(srs_row, tool, crane, tmp_path):
    """pip and uv read PEP 658 `.metadata` files when an index offers them; the guard lets
    them through (they are the private index's own)."""
    row = srs_row
    row.sign_in(crane)
    mark = len(row.gate.records())
    result = install(crane, row, tool, tmp_path / "t", PRIVATE_APP)
    assert result.code == 0, _explain(result)
    asked = [(r.path, r.status) for r in row.gate.records()[mark:]]
    assert (f"/resources/{PRIVATE_APP}/crane_private_app-1.0-py3-none-any.whl.metadata", 200) in (
        asked
    ), asked


@pytest.mark.parametrize("tool", TOOLS)
def test_devpi_with_names_spelt_otherwise(devpi_row, tool, crane, tmp_path):
    """devpi redirects a name that is not normalised (302 to the normalised page); crane
    asks for normalised names only, so the spelling on the command line does not matter."""
    row = devpi_row
    direct = httpx.get(row.server.url + "Crane_Private.App/", trust_env=False)
    assert direct.status_code == 302
    assert direct.headers["location"].endswith(f"/+simple/{PRIVATE_APP}/")
    row.sign_in(crane)
    mark = len(row.gate.records())
    target = tmp_path / "target"
    result = install(crane, row, tool, target, "Crane_Private.App", "DECOY.pkg")
    assert result.code == 0, _explain(result)
    assert installed(target) == EXPECTED
    assert not [r for r in row.gate.records()[mark:] if 300 <= r.status < 400]


def test_a_devpi_index_on_a_mirror_serves_an_installer_that_asks_for_html(devpi_row, stack, crane):
    """devpi's usual layout: a stage whose base mirrors PyPI serves the mirror's projects
    itself, and to a client it takes for a person (no installer's User-Agent) it adds a
    "Refresh mirror links" form to their HTML pages. An installer that asks for HTML only
    (pip before 22.2, say the system pip of `crane pip --python /usr/bin/python3.9`) must
    still get the page through crane's door."""
    row = devpi_row
    assert row.gate is not None
    path = f"/{DEVPI_USER}/{DEVPI_INHERITING_INDEX}/+simple/"
    old_pip = {"Accept": "text/html", "User-Agent": 'pip/22.0.4 {"installer":{"name":"pip"}}'}
    server_origin = row.server.url.split(f"/{DEVPI_USER}/")[0]
    direct = httpx.get(f"{server_origin}{path}{PUBLIC_DEP}/", headers=old_pip, trust_env=False)
    assert direct.status_code == 200
    assert "<form" not in direct.text  # devpi gives installers the page without the form
    url = row.gate.origin + path
    crane.register(stack, url, "--public-index", stack.public_url)
    assert crane.login(stack, url).code == 0
    with crane_serve(crane, url) as door:
        page = httpx.get(door + f"{PUBLIC_DEP}/", headers=old_pip, trust_env=False, timeout=30)
    assert page.status_code == 200, page.text
    assert "public_only_dep-1.0-py3-none-any.whl" in page.text


@pytest.mark.parametrize("tool", TOOLS)
def test_basic_auth_from_the_environment_alone(nginx_basic_row, nginx_sites, stack, tool, crane):
    """The CI form: no registry, the index and its Basic credentials in CRANE_* variables."""
    env = {
        "CRANE_INDEX_URL": nginx_sites.basic_url,
        "CRANE_AUTH": "basic",
        "CRANE_USERNAME": nginx_sites.username,
        "CRANE_PASSWORD": nginx_sites.password,
        "CRANE_PUBLIC_INDEX": stack.public_url,
    }
    target = crane.cwd / "target"
    result = install(crane, nginx_basic_row, tool, target, PRIVATE_APP, DECOY, **env)
    assert result.code == 0, _explain(result)
    assert installed(target) == EXPECTED

    wrong = crane.cwd / "wrong"
    env["CRANE_PASSWORD"] = "not the password"
    result = install(crane, nginx_basic_row, tool, wrong, PRIVATE_APP, DECOY, **env)
    assert result.code == 4, _explain(result)
    assert installed(wrong) == {}


def test_an_index_without_a_root_page_needs_its_probe_path(static_no_root_row, stack, crane):
    """Without ``--probe-path`` nothing proves crane's login to a tree whose ``/simple/``
    is 404, so a missing project is no evidence of absence: the run stops before pip."""
    row = static_no_root_row
    assert httpx.get(row.server.url, trust_env=False).status_code == 404
    crane.register(stack, row.url, "--public-index", stack.public_url)
    assert crane.login(stack, row.url).code == 0
    target = crane.cwd / "target"
    result = install(crane, row, "pip", target, PRIVATE_APP)
    assert result.code == 5, _explain(result)
    assert "crane cannot prove that the index accepts its login" in result.stderr
    assert installed(target) == {}


@pytest.mark.parametrize("tool", TOOLS)
def test_rdepot_json_not_found_answer_is_a_not_found(rdepot_row, tool, crane, tmp_path):
    """To a JSON-first Accept (pip's and uv's, which crane passes on), Spring renders the
    error as JSON, still with status 200 in old builds: that answer means "not here" too."""
    row = rdepot_row
    rdepot: RDepotServer = row.extra["rdepot"]
    row.sign_in(crane)
    rdepot.not_found = "negotiated"
    try:
        mark = len(rdepot.requests)
        target = tmp_path / "target"
        result = install(crane, row, tool, target, PRIVATE_APP, DECOY)
    finally:
        rdepot.not_found = "html"
    assert result.code == 0, _explain(result)
    assert installed(target) == EXPECTED
    assert f"/repo/simple/{PUBLIC_DEP}/" in rdepot.requests[mark:]
