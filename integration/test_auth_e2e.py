"""crane's authentication against the real identity provider (oidc-provider)."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from harness import PROMPT_LINE


def _token_file(crane_home: str) -> Path:
    files = [p for p in (Path(crane_home) / "state" / "tokens").glob("*.json")]
    assert len(files) == 1, files
    return files[0]


def test_login_status_logout(stack, crane, tool_env):
    crane.register(stack)
    mark = stack.event_mark()
    result = crane.login(stack)
    assert result.code == 0, result.stderr
    prompts = [PROMPT_LINE.match(line) for line in result.stderr.splitlines()]
    assert any(prompts), result.stderr
    assert "crane: logged in to " + stack.private_url in result.stderr

    path = _token_file(tool_env["CRANE_HOME"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    refresh_token = stored["refresh_token"]
    # The token works at the real gate.
    answer = httpx.get(
        stack.private_url,
        headers={"Authorization": f"Bearer {stored['access_token']}"},
        trust_env=False,
    )
    assert answer.status_code == 200

    status = crane.run("status")
    assert status.code == 0
    assert "logged in:             yes" in status.stdout
    expiry = r"access token expires:  \d{4}-\d\d-\d\d .* UTC \(in \d+ (s|min)\)"
    assert re.search(expiry, status.stdout)
    # oidc-provider sends no refresh_expires_in: crane says so rather than guessing.
    assert "refresh token expires: unknown" in status.stdout
    assert stored["access_token"] not in status.stdout + status.stderr

    listing = crane.run("index", "list")
    assert f"{stack.private_url}\tdevice\tlogged in" in listing.stdout

    out = crane.run("logout", stack.private_url)
    assert out.code == 0, out.stderr
    # oidc-provider's access tokens are JWTs: it answers 200 to their revocation but cannot
    # revoke them, so crane says how long the access token stays valid.
    assert (
        "refresh token revoked; the access token is self-contained (a JWT) and stays "
        "valid until it expires, "
    ) in out.stderr
    assert stack.wait_for_event("token.revoked", start=mark)
    assert not path.exists()
    assert "logged in:             no" in crane.run("status").stdout
    # Revoked at the provider: the old refresh token is dead.
    assert stack.refresh(refresh_token).status_code == 400


def test_register_by_discovery_then_login(stack, crane, tool_env):
    result = crane.run(
        "index",
        "register",
        stack.private_url.rstrip("/").replace("http://", "HTTP://"),
        "--client-id",
        stack.client_id,
        "--issuer",
        stack.issuer,
        "--scope",
        stack.scopes,
    )
    assert result.code == 0, result.stderr
    registry = json.loads((Path(tool_env["CRANE_HOME"]) / "config" / "indexes.json").read_text())
    (entry,) = registry["indexes"]
    assert entry["url"] == stack.private_url
    assert entry["token_url"] == stack.token_url
    assert entry["device_url"] == stack.device_url
    assert entry["revocation_url"] == stack.revocation_url
    assert crane.login(stack).code == 0
    # Registering again updates in place: still one index, login kept.
    again = crane.run("index", "register", stack.private_url, "--public-index", stack.public_url)
    assert again.code == 0, again.stderr
    assert "updated" in again.stderr
    assert "logged in:             yes" in crane.run("status").stdout


def test_denied_login_fails_with_auth_exit_code(stack, crane):
    crane.register(stack)
    result = crane.with_user(stack, ["login", stack.private_url, "--no-browser"], deny=True)
    assert result.code == 4
    assert "denied" in result.stderr
    assert "Traceback" not in result.stderr


_API_SCRIPT = textwrap.dedent(
    """
    import sys, time, pathlib, httpx
    from crane_launch.auth import Credentials, TokenStore
    from crane_launch.config import Registry
    go = pathlib.Path(sys.argv[1])
    index = Registry.load().get(sys.argv[2])
    while not go.exists():
        time.sleep(0.005)
    token = Credentials(index, TokenStore(), skew=1.0).access_token()
    answer = httpx.get(sys.argv[2], headers={"Authorization": "Bearer " + token}, trust_env=False)
    print(answer.status_code)
    """
)


def _logged_in(short_stack, crane) -> Path:
    crane.register(short_stack)
    result = crane.login(short_stack)
    assert result.code == 0, result.stderr
    return _token_file(crane.env["CRANE_HOME"])


def test_expired_access_token_is_refreshed(short_stack, crane, monkeypatch):
    path = _logged_in(short_stack, crane)
    before = json.loads(path.read_text())
    mark = short_stack.event_mark()
    time.sleep(short_stack.access_ttl + 0.5)
    monkeypatch.setenv("CRANE_HOME", crane.env["CRANE_HOME"])
    from crane_launch.auth import Credentials, TokenStore
    from crane_launch.config import Registry

    index = Registry.load().get(short_stack.private_url)
    token = Credentials(index, TokenStore(), skew=1.0).access_token()
    after = json.loads(path.read_text())
    assert token == after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated and persisted
    assert short_stack.wait_for_event("token.issued refresh_token", start=mark)
    answer = httpx.get(
        short_stack.private_url, headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )
    assert answer.status_code == 200


def test_eight_processes_refresh_once_without_revoking_the_grant(short_stack, crane, tmp_path):
    path = _logged_in(short_stack, crane)
    time.sleep(short_stack.access_ttl + 0.5)  # every process now needs a refresh
    mark = short_stack.event_mark()
    go = tmp_path / "go"
    script = tmp_path / "need_token.py"
    script.write_text(_API_SCRIPT)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), short_stack.private_url],
            env=crane.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)  # let all eight reach the barrier
    go.touch()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert [out.strip() for out, _ in results] == ["200"] * 8, results
    assert short_stack.wait_for_event("token.issued refresh_token", start=mark)
    time.sleep(0.5)  # event lines may trail the HTTP responses
    refreshes = [
        line
        for line in short_stack.idp.lines[mark:]
        if line.startswith("EVENT token.issued refresh_token")
    ]
    # Serialised under the lock: the first refreshes, the others re-read its result.
    assert 1 <= len(refreshes) < 8, refreshes
    assert not short_stack.wait_for_event("grant.revoked", timeout=1.0, start=mark)
    assert not short_stack.wait_for_event("refresh_token.reused", timeout=0.1, start=mark)
    # The grant is alive: the newest refresh token still works at the provider.
    newest = json.loads(path.read_text())["refresh_token"]
    assert short_stack.refresh(newest).status_code == 200


def test_a_needed_login_fails_at_once_in_ci(stack, crane):
    crane.register(stack)
    started = time.monotonic()
    result = crane.run("serve", stack.private_url)
    assert time.monotonic() - started < 10
    assert result.code == 4, result.stderr
    assert f"run `crane login {stack.private_url}`" in result.stderr
    assert "Traceback" not in result.stderr


def test_verbose_shows_the_refresh_and_never_a_token(short_stack, crane, tmp_path):
    # -v configures the whole crane_launch logger tree: the auth package's refresh line
    # shows, and no token text reaches the terminal (the formatter redacts every line).
    path = _logged_in(short_stack, crane)
    before = json.loads(path.read_text())
    time.sleep(short_stack.access_ttl + 0.5)
    result = crane.run(
        "-v", "pip", "install", "--no-deps", "--target", str(tmp_path / "t"),
        "-i", short_stack.private_url, "decoy-pkg",  # private: no public index is asked
    )  # fmt: skip
    assert result.code == 0, result.stderr
    after = json.loads(path.read_text())
    assert after["access_token"] != before["access_token"]
    assert "refreshing the login at" in result.stderr
    assert "refreshed the login" in result.stderr
    for secret in (
        before["access_token"],
        before["refresh_token"],
        after["access_token"],
        after["refresh_token"],
    ):
        assert secret not in result.stderr
        assert secret not in result.stdout


def test_a_refresh_that_cannot_be_saved_does_not_lose_the_login(short_stack, crane, tmp_path):
    # Seen: disk full during a due refresh; that run failed, and every later run said the
    # login had expired (the provider had rotated the only valid refresh token).
    chattr = shutil.which("chattr")
    assert chattr is not None, "chattr (e2fsprogs) makes a directory unwritable even for root"
    path = _logged_in(short_stack, crane)
    before = json.loads(path.read_text())
    time.sleep(short_stack.access_ttl + 0.5)  # the next run must refresh
    mark = short_stack.event_mark()
    install = [
        "pip", "install", "--no-deps", "--target", str(tmp_path / "t"),
        "-i", short_stack.private_url, "decoy-pkg",
    ]  # fmt: skip
    subprocess.run([chattr, "+i", str(path.parent)], check=True)
    try:
        refused = crane.run(*install)
    finally:
        subprocess.run([chattr, "-i", str(path.parent)], check=True)
    assert refused.code == 3, refused.stderr
    assert f"{path}: cannot be written (" in refused.stderr
    assert "the login was not refreshed, so it is kept" in refused.stderr
    assert json.loads(path.read_text()) == before
    assert not short_stack.wait_for_event("token.issued refresh_token", timeout=0.5, start=mark)

    again = crane.run(*install)  # the kept refresh token still works
    assert again.code == 0, again.stderr
    assert json.loads(path.read_text())["refresh_token"] != before["refresh_token"]
    assert not short_stack.wait_for_event("grant.revoked", timeout=0.5, start=mark)
