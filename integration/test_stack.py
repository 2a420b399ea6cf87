"""Tests of the integration stack itself (no crane code): if these fail, the end-to-end
tests of crane cannot be trusted. Plain httpx plays the device, ``stack.complete`` the user."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import jwt
import pytest
from stack import wheels
from stack.compose import DEVICE_GRANT


def _device_login(stack, scope=None):
    """Device flow by hand: authorize, poll once (pending), user approves, poll (tokens)."""
    auth = stack.device_authorize(scope)
    pending = stack.poll_token(auth["device_code"])
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    stack.complete(auth["verification_uri_complete"])
    resp = stack.poll_token(auth["device_code"])
    assert resp.status_code == 200, resp.text
    return auth, resp.json()


def test_device_flow_completes_headlessly(stack):
    auth, tokens = _device_login(stack)

    # What oidc-provider 8 answers (crane must not depend on more than this):
    assert set(auth) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
    }  # no "interval"
    assert auth["verification_uri_complete"].startswith(stack.issuer)
    assert set(tokens) == {
        "access_token",
        "expires_in",
        "id_token",
        "refresh_token",
        "scope",
        "token_type",
    }  # no "refresh_expires_in"
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "index:read"
    assert tokens["expires_in"] == stack.access_ttl

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["aud"] == stack.audience
    assert claims["iss"] == stack.issuer
    assert claims["sub"] == "alice"
    assert claims["client_id"] == stack.client_id
    assert claims["scope"] == "index:read"

    # the device code is single-use
    again = stack.poll_token(auth["device_code"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert any(
        e.startswith("EVENT token.issued urn:ietf:params:oauth:grant-type:device_code ")
        for e in stack.idp_events()
    )


def test_user_code_form_and_denial(stack):
    # verification_uri + typed user code (no _complete URL)
    auth = stack.device_authorize()
    stack.complete(auth["verification_uri"], auth["user_code"], login="bob")
    tokens = stack.poll_token(auth["device_code"]).json()
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"] == "bob"

    # the user aborts: access_denied
    auth = stack.device_authorize()
    stack.deny(auth["verification_uri_complete"])
    denied = stack.poll_token(auth["device_code"])
    assert denied.status_code == 400
    assert denied.json()["error"] == "access_denied"


def test_gate_accepts_token_and_refuses_others(stack):
    gate = stack.gate
    gate.clear()
    tokens = stack.login_tokens()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(trust_env=False, timeout=10) as client:
        ok = client.get(stack.private_url, headers=bearer)
        assert ok.status_code == 200
        assert "crane-private-app" in ok.text

        page = client.get(stack.private_url + "decoy-pkg/", headers=bearer)
        assert page.status_code == 200
        assert "decoy_pkg-1.0-py3-none-any.whl" in page.text
        assert "99.0" not in page.text

        # a file, streamed through with its headers; Range is forwarded
        href = page.text.split('href="', 1)[1].split('"', 1)[0]
        file_url = httpx.URL(stack.private_url).join(href.split("#", 1)[0])
        whole = client.get(file_url, headers=bearer)
        assert whole.status_code == 200
        assert int(whole.headers["content-length"]) == len(whole.content)
        assert whole.content[:2] == b"PK"
        head = client.head(file_url, headers=bearer)
        assert head.status_code == 200
        assert head.headers["content-length"] == whole.headers["content-length"]
        part = client.get(file_url, headers={**bearer, "Range": "bytes=0-9"})
        if part.status_code == 206:  # pypiserver's server decides whether it honours Range
            assert part.content == whole.content[:10]

        anonymous = client.get(stack.private_url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")

        garbage = client.get(stack.private_url, headers={"Authorization": "Bearer not-a-jwt"})
        assert garbage.status_code == 401

        no_scope = stack.login_tokens(scope="openid offline_access")
        forbidden = client.get(
            stack.private_url, headers={"Authorization": f"Bearer {no_scope['access_token']}"}
        )
        assert forbidden.status_code == 403
        assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]

        assert client.post(stack.private_url, headers=bearer).status_code == 405

        # knobs
        try:
            gate.mode = "error500"
            assert client.get(stack.private_url, headers=bearer).status_code == 500
            gate.mode = "slow"
            gate.slow_seconds = 0.3
            t0 = time.monotonic()
            assert client.get(stack.private_url, headers=bearer).status_code == 200
            assert time.monotonic() - t0 >= 0.3
        finally:
            gate.reset()

    recs = gate.records()
    assert [r.status for r in recs[:2]] == [200, 200]
    assert recs[0].auth_ok
    assert recs[0].had_auth_header
    assert recs[0].subject == "alice"
    assert any(not r.auth_ok and not r.had_auth_header and r.status == 401 for r in recs)
    assert any(not r.auth_ok and r.had_auth_header and r.status == 401 for r in recs)


def test_refresh_rotates_and_reuse_revokes_grant(short_stack):
    s = short_stack
    _, first = _device_login(s)
    assert first["expires_in"] == 3
    grant_ok = httpx.get(
        s.private_url, trust_env=False, headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert grant_ok.status_code == 200

    second = s.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]  # rotated
    assert second["access_token"] != first["access_token"]
    assert (
        httpx.get(
            s.private_url,
            trust_env=False,
            headers={"Authorization": f"Bearer {second['access_token']}"},
        ).status_code
        == 200
    )

    # an access token past its 3 s lifetime is refused by the gate
    grant_id = s.wait_for_event("token.issued refresh_token").split()[-1]
    exp = jwt.decode(first["access_token"], options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp - time.time() + 0.05))
    expired = httpx.get(
        s.private_url, trust_env=False, headers={"Authorization": f"Bearer {first['access_token']}"}
    )
    assert expired.status_code == 401
    assert s.gate.records()[-1].reason == "expired"

    # presenting the used refresh token again revokes the whole grant...
    mark = s.event_mark()
    reuse = s.refresh(first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert s.wait_for_event(f"grant.revoked {grant_id}", start=mark) is not None
    assert s.wait_for_event(f"refresh_token.reused {grant_id}", start=mark) is not None

    # ...so the newer refresh token is dead too
    newer = s.refresh(second["refresh_token"])
    assert newer.status_code == 400
    assert newer.json()["error"] == "invalid_grant"


def test_revocation_revokes_grant(stack):
    tokens = stack.login_tokens()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    mark = stack.event_mark()
    resp = httpx.post(
        stack.revocation_url,
        trust_env=False,
        data={
            "client_id": stack.client_id,
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
        },
    )
    assert resp.status_code == 200
    assert stack.wait_for_event("grant.revoked", start=mark) is not None
    assert stack.wait_for_event("token.revoked RefreshToken", start=mark) is not None
    assert stack.refresh(tokens["refresh_token"]).status_code == 400
    # A JWT access token cannot be recalled: the gate still takes it until it expires...
    assert httpx.get(stack.private_url, headers=bearer, trust_env=False).status_code == 200
    # ...and oidc-provider's introspection knows nothing of JWT access tokens.
    intro = httpx.post(
        stack.introspection_url,
        trust_env=False,
        data={"client_id": stack.client_id, "token": tokens["access_token"]},
    )
    assert intro.json() == {"active": False}
    try:
        stack.gate.mode = "unauthorized"  # an index that refuses the token early
        assert httpx.get(stack.private_url, headers=bearer, trust_env=False).status_code == 401
    finally:
        stack.gate.reset()


def _get(url, authorization=None):
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.get(url, headers=headers, trust_env=False, timeout=10)


def test_client_credentials_give_a_jwt_the_gate_accepts(stack):
    mark = stack.event_mark()
    resp = stack.client_credentials_token()  # no `resource`: the default resource applies
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "scope"}  # no refresh
    assert body["scope"] == "index:read"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == stack.audience
    assert claims["sub"] == claims["client_id"] == stack.ci_client_id
    assert _get(stack.private_url, f"Bearer {body['access_token']}").status_code == 200
    assert stack.wait_for_event("token.issued client_credentials", start=mark)
    assert stack.wait_for_event(f"client.auth token {stack.ci_client_id} basic 200", start=mark)

    # crane's default scopes: the resource's scope is what counts, others are dropped
    wide = stack.client_credentials_token("openid offline_access index:read").json()
    assert wide["scope"] == "index:read"
    # an explicit resource indicator works too; an unknown one is invalid_target (not a 500)
    named = stack.client_credentials_token(resource=stack.audience)
    assert named.status_code == 200
    unknown = stack.client_credentials_token(resource="urn:crane:other")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_target"
    # without the scope the token is valid but the gate refuses it
    bare = stack.client_credentials_token(scope=None).json()
    assert "scope" not in bare
    assert _get(stack.private_url, f"Bearer {bare['access_token']}").status_code == 403

    wrong = stack.client_credentials_token(secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert stack.wait_for_event(f"client.auth token {stack.ci_client_id} basic 401", start=mark)
    # the public device client may not use the grant
    public = httpx.post(
        stack.token_url,
        data={"grant_type": "client_credentials", "client_id": stack.client_id},
        trust_env=False,
    )
    assert public.status_code == 400
    assert (
        public.json()["error_description"] == "requested grant type is not allowed for this client"
    )


def test_confidential_device_client_authenticates_with_basic(stack):
    cid, secret = stack.confidential_client_id, stack.confidential_client_secret
    scope = stack.scopes
    anonymous = httpx.post(
        stack.device_url, data={"client_id": cid, "scope": scope}, trust_env=False
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"

    mark = stack.event_mark()
    auth = httpx.post(
        stack.device_url, data={"scope": scope}, auth=(cid, secret), trust_env=False
    ).json()
    stack.complete(auth["verification_uri_complete"])
    device = {"grant_type": DEVICE_GRANT, "device_code": auth["device_code"]}
    assert (
        httpx.post(stack.token_url, data=device, auth=(cid, "wrong"), trust_env=False).status_code
        == 401
    )
    tokens = httpx.post(stack.token_url, data=device, auth=(cid, secret), trust_env=False)
    assert tokens.status_code == 200, tokens.text
    tokens = tokens.json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == cid
    assert _get(stack.private_url, f"Bearer {tokens['access_token']}").status_code == 200

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = httpx.post(stack.token_url, data=refresh, auth=(cid, secret), trust_env=False)
    assert refreshed.status_code == 200, refreshed.text
    revoked = httpx.post(
        stack.revocation_url,
        data={"token": refreshed.json()["refresh_token"]},
        auth=(cid, secret),
        trust_env=False,
    )
    assert revoked.status_code == 200
    assert stack.wait_for_event("token.revoked RefreshToken", start=mark)
    for route in ("device_authorization", "token", "revocation"):
        assert stack.wait_for_event(f"client.auth {route} {cid} basic 200", start=mark), route
    assert stack.wait_for_event(f"client.auth token {cid} basic 401", start=mark)


def test_gate_static_tokens_and_basic_users(stack):
    gate = stack.gate
    static = "static-" + secrets.token_hex(8)
    jwt_token = stack.client_credentials_token().json()["access_token"]
    basic = "Basic " + base64.b64encode("ci-user:p\u00e4ss w:rd".encode()).decode()
    try:
        assert _get(stack.private_url, f"Bearer {static}").status_code == 401
        gate.static_tokens = {static}
        gate.clear()
        assert _get(stack.private_url, f"Bearer {static}").status_code == 200
        assert _get(stack.private_url, f"Bearer {jwt_token}").status_code == 200  # still
        assert gate.records()[0].subject == "static-token"
        assert gate.records()[0].credential == f"Bearer {static}"

        gate.basic_users = {"ci-user": "p\u00e4ss w:rd"}
        ok = _get(stack.private_url + "decoy-pkg/", basic)
        assert ok.status_code == 200
        assert "decoy_pkg-1.0" in ok.text
        assert gate.records()[-1].subject == "ci-user"
        wrong = "Basic " + base64.b64encode(b"ci-user:nope").decode()
        for refused in (wrong, None, f"Bearer {static}", f"Bearer {jwt_token}", "Basic !!"):
            resp = _get(stack.private_url, refused)
            assert resp.status_code == 401, refused
            assert resp.headers["www-authenticate"].startswith('Basic realm="'), refused
        assert [r.reason for r in gate.records()[-5:-3]] == ["wrong password", "missing"]
    finally:
        gate.reset()
    assert gate.basic_users is None
    assert gate.static_tokens == set()
    assert _get(stack.private_url, f"Bearer {static}").status_code == 401
    assert _get(stack.private_url, basic).status_code == 401
    challenge = _get(stack.private_url).headers["www-authenticate"]
    assert challenge.startswith("Bearer")


def test_wheels_are_valid(tmp_path):
    path = wheels.build_wheel(
        tmp_path, "Some.Pkg", "1.2", ["dep>=1"], origin="public", pad_bytes=1000
    )
    assert path.name == "some_pkg-1.2-py3-none-any.whl"
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = zf.read("some_pkg-1.2.dist-info/METADATA").decode()
        record = zf.read("some_pkg-1.2.dist-info/RECORD").decode()
        assert "ORIGIN = 'public'" in zf.read("some_pkg/__init__.py").decode()
    assert "Metadata-Version: 2.1" in meta
    assert "Requires-Dist: dep>=1" in meta
    assert all(n in record for n in names)
    # deterministic
    again = wheels.build_wheel(
        tmp_path / "again", "Some.Pkg", "1.2", ["dep>=1"], origin="public", pad_bytes=1000
    )
    assert again.read_bytes() == path.read_bytes()


def test_pip_downloads_from_public_index(stack, tool_env, tmp_path):
    dest = tmp_path / "dl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-d",
            str(dest),
            "--index-url",
            stack.public_url,
            "decoy-pkg",
        ],
        env=tool_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Looking in indexes: {stack.public_url}" in proc.stdout
    assert [p.name for p in dest.iterdir()] == ["decoy_pkg-99.0-py3-none-any.whl"]


def test_tool_env_is_clean(tool_env):
    assert not [
        k
        for k in tool_env
        if k.startswith(("UV_", "POETRY_", "CRANE_"))
        and k
        not in (
            "UV_CACHE_DIR",
            "UV_PYTHON_DOWNLOADS",
            "POETRY_CONFIG_DIR",
            "POETRY_CACHE_DIR",
            "POETRY_DATA_DIR",
            "CRANE_HOME",
            "CRANE_PUBLIC_CHECK",
        )
    ]
    assert "PIP_FIND_LINKS" not in tool_env
    assert "PIP_CERT" not in tool_env
    assert tool_env["PIP_CONFIG_FILE"] == "/dev/null"
    assert not [k for k in tool_env if k.upper().endswith("_PROXY") and k.upper() != "NO_PROXY"]


def test_start_idp_message_when_npm_install_missing(monkeypatch, tmp_path):
    from stack import servers

    monkeypatch.setattr(servers, "STACK_DIR", tmp_path)
    with pytest.raises(servers.StackError, match="npm install"):
        servers.start_idp()


@pytest.mark.parametrize("tool", ["pip", "uv", "uvx", "poetry"])
def test_children_take_tools_from_the_project_whatever_path_the_suite_had(
    tool, tmp_path, monkeypatch
):
    """A machine's own copy of a tool, first on the suite's PATH, is never what a child runs."""
    from toolpath import PROJECT_BIN, child_path

    decoys = tmp_path / "machine-bin"
    decoys.mkdir()
    decoy = decoys / tool
    decoy.write_text("#!/bin/sh\necho decoy\nexit 99\n")
    decoy.chmod(0o755)
    monkeypatch.setenv("PATH", f"{decoys}{os.pathsep}{PROJECT_BIN}{os.pathsep}/usr/bin")

    path = child_path()
    assert path.split(os.pathsep)[0] == str(PROJECT_BIN)
    assert path.split(os.pathsep).count(str(PROJECT_BIN)) == 1
    found = shutil.which(tool, path=path)
    assert found is not None
    assert Path(found).parent == PROJECT_BIN
    done = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "decoy" not in done.stdout


def test_tool_env_puts_the_project_first(tool_env):
    from toolpath import PROJECT_BIN

    assert tool_env["PATH"].split(os.pathsep)[0] == str(PROJECT_BIN)
