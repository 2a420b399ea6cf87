"""crane against a second identity provider: django-oauth-toolkit (DOT) 3.4.

DOT differs from oidc-provider where crane must not assume: its access tokens are opaque
(the gate asks DOT's introspection endpoint about every request, so a revocation counts
at once), its metadata lists the device grant but not its endpoint, it offers only the
scopes it is configured with (here ``index:read``: no ``openid``, no ``offline_access``),
it checks the scopes of a device login only after the user approved it, it sends no
``verification_uri_complete`` (the user types the code), and it authenticates
confidential clients at every endpoint. Refresh tokens rotate, and a rotated one
presented again revokes the whole family.

Module-scoped: one DOT (access tokens live 300 s) with an ``IntrospectionGate`` in front
of the session's private pypiserver; a second DOT with 3-second access tokens for the
refresh test. DOT that cannot start fails the tests with its output; it never skips.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import CRANE, PROMPT_LINE, Result, credentialed, origins, uv_env
from stack.dot_user import complete_device_flow, deny_device_flow
from stack.dotidp.introspection_gate import IntrospectionGate
from stack.dotidp.launch import (
    CLIENT_CREDENTIALS_CLIENT,
    CONFIDENTIAL_DEVICE_CLIENT,
    GATE_CLIENT,
    PUBLIC_DEVICE_CLIENT,
    DotIdP,
    start_dot,
)
from stack.servers import StackError

EXPECTED = {"crane-private-app": "private", "public-only-dep": "public", "decoy-pkg": "private"}
SCOPE = "index:read"


@dataclass
class DotStack:
    idp: DotIdP
    gate: IntrospectionGate
    private_url: str  # the gate
    public_url: str


def _start(indexes: dict, access_ttl: int):
    try:
        idp = start_dot(access_ttl=access_ttl)
    except StackError as exc:
        pytest.fail(f"django-oauth-toolkit did not start: {exc}", pytrace=False)
    gate = IntrospectionGate(
        indexes["private_upstream"],
        idp.issuer,
        idp.introspection_url,
        GATE_CLIENT,
        idp.secret(GATE_CLIENT),
    )
    private_url = gate.start()
    return DotStack(idp, gate, private_url, indexes["public_url"])


@pytest.fixture(scope="module")
def dot(_indexes, announce):
    announce("starting django-oauth-toolkit and a bearer gate that introspects its tokens")
    stack = _start(_indexes, access_ttl=300)
    announce(f"django-oauth-toolkit up in {stack.idp.startup_seconds:.2f} s: {stack.idp.issuer}")
    try:
        yield stack
    finally:
        stack.gate.stop()
        stack.idp.stop()


@pytest.fixture(scope="module")
def short_dot(_indexes):
    stack = _start(_indexes, access_ttl=3)
    try:
        yield stack
    finally:
        stack.gate.stop()
        stack.idp.stop()


@pytest.fixture
def gate(dot):
    dot.gate.reset()
    dot.gate.clear()
    dot.gate.introspections = 0
    yield dot.gate
    dot.gate.reset()


# -- helpers ---------------------------------------------------------------------------------


def register(crane, url: str, *args: str) -> Result:
    result = crane.run("index", "register", url, *args)
    assert result.code == 0, result.stderr
    return result


def register_device(crane, dot: DotStack, *extra: str, client_id: str = PUBLIC_DEVICE_CLIENT):
    """The flag form with explicit endpoints: DOT's metadata names no device endpoint."""
    return register(
        crane, dot.private_url,
        "--client-id", client_id,
        "--token-url", dot.idp.token_url,
        "--device-url", dot.idp.device_url,
        "--revocation-url", dot.idp.revocation_url,
        "--public-index", dot.public_url,
        *extra,
    )  # fmt: skip


@dataclass
class UserRun:
    result: Result
    prompts: list[tuple[str, str]]  # (verification_uri, user_code) as crane printed them


