"""`crane pip` and `crane uv pip` end to end: real pip, real uv, real IdP, real indexes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from harness import CRANE, origins, uv_env


@pytest.fixture
def logged_in(stack, crane):
    """crane with the stack's private index registered (public fallback set) and a login."""
    crane.register(stack, None, "--public-index", stack.public_url)
    result = crane.login(stack)
    assert result.code == 0, result.stderr
    stack.gate.reset()
    yield crane
    stack.gate.reset()


def test_pip_installs_private_first_with_public_dependency(stack, logged_in, tmp_path):
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url,
        "crane-private-app", "decoy-pkg",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert origins(target) == {
        "crane-private-app": "private",
        "public-only-dep": "public",
        "decoy-pkg": "private",  # the public index offers 99.0: never taken
    }
    # The private index saw a bearer token on every request crane made.
    records = stack.gate.records()
    assert records
    assert all(r.auth_ok for r in records if r.status != 401)


def test_uv_pip_installs_private_first(stack, logged_in, tmp_path):
    target = tmp_path / "target"
    result = logged_in.run(
        "uv", "pip", "install", "--target", str(target), "-i", stack.private_url,
        "crane-private-app", "decoy-pkg",
        env=uv_env(logged_in.env),
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert origins(target) == {
        "crane-private-app": "private",
        "public-only-dep": "public",
        "decoy-pkg": "private",
    }


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_the_childs_exit_code_comes_through(stack, logged_in, tmp_path, tool):
    args = ["install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "no-such-pkg"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args)
    assert result.code == 1, result.stderr  # pip's and uv's own code for "not found"
    # crane adds nothing to the tool's own failure but the provenance line of every run.
    lines = [line for line in result.stderr.splitlines() if line.startswith("crane:")]
    assert [line for line in lines if not line.startswith("crane: warning")] == [
        "crane: provenance: no project was fetched from an index this run"
    ]


def assert_closed(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def _wait_for_child(proc: subprocess.Popen, name: str, timeout: float = 20) -> psutil.Process:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _descendants(proc):
            try:
                cmdline = child.cmdline()
                # A child between fork and exec still shows crane's own command line.
                if any("crane_launch" in part for part in cmdline):
                    continue
                if any(name in part for part in cmdline):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no {name} child appeared")


def _slow_install(stack, crane, tmp_path) -> subprocess.Popen:
    stack.gate.mode = "slow"
    stack.gate.slow_seconds = 1.0
    return subprocess.Popen(
        [*CRANE, "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
         "crane-private-app", "decoy-pkg"],
        env=crane.env, cwd=crane.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_the_child_command_line_holds_no_token(stack, logged_in, tmp_path):
    proc = _slow_install(stack, logged_in, tmp_path)
    try:
        pip = _wait_for_child(proc, "pip")
        index_url = pip.environ()["PIP_INDEX_URL"]
        token = urlsplit(index_url).path.split("/")[1]
        assert len(token) >= 40
        assert token not in " ".join(psutil.Process(proc.pid).cmdline())
        for process in _descendants(proc):
            cmdline = " ".join(process.cmdline())
            assert token not in cmdline
            assert stack.private_url not in cmdline  # `-i URL` was taken out of argv
    finally:
        stack.gate.reset()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(
    ("signum", "expected"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_signals_tear_everything_down(stack, logged_in, tmp_path, signum, expected):
    proc = _slow_install(stack, logged_in, tmp_path)
    try:
        pip = _wait_for_child(proc, "pip")
        port = urlsplit(pip.environ()["PIP_INDEX_URL"]).port
        tree = [psutil.Process(proc.pid), *_descendants(proc)]
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signum)
        proc.communicate(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        stack.gate.reset()
    assert proc.returncode == expected
    assert elapsed < 10
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert_closed(port)


def test_an_index_answering_500_fails_clearly_and_never_falls_back(stack, logged_in, tmp_path):
    stack.gate.mode = "error500"
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url, "decoy-pkg"
    )
    assert result.code == 5, result.stderr
    assert f"crane: {stack.private_url}: the index answered 500" in result.stderr
    assert "Traceback" not in result.stderr
    assert origins(target) == {}


def test_a_stopped_index_fails_clearly(stack, crane, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/simple/"
    crane.register(stack, dead, "--public-index", stack.public_url)
    # A token for the dead index: copy the live login's file under the dead index's name.
    crane.register(stack)
    assert crane.login(stack).code == 0
    assert crane.login(stack, dead).code == 0
    result = crane.run("pip", "install", "--target", str(tmp_path / "t"), "-i", dead, "decoy-pkg")
    assert result.code == 5, result.stderr
    assert f"crane: {dead}: cannot connect to the index" in result.stderr
    assert origins(tmp_path / "t") == {}


def _stored_tokens(crane) -> dict:
    import json

    (path,) = (Path(crane.env["CRANE_HOME"]) / "state" / "tokens").glob("*.json")
    return json.loads(path.read_text())


def test_a_token_refused_mid_run_is_refreshed_once(stack, logged_in, tmp_path):
    stale = _stored_tokens(logged_in)["access_token"]
    stack.gate.revoked_tokens = {stale}
    mark = stack.event_mark()
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url, "crane-private-app"
    )
    assert result.code == 0, result.stderr
    assert origins(target)["crane-private-app"] == "private"
    assert stack.wait_for_event("token.issued refresh_token", start=mark)
    time.sleep(0.3)
    refreshes = [
        line for line in stack.idp.lines[mark:] if line.startswith("EVENT token.issued refresh")
    ]
    assert len(refreshes) == 1


def test_a_revoked_grant_is_a_clear_error_without_fallback(stack, logged_in, tmp_path):
    tokens = _stored_tokens(logged_in)
    revoked = httpx.post(
        stack.revocation_url,
        data={"token": tokens["refresh_token"], "client_id": stack.client_id},
        trust_env=False,
    )
    assert revoked.status_code == 200
    stack.gate.revoked_tokens = {tokens["access_token"]}  # JWTs stay valid until they expire
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url, "decoy-pkg"
    )
    assert result.code == 4, result.stderr
    assert f"run `crane login {stack.private_url}`" in result.stderr
    assert "Traceback" not in result.stderr
    assert origins(target) == {}


# -- crane serve ---------------------------------------------------------------------------


class Served:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc = proc
        self.url = url
        self.stderr = ""

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        _, self.stderr = self.proc.communicate(timeout=20)
        return self.proc.returncode


@pytest.fixture
def served(stack, logged_in):
    proc = subprocess.Popen(
        [*CRANE, "serve", stack.private_url],
        env=logged_in.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
    serving = Served(proc, url)
    yield serving
    if proc.poll() is None:
        serving.stop()


def _raw_get(port: int, target: str) -> bytes:
    """Send the request target exactly as given (httpx would normalise `..` away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b""
    return head


def test_serve_answers_404_to_a_wrong_or_missing_token(served):
    parts = urlsplit(served.url)
    token = parts.path.split("/")[1]
    good = httpx.get(served.url + "decoy-pkg/", trust_env=False)
    assert good.status_code == 200
    for path in (
        f"/{'x' * len(token)}/simple/decoy-pkg/",
        "/simple/decoy-pkg/",
        f"/{token}/elsewhere/",
        f"/{token}/files/../simple/",
        f"/{token}/files/%2e%2e/simple/",
        f"/{token}",
        "/",
    ):
        head = _raw_get(parts.port, path)
        assert head.startswith(b"HTTP/1.1 404 "), (path, head)
        assert b"content-length: 0" in head.lower(), (path, head)
    assert httpx.post(served.url, trust_env=False).status_code == 405


def test_pip_and_uv_install_through_crane_serve(served, tool_env, tmp_path):
    for tool, extra_env in (("pip", {}), ("uv", {"UV_CONCURRENT_DOWNLOADS": "2"})):
        target = tmp_path / tool
        cmd = [tool, "install"] if tool == "pip" else ["uv", "pip", "install"]
        proc = subprocess.run(
            [*cmd, "--target", str(target), "--index-url", served.url, "crane-private-app",
             "decoy-pkg"],
            env={**tool_env, **extra_env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert origins(target) == {
            "crane-private-app": "private",
            "public-only-dep": "public",
            "decoy-pkg": "private",
        }
    port = urlsplit(served.url).port
    assert served.stop(signal.SIGTERM) == 0
    assert "crane: stopped" in served.stderr
    assert_closed(port)


def test_an_index_failing_mid_run_never_falls_back(stack, served, tool_env, tmp_path):
    stack.gate.mode = "error500"
    target = tmp_path / "target"
    proc = subprocess.run(
        ["pip", "install", "--target", str(target), "--index-url", served.url, "decoy-pkg"],
        env=tool_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert origins(target) == {}
    answer = httpx.get(served.url + "decoy-pkg/", trust_env=False)
    assert answer.status_code == 502
    assert "answered 500" in answer.text


def test_a_200_mb_file_streams_in_bounded_memory(stack, served):
    from stack.wheels import build_wheel

    wheel = build_wheel(stack.private_dir, "big-blob", "1.0", pad_bytes=200 * 1024 * 1024)
    try:
        parts = urlsplit(served.url)
        token = parts.path.split("/")[1]
        url = f"{parts.scheme}://{parts.netloc}/{token}/files/packages/{wheel.name}"
        server = psutil.Process(served.proc.pid)
        before = server.memory_info().rss
        peak = before
        received = 0
        with httpx.stream("GET", url, trust_env=False, timeout=60) as answer:
            assert answer.status_code == 200
            assert int(answer.headers["content-length"]) == wheel.stat().st_size
            for chunk in answer.iter_raw(1024 * 1024):
                received += len(chunk)
                peak = max(peak, server.memory_info().rss)
        assert received == wheel.stat().st_size
        growth = (peak - before) / 1024 / 1024
        print(f"crane serve RSS growth while streaming 200 MB: {growth:.1f} MB")
        assert growth < 50
        # Range requests pass through (uv sends HEAD, then Range GETs).
        head = httpx.head(url, trust_env=False)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(wheel.stat().st_size)
        ranged = httpx.get(url, headers={"Range": "bytes=0-99"}, trust_env=False)
        assert ranged.status_code == 206
        assert len(ranged.content) == 100
    finally:
        wheel.unlink()


def test_serve_refreshes_tokens_and_reports_a_lost_login(short_stack, crane):
    crane.register(short_stack, None, "--public-index", short_stack.public_url)
    assert crane.login(short_stack).code == 0
    proc = subprocess.Popen(
        [*CRANE, "serve", short_stack.private_url],
        env=crane.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    served = Served(proc, proc.stdout.readline().strip() if proc.stdout else "")
    try:
        assert served.url.startswith("http://127.0.0.1:")
        for _ in range(2):  # across two access-token lifetimes
            time.sleep(short_stack.access_ttl + 0.5)
            answer = httpx.get(served.url + "decoy-pkg/", trust_env=False)
            assert answer.status_code == 200
        # The login is lost (grant revoked at the provider, tokens refused): a 502 that
        # says what to run, never a fallback to the public index's decoy.
        tokens = _stored_tokens(crane)
        httpx.post(
            short_stack.revocation_url,
            data={"token": tokens["refresh_token"], "client_id": short_stack.client_id},
            trust_env=False,
        ).raise_for_status()
        short_stack.gate.revoked_tokens = {tokens["access_token"]}
        time.sleep(short_stack.access_ttl + 0.5)
        answer = httpx.get(served.url + "decoy-pkg/", trust_env=False)
        assert answer.status_code == 502
        assert f"run `crane login {short_stack.private_url}`" in answer.text
    finally:
        short_stack.gate.reset()
        code = served.stop()
    assert code == 0
    assert f"run `crane login {short_stack.private_url}`" in served.stderr


def test_first_use_logs_in_then_installs_outside_ci(stack, crane, tmp_path):
    """No terminal, not CI (a notebook cell, an IDE console): print the code and wait."""
    crane.register(stack, None, "--public-index", stack.public_url)
    env = {k: v for k, v in crane.env.items() if k != "CI"}
    target = tmp_path / "target"
    result = crane.with_user(
        stack,
        ["pip", "install", "--target", str(target), "-i", stack.private_url, "decoy-pkg"],
        env=env,
    )
    assert result.code == 0, result.stderr
    assert f"crane: to log in to {stack.private_url}, open " in result.stderr
    assert origins(target) == {"decoy-pkg": "private"}
    # Cached afterwards: the next run needs no login at all, even in CI.
    again = crane.run(
        "pip", "install", "--target", str(tmp_path / "again"), "-i", stack.private_url,
        "decoy-pkg",
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert "to log in" not in again.stderr


def test_a_needed_login_in_ci_fails_before_running_pip(stack, crane, tmp_path):
    crane.register(stack, None, "--public-index", stack.public_url)
    result = crane.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "x"
    )
    assert result.code == 4
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith(
        f"crane: {stack.private_url}: not logged in; run `crane login {stack.private_url}`; "
        "the device flow needs a person at a terminal; in CI, "
    )
    for what_works in ("--auth client-credentials", "CRANE_AUTH=client-credentials", "CRANE_TOKEN"):
        assert what_works in line


def test_pip_lock_records_the_real_index_urls(stack, logged_in):
    result = logged_in.run("pip", "lock", "-i", stack.private_url, "crane-private-app", "decoy-pkg")
    assert result.code == 0, result.stderr
    lock = (logged_in.cwd / "pylock.toml").read_text()
    private_origin = stack.private_url.removesuffix("/simple/")
    public_origin = stack.public_url.removesuffix("/simple/")
    urls = {line for line in lock.splitlines() if line.startswith("url = ")}
    assert urls == {
        f'url = "{private_origin}/packages/crane_private_app-1.0-py3-none-any.whl"',
        f'url = "{private_origin}/packages/decoy_pkg-1.0-py3-none-any.whl"',
        f'url = "{public_origin}/packages/public_only_dep-1.0-py3-none-any.whl"',
    }


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_an_index_that_answers_with_a_login_page_proves_nothing(stack, logged_in, tmp_path, tool):
    # Seen: a root that redirects to a sign-in form, and project pages that answer 404 to
    # a token the index rejects: every private project came from the public index.
    stack.gate.mode = "login"
    try:
        target = tmp_path / "target"
        args = ["install", "--target", str(target), "-i", stack.private_url, "decoy-pkg"]
        if tool == "uv":
            result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
        else:
            result = logged_in.run("pip", *args)
    finally:
        stack.gate.reset()
    assert result.code == 5, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("crane: ")]
    assert "answered 302 to an authenticated request (a redirect to " in line, line
    assert line.endswith("crane cannot prove that the index accepts its login"), line
    assert not (target / "decoy_pkg").exists()


def test_crane_serve_never_dumps_core(stack, logged_in, tmp_path):
    # Seen: with `ulimit -c unlimited`, SIGQUIT to crane serve wrote a core file holding
    # the access token, the refresh token and the door's secret.
    import resource

    def unlimited() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.Popen(
        [*CRANE, "serve", stack.private_url],
        env=logged_in.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=unlimited,  # noqa: PLW1509 - the test's own child, no threads involved
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core"))
        assert core.split()[4:6] == ["0", "0"], core
        proc.send_signal(signal.SIGQUIT)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp_path.glob("core*"))


def test_a_crane_killed_outright_leaves_neither_its_child_nor_its_files(stack, logged_in, tmp_path):
    # SIGKILL gives crane no teardown: the kernel's parent-death signal stops pip, and the
    # next run removes the per-run folder (the CA bundle) the killed one left.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    logged_in.env["TMPDIR"] = str(scratch)
    proc = _slow_install(stack, logged_in, tmp_path)
    try:
        pip = _wait_for_child(proc, "pip")
        left = list(scratch.glob(f"crane-run-{proc.pid}-*"))
        assert left, list(scratch.iterdir())
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while pip.is_running() and pip.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "pip kept running against a dead proxy"
            time.sleep(0.05)
    finally:
        stack.gate.reset()
    assert all(path.exists() for path in left)
    again = logged_in.run(
        "pip", "install", "--no-deps", "--target", str(tmp_path / "t2"), "-i", stack.private_url,
        "decoy-pkg",
    )  # fmt: skip
    assert again.code == 0, again.stderr
    assert not any(path.exists() for path in left)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_project_page_that_is_a_sign_in_form_is_an_error(stack, logged_in, tmp_path, tool):
    # Not an empty project (pip would say "no matching distribution"), and never a reason
    # to ask the public index.
    stack.gate.mode = "project-login"
    try:
        args = ["install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "decoy-pkg"]
        if tool == "uv":
            result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
        else:
            result = logged_in.run("pip", *args)
    finally:
        stack.gate.reset()
    assert result.code != 0
    assert "answered 200 for decoy-pkg with a page with a form (a login page?)" in (
        result.stdout + result.stderr
    )
    assert not (tmp_path / "t" / "decoy_pkg").exists()
