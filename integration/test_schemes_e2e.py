"""crane's authentication schemes end to end: OAuth 2.0 client credentials, a static bearer
token, HTTP Basic and a confidential device-flow client, each registered or described for
one run by the ``CRANE_*`` variables; real pip and uv, the real IdP (idp.mjs: clients
``crane-ci`` and ``crane-test-confidential``) and the session's gate (its ``static_tokens``
and ``basic_users`` knobs play an index that takes a personal token or a password).

Every scheme must keep the routing rules (private first, the decoy never taken from the
public index), turn every authentication failure into exit 4 without falling back, and
keep its secret out of crane's output (with ``-v``), out of the registry, out of the
child's environment and out of every file but the 0600 store.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import stat
import subprocess
import termios
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import CRANE, PACKAGES, Crane, Result, origins, uv_env

EXPECTED = {"crane-private-app": "private", "public-only-dep": "public", "decoy-pkg": "private"}
CI_SCOPE = "index:read"
USERNAME = "ci-user"

# The variables an index registered here reads its secret from (not CRANE_*: a user's own).
SECRET_VARIABLE = {
    "client-credentials": "CI_INDEX_CLIENT_SECRET",
    "token": "CI_INDEX_TOKEN",
    "basic": "CI_INDEX_PASSWORD",
}
ENVIRONMENT_SECRET = {
    "client-credentials": "CRANE_CLIENT_SECRET",
    "token": "CRANE_TOKEN",
    "basic": "CRANE_PASSWORD",
}


# -- helpers -----------------------------------------------------------------------------


def venv_origins(venv: Path) -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        inits = list(venv.glob(f"lib/python*/site-packages/{name.replace('-', '_')}/__init__.py"))
        if inits:
            found[name] = "private" if "ORIGIN = 'private'" in inits[0].read_text() else "public"
    return found


def install(
    crane: Crane,
    url: str,
    target: Path,
    *requirements: str,
    tool: str = "pip",
    env: dict[str, str] | None = None,
) -> Result:
    """``crane -v <tool> install --target T -i URL ...`` (the private app and the decoy)."""
    env = env or crane.env
    argv = ["install", "--target", str(target), "-i", url]
    argv += list(requirements or ("crane-private-app", "decoy-pkg"))
    if tool == "uv":
        return crane.run("-v", "uv", "pip", *argv, env=uv_env(env))
    return crane.run("-v", "pip", *argv, env=env)


def register(crane: Crane, stack, url: str, *args: str, env: dict[str, str] | None = None):
    result = crane.run("index", "register", url, *args, "--public-index", stack.public_url, env=env)
    assert result.code == 0, result.stderr
    return result


def cc_args(stack, how: str = "token-url") -> list[str]:
    args = ["--auth", "client-credentials", "--client-id", stack.ci_client_id]
    args += ["--client-secret-env", SECRET_VARIABLE["client-credentials"], "--scope", CI_SCOPE]
    if how == "issuer":
        return [*args, "--issuer", stack.issuer, "--resource", stack.audience]
    return [*args, "--token-url", stack.token_url]


def scheme_args(stack, scheme: str) -> list[str]:
    if scheme == "client-credentials":
        return cc_args(stack)
    if scheme == "token":
        return ["--auth", "token", "--token-env", SECRET_VARIABLE["token"]]
    return ["--auth", "basic", "--username", USERNAME, "--password-env", SECRET_VARIABLE["basic"]]


@contextlib.contextmanager
def index_takes(stack, scheme: str, secret: str):
    """The gate, for the test's duration, as an index of ``scheme`` that takes ``secret``
    (client credentials: the IdP's JWTs, as always)."""
    try:
        if scheme == "token":
            stack.gate.static_tokens = {secret}
        elif scheme == "basic":
            stack.gate.basic_users = {USERNAME: secret}
        stack.gate.clear()
        yield stack.gate
    finally:
        stack.gate.reset()


def good_secret(stack, scheme: str) -> str:
    if scheme == "client-credentials":
        return stack.ci_client_secret
    return f"{scheme}-{os.urandom(12).hex()}"


def environment_index(stack, scheme: str, secret: str, *, how: str = "token-url") -> dict:
    """The CRANE_* variables that describe the private index for one run."""
    env = {
        "CRANE_INDEX_URL": stack.private_url,
        "CRANE_AUTH": scheme,
        "CRANE_PUBLIC_INDEX": stack.public_url,
    }
    if scheme == "client-credentials":
        env.update(
            CRANE_CLIENT_ID=stack.ci_client_id, CRANE_CLIENT_SECRET=secret, CRANE_SCOPE=CI_SCOPE
        )
        if how == "issuer":
            env.update(CRANE_ISSUER=stack.issuer, CRANE_RESOURCE=stack.audience)
        else:
            env["CRANE_TOKEN_URL"] = stack.token_url
    elif scheme == "token":
        env["CRANE_TOKEN"] = secret
    else:
        env.update(CRANE_USERNAME=USERNAME, CRANE_PASSWORD=secret)
    return env


def credentials_seen(gate) -> set[str]:
    """What crane sent the index: the bearer tokens and the Basic credentials (base64)."""
    return {r.credential.split(" ", 1)[1] for r in gate.records() if r.credential}


def secret_forms(*secrets: str) -> set[str]:
    """A secret and the Basic credentials that would carry it."""
    forms = set()
    for secret in secrets:
        forms.add(secret)
        forms.add(base64.b64encode(f"{USERNAME}:{secret}".encode()).decode())
    return forms


def assert_kept_secret(
    crane: Crane,
    results: list[Result],
    secrets: set[str],
    *,
    storable: frozenset[str] | set[str] = frozenset(),
) -> None:
    """None of ``secrets`` in crane's output or in any file under CRANE_HOME but the store
    (the registry included); in the store only those in ``storable``, each in a 0600 file
    of a 0700 directory."""
    assert secrets
    for result in results:
        for secret in secrets:
            assert secret not in result.stdout, "a secret on stdout"
            assert secret not in result.stderr, "a secret on stderr"
    home = Path(crane.env["CRANE_HOME"])
    for path in (p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret in secrets:
            if secret.encode() not in data:
                continue
            assert home / "state" in path.parents, f"a secret in {path.relative_to(home)}"
            assert secret in storable, f"a secret that is never to be stored, in {path.name}"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def stored_in(crane: Crane, secret: str) -> list[Path]:
    """The files of crane's store that hold ``secret``."""
    state = Path(crane.env["CRANE_HOME"]) / "state"
    return [p for p in state.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def events_since(stack, mark: int) -> list[str]:
    """The IdP's EVENT lines after ``mark`` (a ``stack.event_mark()``)."""
    time.sleep(0.3)  # the IdP writes some events after its answer: let them arrive
    return [line for line in stack.idp.lines[mark:] if line.startswith("EVENT ")]


def assert_authenticated(stack, records, *, subject: str | None = None) -> None:
    """Every request crane sent the private index with credentials passed (as ``subject``);
    the only ones without are crane's check that the index root refuses anonymous
    requests (a page anybody gets proves nothing), and they got nothing but a 401."""
    sent = [r for r in records if r.had_auth_header]
    assert sent, "the private index saw no authenticated request"
    refused = [r for r in sent if not r.auth_ok or (subject and r.subject != subject)]
    assert not refused, refused
    root = urlsplit(stack.private_url).path
    anonymous = [r for r in records if not r.had_auth_header]
    assert all(r.status == 401 and r.path == root for r in anonymous), anonymous


def assert_not_run(result: Result, stack) -> None:
    """crane stopped before the tool ran: pip never printed its index line, the private
    index saw nothing."""
    assert "Looking in indexes" not in result.stdout, result.stdout
    assert stack.gate.records() == []


# -- client credentials --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["token-url", "issuer"])
def test_client_credentials_install_private_first(stack, crane, tmp_path, how):
    register(crane, stack, stack.private_url, *cc_args(stack, how))
    crane.env[SECRET_VARIABLE["client-credentials"]] = stack.ci_client_secret
    mark = stack.event_mark()
    stack.gate.clear()
    result = install(crane, stack.private_url, tmp_path / "t")
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == EXPECTED
    assert_authenticated(stack, stack.gate.records(), subject=stack.ci_client_id)
    # the secret went to the token endpoint in an Authorization: Basic header, never a form
    assert stack.wait_for_event(f"client.auth token {stack.ci_client_id} basic 200", start=mark)
    auths = [e for e in events_since(stack, mark) if e.startswith("EVENT client.auth token")]
    assert all(" basic " in e for e in auths), auths
    # the secret is never written; the access token is kept in memory only
    assert_kept_secret(crane, [result], {stack.ci_client_secret, *credentials_seen(stack.gate)})
    registry = (Path(crane.env["CRANE_HOME"]) / "config" / "indexes.json").read_text()
    assert SECRET_VARIABLE["client-credentials"] in registry


def test_client_credentials_refused_secret_fails_before_the_tool_runs(stack, crane, tmp_path):
    register(crane, stack, stack.private_url, *cc_args(stack))
    crane.env[SECRET_VARIABLE["client-credentials"]] = "not-the-secret-" + os.urandom(8).hex()
    mark = stack.event_mark()
    stack.gate.clear()
    result = install(crane, stack.private_url, tmp_path / "t")
    assert result.code == 4, result.stderr
    assert_not_run(result, stack)
    assert origins(tmp_path / "t") == {}
    assert stack.wait_for_event("token.error client_credentials invalid_client", start=mark)
    assert "Traceback" not in result.stderr
    assert_kept_secret(crane, [result], {crane.env[SECRET_VARIABLE["client-credentials"]]})


def test_client_credentials_fetch_a_new_token_when_the_old_one_expires(
    short_stack, crane, tmp_path
):
    stack = short_stack  # access tokens live 3 s; a run of several 1-second requests
    register(crane, stack, stack.private_url, *cc_args(stack))
    crane.env[SECRET_VARIABLE["client-credentials"]] = stack.ci_client_secret
    mark = stack.event_mark()
    stack.gate.mode, stack.gate.slow_seconds = "slow", 1.0
    try:
        result = install(crane, stack.private_url, tmp_path / "t", "decoy-pkg")
    finally:
        stack.gate.reset()
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == {"decoy-pkg": "private"}
    records = stack.gate.records()
    assert len(records) >= 3
    # A new token was fetched as the old one expired. The JWT's `exp` is in whole seconds
    # and the gate checks it after its delay, without leeway: a token crane still thought
    # fresh may be refused; crane then fetched a new one and the request passed.
    assert len(credentials_seen(stack.gate)) >= 2
    for i, refused in enumerate(records):
        if refused.had_auth_header and not refused.auth_ok:
            assert refused.reason == "expired", refused
            retried = [r for r in records[i + 1 :] if r.path == refused.path]
            assert retried, refused
            assert retried[0].auth_ok
            assert retried[0].credential != refused.credential
    issued = [e for e in events_since(stack, mark) if "token.issued client_credentials" in e]
    assert len(issued) >= 2


# -- missing variables ---------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["client-credentials", "token", "basic"])
def test_a_missing_secret_variable_fails_naming_it(stack, crane, tmp_path, scheme):
    register(crane, stack, stack.private_url, *scheme_args(stack, scheme))
    crane.env.pop(SECRET_VARIABLE[scheme], None)
    stack.gate.clear()
    mark = stack.event_mark()
    result = install(crane, stack.private_url, tmp_path / "t")
    assert result.code == 4, result.stderr
    assert SECRET_VARIABLE[scheme] in result.stderr
    assert_not_run(result, stack)
    assert origins(tmp_path / "t") == {}
    assert not [e for e in events_since(stack, mark) if "client_credentials" in e]


# -- static tokens --------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["env", "file"])
def test_a_static_token_installs_private_first(stack, crane, tmp_path, source):
    token = good_secret(stack, "token")
    if source == "env":
        register(crane, stack, stack.private_url, *scheme_args(stack, "token"))
        crane.env[SECRET_VARIABLE["token"]] = token
    else:
        token_file = tmp_path / "index-token"
        token_file.write_text(token + "\n")  # as `echo $TOKEN > file` writes it
        token_file.chmod(0o600)
        register(
            crane, stack, stack.private_url, "--auth", "token", "--token-file", str(token_file)
        )
    with index_takes(stack, "token", token) as gate:
        result = install(crane, stack.private_url, tmp_path / "t")
        records = gate.records()
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == EXPECTED
    assert_authenticated(stack, records)
    assert {r.credential for r in records if r.had_auth_header} == {f"Bearer {token}"}
    assert_kept_secret(crane, [result], {token})


@pytest.mark.parametrize("token", ["unknown", "without-scope"])
def test_a_refused_token_fails_without_fallback(stack, crane, tmp_path, token):
    register(crane, stack, stack.private_url, *scheme_args(stack, "token"))
    if token == "unknown":
        value = "unknown-" + os.urandom(12).hex()
    else:  # a real JWT for the index, without its scope: the gate answers 403
        value = stack.client_credentials_token(scope=None).json()["access_token"]
    crane.env[SECRET_VARIABLE["token"]] = value
    with index_takes(stack, "token", good_secret(stack, "token")) as gate:
        result = install(crane, stack.private_url, tmp_path / "t")
        statuses = {r.status for r in gate.records()}
    assert result.code == 4, result.stderr
    assert statuses == {401 if token == "unknown" else 403}
    assert origins(tmp_path / "t") == {}
    assert "Traceback" not in result.stderr
    assert_kept_secret(crane, [result], {value})


# -- HTTP Basic ---------------------------------------------------------------------------


def test_basic_with_a_password_variable_installs_private_first(stack, crane, tmp_path):
    password = good_secret(stack, "basic")
    register(crane, stack, stack.private_url, *scheme_args(stack, "basic"))
    crane.env[SECRET_VARIABLE["basic"]] = password
    with index_takes(stack, "basic", password) as gate:
        result = install(crane, stack.private_url, tmp_path / "t")
        records = gate.records()
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == EXPECTED
    assert_authenticated(stack, records, subject=USERNAME)
    assert_kept_secret(crane, [result], secret_forms(password))


def test_a_wrong_password_fails_without_fallback(stack, crane, tmp_path):
    register(crane, stack, stack.private_url, *scheme_args(stack, "basic"))
    crane.env[SECRET_VARIABLE["basic"]] = "wrong-" + os.urandom(8).hex()
    with index_takes(stack, "basic", good_secret(stack, "basic")) as gate:
        result = install(crane, stack.private_url, tmp_path / "t")
        statuses = {r.status for r in gate.records()}
    assert result.code == 4, result.stderr
    assert statuses == {401}
    assert origins(tmp_path / "t") == {}
    assert "Traceback" not in result.stderr
    assert_kept_secret(crane, [result], secret_forms(crane.env[SECRET_VARIABLE["basic"]]))


def _take_terminal() -> None:
    # Run in the child after setsid(): the pty on stdin becomes its controlling terminal,
    # so getpass reads /dev/tty as it would for a person at a terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_on_terminal(
    args: list[str], env: dict[str, str], cwd: Path | None, prompt: str, answer: str
) -> tuple[int, str]:
    """Run crane on a pseudo-terminal; type ``answer`` once ``prompt`` (a regex) appears.
    Returns the exit code and everything crane wrote to the terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CRANE, *args],
        env=env,
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=_take_terminal,  # noqa: PLW1509 - one ioctl, async-signal-safe
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and re.search(prompt, output.decode(errors="replace")):
                os.write(master, answer.encode() + b"\r")
                answered = True
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, output.decode(errors="replace")


PROMPT = r"(?i)password[^\n]*:\s*$"


def test_basic_password_asked_once_on_a_terminal_and_stored(stack, crane, tmp_path):
    password = good_secret(stack, "basic")
    register(crane, stack, stack.private_url, "--auth", "basic", "--username", USERNAME)
    with index_takes(stack, "basic", password) as gate:
        # In CI (the tests' environment sets CI), nobody can type it: exit 4 at once.
        started = time.monotonic()
        refused = install(crane, stack.private_url, tmp_path / "refused")
        assert refused.code == 4, refused.stderr
        assert time.monotonic() - started < 20
        assert "CRANE_PASSWORD" in refused.stderr or "--password-env" in refused.stderr
        assert f"crane login {stack.private_url}" in refused.stderr
        assert_not_run(refused, stack)

        # A person at a terminal: `crane login URL` asks once, without echo; the index
        # refuses a wrong password (exit 4, nothing stored) and takes the right one.
        person = {k: v for k, v in crane.env.items() if k != "CI"}
        typo = password + "-typo"
        code, screen = run_on_terminal(
            ["login", stack.private_url], person, crane.cwd, PROMPT, typo
        )
        assert code == 4, screen
        assert typo not in screen
        assert not stored_in(crane, typo)
        code, screen = run_on_terminal(
            ["login", stack.private_url], person, crane.cwd, PROMPT, password
        )
        assert code == 0, screen
        prompts = [line for line in screen.splitlines() if re.search(PROMPT, line)]
        assert len(prompts) == 1, screen
        assert password not in screen

        # Every later run (CI again) uses the stored password.
        gate.clear()
        result = install(crane, stack.private_url, tmp_path / "t")
        records = gate.records()
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == EXPECTED
    assert_authenticated(stack, records, subject=USERNAME)
    assert_kept_secret(crane, [refused, result], secret_forms(password), storable={password})
    assert stored_in(crane, password)
    assert_kept_secret(crane, [refused, result], secret_forms(typo))


# -- a confidential device-flow client ---------------------------------------------------


def test_a_confidential_device_client_sends_its_secret_with_basic(short_stack, crane, tmp_path):
    stack = short_stack  # 3-second access tokens: the second install must refresh
    cid, variable = stack.confidential_client_id, "DEVICE_CLIENT_SECRET"
    register(
        crane, stack, stack.private_url,
        "--client-id", cid, "--client-secret-env", variable, "--issuer", stack.issuer,
        "--scope", stack.scopes,
    )  # fmt: skip
    # A wrong secret: the device authorization is refused; exit 4, no prompt, no wait.
    crane.env[variable] = "wrong-" + os.urandom(8).hex()
    wrong = crane.with_user(stack, ["login", stack.private_url, "--no-browser"], timeout=30)
    assert wrong.code == 4, wrong.stderr
    assert "crane: or open" not in wrong.stderr
    assert_kept_secret(crane, [wrong], {crane.env[variable]})

    crane.env[variable] = stack.confidential_client_secret
    mark = stack.event_mark()
    login = crane.login(stack)
    assert login.code == 0, login.stderr
    assert stack.wait_for_event(f"client.auth device_authorization {cid} basic 200", start=mark)
    assert stack.wait_for_event(f"client.auth token {cid} basic 200", start=mark)

    time.sleep(3.2)  # the access token has expired: crane must refresh, with its secret
    stack.gate.clear()
    mark = stack.event_mark()
    result = install(crane, stack.private_url, tmp_path / "t")
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == EXPECTED
    assert stack.wait_for_event("token.issued refresh_token", start=mark)
    assert stack.wait_for_event(f"client.auth token {cid} basic 200", start=mark)
    assert_authenticated(stack, stack.gate.records())
    # Every request of the client (device authorization, polls, refresh) sent its secret
    # in an Authorization: Basic header, never in a form.
    auths = [e for e in events_since(stack, 0) if e.startswith("EVENT client.auth ")]
    mine = [e for e in auths if f" {cid} " in e]
    assert mine
    assert all(" basic " in e for e in mine), mine
    # The client secret is never written; the tokens are, in the 0600 store only.
    secret = stack.confidential_client_secret
    tokens = credentials_seen(stack.gate)
    assert any(stored_in(crane, token) for token in tokens)
    assert_kept_secret(crane, [wrong, login, result], {secret, *tokens}, storable=tokens)

    mark = stack.event_mark()
    logout = crane.run("-v", "logout", stack.private_url)
    assert logout.code == 0, logout.stderr
    assert not any(stored_in(crane, token) for token in tokens)
    assert_kept_secret(crane, [logout], {secret, *tokens})
    # RFC 7009 2.1: a confidential client authenticates at the revocation endpoint too.
    assert stack.wait_for_event(f"client.auth revocation {cid} basic 200", start=mark), (
        logout.stderr
    )
    assert stack.wait_for_event("token.revoked RefreshToken", start=mark)


def test_a_device_index_in_ci_without_tokens_names_what_works_there(stack, crane, tmp_path):
    crane.register(stack, None, "--public-index", stack.public_url)
    stack.gate.clear()
    started = time.monotonic()
    result = install(crane, stack.private_url, tmp_path / "t")
    assert result.code == 4, result.stderr
    assert time.monotonic() - started < 20
    assert "--auth client-credentials" in result.stderr
    assert "CRANE_AUTH" in result.stderr
    assert "crane: or open" not in result.stderr  # no device flow was started
    assert_not_run(result, stack)
    assert origins(tmp_path / "t") == {}


# -- one run without a registry (CRANE_*) --------------------------------------------------

PROJECT = """\
[project]
name = "demo-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["crane-private-app", "decoy-pkg"]

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


@pytest.mark.parametrize("tool", ["pip", "uv-pip", "uv-sync"])
@pytest.mark.parametrize("scheme", ["client-credentials", "token", "basic"])
def test_crane_variables_describe_the_index_for_one_run(stack, crane, tmp_path, scheme, tool):
    secret = good_secret(stack, scheme)
    how = "issuer" if tool == "uv-pip" else "token-url"  # both ways to the token endpoint
    env = {**crane.env, **environment_index(stack, scheme, secret, how=how)}
    with index_takes(stack, scheme, secret) as gate:
        if tool == "uv-sync":
            project = tmp_path / "project"
            project.mkdir()
            (project / "pyproject.toml").write_text(
                PROJECT.format(private=stack.private_url, public=stack.public_url)
            )
            venv = tmp_path / "venv"
            env = uv_env({**env, "UV_PROJECT_ENVIRONMENT": str(venv)})
            result = Crane(env, cwd=project).run("-v", "uv", "sync")
            installed = venv_origins(venv)
        else:
            target = tmp_path / "t"
            result = install(crane, stack.private_url, target, tool=tool[:2], env=env)
            installed = origins(target)
        records = gate.records()
    assert result.code == 0, result.stderr
    assert installed == EXPECTED
    assert_authenticated(stack, records)
    # nothing was registered, nothing of the secret written
    home = Path(crane.env["CRANE_HOME"])
    registry = home / "config" / "indexes.json"
    assert not registry.exists() or stack.private_url not in registry.read_text()
    assert_kept_secret(crane, [result], secret_forms(secret) | credentials_seen(gate))


@pytest.mark.parametrize("scheme", ["client-credentials", "token", "basic"])
def test_a_wrong_secret_in_crane_variables_fails_without_fallback(stack, crane, tmp_path, scheme):
    wrong = "wrong-" + os.urandom(8).hex()
    env = {**crane.env, **environment_index(stack, scheme, wrong)}
    with index_takes(stack, scheme, good_secret(stack, scheme)):
        result = install(crane, stack.private_url, tmp_path / "t", tool="uv", env=env)
    assert result.code == 4, result.stderr
    assert origins(tmp_path / "t") == {}
    assert "Traceback" not in result.stderr
    assert_kept_secret(crane, [result], secret_forms(wrong))


# -- crane status, crane index list --------------------------------------------------------


def test_status_and_index_list_name_each_scheme(stack, crane, tmp_path):
    token_file = tmp_path / "index-token"
    token_file.write_text("a-token-in-a-file\n")
    urls = {
        "device": "http://127.0.0.1:9/device/simple/",
        "confidential": "http://127.0.0.1:9/confidential/simple/",
        "client-credentials": "http://127.0.0.1:9/cc/simple/",
        "token": "http://127.0.0.1:9/token/simple/",
        "token-file": "http://127.0.0.1:9/token-file/simple/",
        "basic": "http://127.0.0.1:9/basic/simple/",
        "basic-stored": "http://127.0.0.1:9/basic-stored/simple/",
    }
    crane.register(stack, urls["device"])
    register(
        crane, stack, urls["confidential"], "--client-id", stack.confidential_client_id,
        "--client-secret-env", "DEVICE_CLIENT_SECRET", "--token-url", stack.token_url,
        "--device-url", stack.device_url,
    )  # fmt: skip
    register(crane, stack, urls["client-credentials"], *cc_args(stack))
    register(crane, stack, urls["token"], *scheme_args(stack, "token"))
    register(crane, stack, urls["token-file"], "--auth", "token", "--token-file", str(token_file))
    register(crane, stack, urls["basic"], *scheme_args(stack, "basic"))
    register(crane, stack, urls["basic-stored"], "--auth", "basic", "--username", USERNAME)
    secrets = {"device-secret-x", "cc-secret-x", "the-token-x", "the-password-x"}
    env = {
        **crane.env,
        "DEVICE_CLIENT_SECRET": "device-secret-x",
        SECRET_VARIABLE["client-credentials"]: "cc-secret-x",
        SECRET_VARIABLE["token"]: "the-token-x",
        SECRET_VARIABLE["basic"]: "the-password-x",
        "CRANE_PASSWORD": "the-password-x",
    }
    # `crane index list`: one line per index with its scheme (the --auth word)
    listed = crane.run("-v", "index", "list", env=env)
    assert listed.code == 0, listed.stderr
    entries = entries_by_url(listed.stdout, urls)
    for name in urls:
        scheme = "device" if name == "confidential" else name.removesuffix("-file")
        scheme = scheme.removesuffix("-stored")
        assert re.search(rf"\s{scheme}\s", entries[name] + " "), (name, entries[name])
    # `crane status`: the scheme in words, with where its secret comes from
    status = crane.run("-v", "status", env=env)
    assert status.code == 0, status.stderr
    entries = entries_by_url(status.stdout, urls)
    expected = {
        "device": ["device flow"],
        "confidential": ["device flow", "confidential"],
        "client-credentials": [
            "client credentials",
            stack.ci_client_id,
            "$" + SECRET_VARIABLE["client-credentials"],
        ],
        "token": ["token", "$" + SECRET_VARIABLE["token"]],
        "token-file": ["token", str(token_file)],
        "basic": ["basic", USERNAME, "$" + SECRET_VARIABLE["basic"]],
        "basic-stored": ["basic", USERNAME, f"crane login {urls['basic-stored']}"],
    }
    for name, words in expected.items():
        for word in words:
            assert word.lower() in entries[name].lower(), (name, word, entries[name])
    for result in (listed, status):
        for secret in [*secrets, "a-token-in-a-file"]:
            assert secret not in result.stdout + result.stderr
    home = Path(crane.env["CRANE_HOME"])
    for path in (p for p in home.rglob("*") if p.is_file()):
        assert not [s for s in secrets if s in path.read_text()], path
    assert "a-token-in-a-file" not in (home / "config" / "indexes.json").read_text()


def entries_by_url(text: str, urls: dict[str, str]) -> dict[str, str]:
    """The part of ``text`` about each URL: from the line naming it to the next URL's."""
    lines = text.splitlines()
    starts = sorted(
        (next(i for i, line in enumerate(lines) if url in line), name) for name, url in urls.items()
    )
    entries = {}
    for (start, name), (end, _) in zip(starts, [*starts[1:], (len(lines), "")], strict=True):
        entries[name] = "\n".join(lines[start:end])
    return entries


# -- the child never sees a secret ---------------------------------------------------------

BACKEND = '''\
"""A build backend that writes the environment it runs in to a file, then builds a wheel."""
import base64, hashlib, json, os, zipfile

OUT = {out!r}
NAME, VERSION = "env_probe", "0.1"


def _dump():
    with open(OUT, "w") as f:
        json.dump(dict(os.environ), f)


def get_requires_for_build_wheel(config_settings=None):
    _dump()
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _dump()
    info = f"{{NAME}}-{{VERSION}}.dist-info"
    files = {{
        f"{{NAME}}.py": b"",
        f"{{info}}/METADATA": b"Metadata-Version: 2.1\\nName: env-probe\\nVersion: 0.1\\n",
        f"{{info}}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n",
    }}
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record += f"{{path}},sha256={{digest.decode()}},{{len(data)}}\\n"
    files[f"{{info}}/RECORD"] = (record + f"{{info}}/RECORD,,\\n").encode()
    name = f"{{NAME}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name
'''

PROBE_PYPROJECT = """\
[build-system]
requires = []
build-backend = "envdump"
backend-path = ["."]

[project]
name = "env-probe"
version = "0.1"
"""


def env_probe(tmp_path: Path) -> tuple[Path, Path]:
    """A local project whose build backend dumps its environment: (project, dump file)."""
    project = tmp_path / "env-probe"
    project.mkdir()
    dump = tmp_path / "child-env.json"
    (project / "pyproject.toml").write_text(PROBE_PYPROJECT)
    (project / "envdump.py").write_text(BACKEND.format(out=str(dump)))
    return project, dump


@pytest.mark.parametrize(
    ("scheme", "form"),
    [
        ("client-credentials", "registered"),
        ("token", "registered"),
        ("basic", "registered"),
        ("client-credentials", "variables"),
        ("token", "variables"),
        ("basic", "variables"),
    ],
)
def test_secret_variables_never_reach_the_child(stack, crane, tmp_path, scheme, form):
    secret = good_secret(stack, scheme)
    project, dump = env_probe(tmp_path)
    if form == "registered":
        register(crane, stack, stack.private_url, *scheme_args(stack, scheme))
        env = {**crane.env, SECRET_VARIABLE[scheme]: secret}
        names = {SECRET_VARIABLE[scheme]}
        tool = "pip"
    else:
        env = {**crane.env, **environment_index(stack, scheme, secret)}
        names = {ENVIRONMENT_SECRET[scheme]}
        tool = "uv"
    with index_takes(stack, scheme, secret) as gate:
        result = install(
            crane, stack.private_url, tmp_path / "t", "crane-private-app", str(project),
            tool=tool, env=env,
        )  # fmt: skip
        seen = credentials_seen(gate)
    assert result.code == 0, result.stderr
    assert origins(tmp_path / "t") == {"crane-private-app": "private", "public-only-dep": "public"}
    child = json.loads(dump.read_text())
    index_variable = "PIP_INDEX_URL" if tool == "pip" else "UV_DEFAULT_INDEX"
    assert "127.0.0.1" in child[index_variable]  # the build ran under crane's door
    assert not names & set(child), sorted(names & set(child))
    for value in child.values():
        for hidden in secret_forms(secret) | seen:
            assert hidden not in value