def with_user(
    crane,
    idp: DotIdP,
    args: Sequence[str],
    *,
    deny: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> UserRun:
    """Run crane; whenever it prints `open URI and enter the code CODE`, sign in to DOT
    and approve (or deny) that code, as a person at a browser would."""
    proc = subprocess.Popen(
        [*CRANE, *args],
        env=env or crane.env,
        cwd=crane.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    err_lines: list[str] = []
    out_chunks: list[str] = []
    prompts: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            match = PROMPT_LINE.match(line.rstrip("\n"))
            if match is None:
                continue
            prompts.append((match.group(2), match.group(3)))
            act = deny_device_flow if deny else complete_device_flow
            try:
                act(match.group(2), match.group(3), username=idp.user, password=idp.password)
            except BaseException as exc:
                failures.append(exc)

    def read_stdout() -> None:
        assert proc.stdout is not None
        out_chunks.append(proc.stdout.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stderr, read_stdout)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    for reader in readers:
        reader.join(10)
    if failures:
        raise failures[0]
    return UserRun(Result(proc.returncode, "".join(out_chunks), "".join(err_lines)), prompts)


def login(crane, dot: DotStack, *, env: dict[str, str] | None = None) -> UserRun:
    run = with_user(crane, dot.idp, ["login", dot.private_url, "--no-browser"], env=env)
    assert run.result.code == 0, run.result.stderr
    assert run.prompts, run.result.stderr
    return run


def token_files(crane) -> list[Path]:
    return sorted((Path(crane.env["CRANE_HOME"]) / "state" / "tokens").glob("*.json"))


def stored_tokens(crane) -> dict:
    (path,) = token_files(crane)
    return json.loads(path.read_text())


def pip_install(crane, url: str, target: Path, *names: str, env=None) -> Result:
    return crane.run("pip", "install", "--target", str(target), "-i", url, *names, env=env)


def assert_installed_private_first(result: Result, target: Path) -> None:
    assert result.code == 0, result.stderr
    assert origins(target) == EXPECTED, result.stderr


# -- DOT itself, as crane meets it -------------------------------------------------------------


def test_dot_metadata_lists_the_device_grant_but_not_its_endpoint(dot):
    """The facts the discovery and scope tests below rely on, read from DOT itself."""
    rfc8414, oidc = dot.idp.metadata, dot.idp.discovery
    assert rfc8414["issuer"] == oidc["issuer"] == dot.idp.issuer
    assert "urn:ietf:params:oauth:grant-type:device_code" in rfc8414["grant_types_supported"]
    assert "device_authorization_endpoint" not in rfc8414
    assert "device_authorization_endpoint" not in oidc
    # The OpenID document (the one crane reads first) lists no grant types at all.
    assert "grant_types_supported" not in oidc
    assert rfc8414["scopes_supported"] == oidc["scopes_supported"] == [SCOPE]
    assert rfc8414["token_endpoint"] == oidc["token_endpoint"] == dot.idp.token_url
    assert rfc8414["introspection_endpoint"] == dot.idp.introspection_url
    # The device endpoint answers at the URL the tests register (DOT's own route).
    answer = httpx.post(
        dot.idp.device_url, data={"client_id": PUBLIC_DEVICE_CLIENT}, trust_env=False
    )
    assert answer.status_code == 200, answer.text
    assert "verification_uri_complete" not in answer.json()


# -- the device flow -------------------------------------------------------------------------


def test_device_login_then_pip_and_uv_install_private_first(dot, gate, crane, tmp_path):
    register_device(crane, dot, "--scope", SCOPE)
    run = login(crane, dot)
    # DOT sends no verification_uri_complete: crane says where to go and what to type.
    assert run.prompts == [(dot.idp.verification_uri, run.prompts[0][1])]
    assert "crane: or open" not in run.result.stderr
    tokens = stored_tokens(crane)
    assert dot.idp.introspect(tokens["access_token"])["username"] == dot.idp.user

    target = tmp_path / "pip"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg")
    assert_installed_private_first(result, target)

    target = tmp_path / "uv"
    result = crane.run(
        "uv", "pip", "install", "--target", str(target), "-i", dot.private_url,
        "crane-private-app", "decoy-pkg",
        env=uv_env(crane.env),
    )  # fmt: skip
    assert_installed_private_first(result, target)

    # Every request crane sent the private index carried a token DOT vouched for.
    records = credentialed(gate.records(), "/simple/")
    assert records
    assert all(r.auth_ok and r.subject == dot.idp.user for r in records), records
    assert gate.introspections >= len(records)


def test_refresh_after_expiry_needs_no_new_login(short_dot, crane, tmp_path):
    # crane-pip's positional form: URL CLIENT_ID TOKEN_URL DEVICE_URL
    register(
        crane, short_dot.private_url,
        PUBLIC_DEVICE_CLIENT, short_dot.idp.token_url, short_dot.idp.device_url,
        "--scope", SCOPE, "--public-index", short_dot.public_url,
    )  # fmt: skip
    login(crane, short_dot)
    first = stored_tokens(crane)
    result = pip_install(crane, short_dot.private_url, tmp_path / "one", "decoy-pkg")
    assert result.code == 0, result.stderr
    time.sleep(short_dot.idp.access_ttl + 0.5)
    # DOT has let the first access token expire: the gate hears so from DOT.
    assert short_dot.idp.introspect(first["access_token"]) == {"active": False}

    target = tmp_path / "two"
    result = pip_install(
        crane, short_dot.private_url, target, "crane-private-app", "decoy-pkg"
    )  # CI=true: a login would fail at once; crane must refresh instead
    assert_installed_private_first(result, target)
    assert "to log in to" not in result.stderr
    after = stored_tokens(crane)
    # DOT rotates refresh tokens: crane kept the newest, and it is live.
    assert after["refresh_token"] != first["refresh_token"]
    assert after["access_token"] != first["access_token"]
    # The newest refresh token still works: crane never presented a rotated one again
    # (DOT would have revoked the whole family). Use it the way crane would.
    answer = httpx.post(
        short_dot.idp.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": after["refresh_token"],
            "client_id": PUBLIC_DEVICE_CLIENT,
        },
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text


def test_a_denied_login_fails_with_the_auth_exit_code(dot, crane):
    register_device(crane, dot, "--scope", SCOPE)
    run = with_user(crane, dot.idp, ["login", dot.private_url, "--no-browser"], deny=True)
    assert run.result.code == 4, run.result.stderr
    assert "denied" in run.result.stderr
    assert "Traceback" not in run.result.stderr
    assert token_files(crane) == []


# -- discovery -------------------------------------------------------------------------------


def test_issuer_discovery_names_the_missing_device_endpoint(dot, crane):
    result = crane.run(
        "index", "register", dot.private_url,
        "--client-id", PUBLIC_DEVICE_CLIENT, "--issuer", dot.idp.issuer, "--scope", SCOPE,
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "device_authorization_endpoint" in result.stderr
    assert "--device-url" in result.stderr
    assert "Traceback" not in result.stderr
    assert crane.run("index", "list").stdout.strip() == ""


def test_issuer_discovery_with_a_device_url_registers_and_works(dot, gate, crane, tmp_path):
    register(
        crane, dot.private_url,
        "--client-id", PUBLIC_DEVICE_CLIENT,
        "--issuer", dot.idp.issuer,
        "--device-url", dot.idp.device_url,
        "--scope", SCOPE,
        "--public-index", dot.public_url,
    )  # fmt: skip
    registry = json.loads((Path(crane.env["CRANE_HOME"]) / "config" / "indexes.json").read_text())
    (entry,) = registry["indexes"]
    assert entry["token_url"] == dot.idp.token_url  # from discovery
    assert entry["device_url"] == dot.idp.device_url  # from --device-url
    # DOT's OIDC document names no revocation endpoint; its RFC 8414 document does.
    assert entry["revocation_url"].endswith("/o/revoke_token/")
    login(crane, dot)
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg")
    assert_installed_private_first(result, target)


# -- scopes ----------------------------------------------------------------------------------


def test_default_scopes_are_refused_at_issuer_registration(dot, crane):
    """DOT lists `scopes_supported: ["index:read"]`: crane's default `openid offline_access`
    cannot be granted, and registration says so before anyone logs in."""
    result = crane.run(
        "index", "register", dot.private_url,
        "--client-id", PUBLIC_DEVICE_CLIENT,
        "--issuer", dot.idp.issuer,
        "--device-url", dot.idp.device_url,
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "--scope" in result.stderr
    assert "offline_access" in result.stderr
    assert "Traceback" not in result.stderr
    assert crane.run("index", "list").stdout.strip() == ""


def test_default_scopes_fail_the_login_naming_scope(dot, crane):
    """With explicit endpoints crane cannot know DOT's scopes. DOT accepts any scope at
    its device endpoint and refuses it only at the first poll after the user approved
    (`invalid_scope`): the login fails there, with the auth exit code, naming the scopes
    crane asked for and `--scope`, and stores nothing."""
    register_device(crane, dot)  # no --scope: openid offline_access
    run = with_user(crane, dot.idp, ["login", dot.private_url, "--no-browser"])
    assert run.result.code == 4, run.result.stderr
    assert "invalid_scope" in run.result.stderr
    assert "openid offline_access" in run.result.stderr
    assert "--scope" in run.result.stderr
    assert "Traceback" not in run.result.stderr
    assert token_files(crane) == []


# -- confidential clients ----------------------------------------------------------------------


def test_confidential_device_client_logs_in_and_installs(dot, gate, crane, tmp_path):
    env = {**crane.env, "DOT_DEVICE_SECRET": dot.idp.secret(CONFIDENTIAL_DEVICE_CLIENT)}
    result = crane.run(
        "index", "register", dot.private_url,
        "--client-id", CONFIDENTIAL_DEVICE_CLIENT,
        "--client-secret-env", "DOT_DEVICE_SECRET",
        "--token-url", dot.idp.token_url,
        "--device-url", dot.idp.device_url,
        "--scope", SCOPE,
        "--public-index", dot.public_url,
        env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    run = with_user(crane, dot.idp, ["login", dot.private_url, "--no-browser"], env=env)
    assert run.result.code == 0, run.result.stderr
    tokens = stored_tokens(crane)
    assert dot.idp.introspect(tokens["access_token"])["client_id"] == CONFIDENTIAL_DEVICE_CLIENT
    assert env["DOT_DEVICE_SECRET"] not in json.dumps(tokens)
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg", env=env)
    assert_installed_private_first(result, target)
    assert env["DOT_DEVICE_SECRET"] not in result.stderr + result.stdout


def test_confidential_device_client_without_its_secret_is_refused(dot, crane):
    env = {**crane.env, "DOT_DEVICE_SECRET": "not-the-secret"}
    result = crane.run(
        "index", "register", dot.private_url,
        "--client-id", CONFIDENTIAL_DEVICE_CLIENT,
        "--client-secret-env", "DOT_DEVICE_SECRET",
        "--token-url", dot.idp.token_url,
        "--device-url", dot.idp.device_url,
        "--scope", SCOPE,
        env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    run = with_user(crane, dot.idp, ["login", dot.private_url, "--no-browser"], env=env)
    assert run.result.code == 4, run.result.stderr
    assert run.prompts == []  # refused at the device endpoint, before any browser step
    assert "invalid_client" in run.result.stderr
    assert "not-the-secret" not in run.result.stderr
    assert token_files(crane) == []


# -- client credentials ------------------------------------------------------------------------


def _register_client_credentials(crane, dot: DotStack) -> None:
    register(
        crane, dot.private_url,
        "--auth", "client-credentials",
        "--client-id", CLIENT_CREDENTIALS_CLIENT,
        "--client-secret-env", "DOT_CI_SECRET",
        "--token-url", dot.idp.token_url,
        "--scope", SCOPE,
        "--public-index", dot.public_url,
    )  # fmt: skip


def test_client_credentials_install_without_any_login(dot, gate, crane, tmp_path):
    _register_client_credentials(crane, dot)
    secret = dot.idp.secret(CLIENT_CREDENTIALS_CLIENT)
    env = {**crane.env, "DOT_CI_SECRET": secret}
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg", env=env)
    assert_installed_private_first(result, target)
    assert "to log in to" not in result.stderr
    assert secret not in result.stderr + result.stdout
    records = credentialed(gate.records(), "/simple/")
    assert records
    assert all(r.auth_ok and r.subject == CLIENT_CREDENTIALS_CLIENT for r in records), records


def test_client_credentials_with_a_wrong_secret_never_fall_back(dot, gate, crane, tmp_path):
    _register_client_credentials(crane, dot)
    env = {**crane.env, "DOT_CI_SECRET": "not-the-secret"}
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg", env=env)
    assert result.code == 4, result.stderr
    assert "invalid_client" in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert origins(target) == {}  # above all, no decoy-pkg 99.0 from the public index
    assert all(not r.auth_ok for r in gate.records())


def test_client_credentials_from_the_environment_alone(dot, gate, crane, tmp_path):
    secret = dot.idp.secret(CLIENT_CREDENTIALS_CLIENT)
    env = {
        **crane.env,
        "CRANE_INDEX_URL": dot.private_url,
        "CRANE_AUTH": "client-credentials",
        "CRANE_CLIENT_ID": CLIENT_CREDENTIALS_CLIENT,
        "CRANE_CLIENT_SECRET": secret,
        "CRANE_TOKEN_URL": dot.idp.token_url,
        "CRANE_SCOPE": SCOPE,
        "CRANE_PUBLIC_INDEX": dot.public_url,
    }
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "crane-private-app", "decoy-pkg", env=env)
    assert_installed_private_first(result, target)
    assert secret not in result.stderr + result.stdout
    assert crane.run("index", "list").stdout.strip() == ""  # nothing was registered
    assert {r.subject for r in credentialed(gate.records(), "/simple/")} == {
        CLIENT_CREDENTIALS_CLIENT
    }


# -- revocation: a refused token never falls back ---------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_a_revoked_token_fails_with_exit_4_and_never_falls_back(dot, gate, crane, tmp_path, which):
    """Revoking either token at DOT ends the login: the refresh token's revocation takes its
    access token along, and an access token's revocation (DOT deletes it) orphans its
    refresh token, which DOT then refuses. The gate hears `inactive` from DOT, crane tries
    one refresh, is refused, and pip gets nothing, not even decoy-pkg from the public index."""
    register_device(crane, dot, "--scope", SCOPE)
    login(crane, dot)
    tokens = stored_tokens(crane)
    revoked = dot.idp.revoke(tokens[which])
    assert revoked.status_code == 200, revoked.text
    assert dot.idp.introspect(tokens["access_token"]) == {"active": False}

    mark = dot.idp.proc.mark()
    target = tmp_path / "t"
    result = pip_install(crane, dot.private_url, target, "decoy-pkg")
    assert result.code == 4, result.stderr
    assert "invalid_grant" in result.stderr
    assert f"run `crane login {dot.private_url}`" in result.stderr
    assert "Traceback" not in result.stderr
    assert origins(target) == {}
    records = gate.records()
    assert records
    assert all(not r.auth_ok and r.reason == "inactive" for r in records), records
    # One refresh attempt, refused; no retry loop against the identity provider. (DOT logs
    # a request after answering it: wait for the line, then give a second one a moment.)
    assert dot.idp.proc.wait_for_line(lambda line: '"POST /o/token/' in line, start=mark)
    time.sleep(0.3)
    token_posts = [line for line in dot.idp.proc.lines[mark:] if '"POST /o/token/' in line]
    assert len(token_posts) == 1, token_posts
    assert '" 400 ' in token_posts[0]


def test_logout_revokes_both_tokens_at_dot(dot, gate, crane):
    """DOT's tokens are opaque and stored: unlike a JWT, a revoked access token stops
    working at once, and crane says both tokens were revoked."""
    register_device(crane, dot, "--scope", SCOPE)
    login(crane, dot)
    tokens = stored_tokens(crane)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(dot.private_url, headers=bearer, trust_env=False).status_code == 200
    result = crane.run("logout", dot.private_url)
    assert result.code == 0, result.stderr
    assert "(tokens revoked)" in result.stderr
    assert "self-contained" not in result.stderr
    assert token_files(crane) == []
    assert dot.idp.introspect(tokens["access_token"]) == {"active": False}
    assert httpx.get(dot.private_url, headers=bearer, trust_env=False).status_code == 401
    refresh = httpx.post(
        dot.idp.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": PUBLIC_DEVICE_CLIENT,
        },
        trust_env=False,
    )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"
