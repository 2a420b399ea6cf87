"""Fixtures for crane's integration tests: a real IdP, real indexes, an auth gate.

Session-scoped ``stack`` (started once, about 1 s):
- a public pypiserver (``public_url``) with ``public-only-dep 1.0``, ``decoy-pkg 99.0``,
  ``public-other 2.0``;
- a private pypiserver with ``crane-private-app 1.0`` (requires ``public-only-dep``) and
  ``decoy-pkg 1.0``, reachable only through a ``Gate`` (``private_url``) that demands a
  bearer JWT from the IdP;
- oidc-provider (``issuer``) with client ``crane-test``, device flow, rotating refresh tokens,
  access tokens that live ``ACCESS_TTL`` = 300 s.

Function-scoped ``short_stack``: a second IdP with 3-second access tokens and its own Gate
in front of the same private pypiserver (for refresh tests). ``short_stack_factory`` makes
more, with any TTLs.

``tool_env``: a clean environment for child tools (pip, uv, poetry, crane) under tmp_path.

The IdP needs ``npm install`` in ``integration/stack`` once (``oidc-provider`` 8.8.1).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from stack import servers, wheels  # noqa: E402
from stack.gate import Gate  # noqa: E402
from stack.user import complete_device_flow, deny_device_flow  # noqa: E402

CLIENT_ID = "crane-test"
AUDIENCE = "urn:crane:test-index"
RESOURCE_SCOPE = "index:read"
DEFAULT_SCOPES = "openid offline_access index:read"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class Stack:
    """What a test needs to talk to the stack. See the module docstring."""

    issuer: str
    client_id: str
    token_url: str
    device_url: str
    revocation_url: str
    introspection_url: str
    jwks_url: str
    private_url: str  # the gate: http://127.0.0.1:G/simple/
    public_url: str  # public pypiserver: http://127.0.0.1:P/simple/
    private_upstream_url: str  # the private pypiserver itself (no auth): for comparisons only
    gate: Gate
    idp: servers.ManagedProcess
    private_dir: Path
    public_dir: Path
    audience: str = AUDIENCE
    scopes: str = DEFAULT_SCOPES
    access_ttl: int = 300
    discovery: dict = field(default_factory=dict, repr=False)

    # -- IdP events ----------------------------------------------------------------------
    def idp_events(self) -> list[str]:
        """The IdP's ``EVENT ...`` lines so far (see idp.mjs for the list)."""
        return self.idp.events()

    def wait_for_event(self, prefix: str, timeout: float = 5.0, *, start: int = 0) -> str | None:
        """Wait for ``EVENT <prefix>...`` (e.g. ``"grant.revoked"``); None on timeout."""
        return self.idp.wait_for_event(prefix, timeout, start=start)

    def event_mark(self) -> int:
        """Pass as ``start=`` to ``wait_for_event`` to see only later events."""
        return self.idp.mark()

    # -- the user's side -------------------------------------------------------------------
    def complete(
        self, verification_uri: str, user_code: str | None = None, *, login: str = "alice"
    ) -> None:
        """Approve a pending device authorization headlessly (any login works)."""
        complete_device_flow(verification_uri, user_code, login=login)

    def deny(self, verification_uri: str, user_code: str | None = None) -> None:
        """Abort a pending device authorization: the next poll gets ``access_denied``."""
        deny_device_flow(verification_uri, user_code)

    # -- the device's side (for tests of the stack itself, not of crane) -------------------
    def device_authorize(self, scope: str | None = None) -> dict:
        resp = httpx.post(
            self.device_url,
            data={"client_id": self.client_id, "scope": scope or self.scopes},
            trust_env=False,
        )
        resp.raise_for_status()
        return resp.json()

    def poll_token(self, device_code: str) -> httpx.Response:
        return httpx.post(
            self.token_url,
            data={
                "client_id": self.client_id,
                "grant_type": DEVICE_GRANT,
                "device_code": device_code,
            },
            trust_env=False,
        )

    def refresh(self, refresh_token: str) -> httpx.Response:
        return httpx.post(
            self.token_url,
            data={
                "client_id": self.client_id,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            },
            trust_env=False,
        )

    def login_tokens(self, scope: str | None = None, *, login: str = "alice") -> dict:
        """A whole device flow without crane: returns the token response (dict)."""
        auth = self.device_authorize(scope)
        self.complete(auth["verification_uri_complete"], login=login)
        resp = self.poll_token(auth["device_code"])
        resp.raise_for_status()
        return resp.json()


def _discover(issuer: str) -> dict:
    resp = httpx.get(f"{issuer}/.well-known/openid-configuration", trust_env=False, timeout=5)
    resp.raise_for_status()
    return resp.json()


def _make_stack(
    *,
    idp_ttl: int,
    private_upstream: str,
    public_url: str,
    private_dir: Path,
    public_dir: Path,
    refresh_ttl: int = 86400,
    device_ttl: int = 600,
):
    issuer, idp = servers.start_idp(
        access_ttl=idp_ttl, refresh_ttl=refresh_ttl, device_ttl=device_ttl
    )
    gate = None
    try:
        meta = _discover(issuer)
        gate = Gate(private_upstream, issuer, AUDIENCE)
        private_url = gate.start()
        return Stack(
            issuer=issuer,
            client_id=CLIENT_ID,
            token_url=meta["token_endpoint"],
            device_url=meta["device_authorization_endpoint"],
            revocation_url=meta["revocation_endpoint"],
            introspection_url=meta["introspection_endpoint"],
            jwks_url=meta["jwks_uri"],
            private_url=private_url,
            public_url=public_url,
            private_upstream_url=private_upstream,
            gate=gate,
            idp=idp,
            private_dir=private_dir,
            public_dir=public_dir,
            access_ttl=idp_ttl,
            discovery=meta,
        )
    except BaseException:
        if gate is not None:
            gate.stop()
        idp.stop()
        raise


@pytest.fixture(scope="session")
def _indexes(tmp_path_factory):
    """The two pypiservers (shared by every stack of the session)."""
    root = tmp_path_factory.mktemp("indexes")
    private_dir, public_dir = root / "private", root / "public"
    wheels.build_private(private_dir)
    wheels.build_public(public_dir)
    procs = []
    try:
        private_upstream, proc = servers.start_pypiserver(private_dir)
        procs.append(proc)
        public_url, proc = servers.start_pypiserver(public_dir)
        procs.append(proc)
        yield {
            "private_upstream": private_upstream,
            "public_url": public_url,
            "private_dir": private_dir,
            "public_dir": public_dir,
        }
    finally:
        servers.stop_all(procs)


@pytest.fixture(scope="session")
def stack(_indexes) -> Stack:
    """The whole stack, once per session. Tests must not leave ``stack.gate`` knobs changed
    (use ``gate.reset()`` in a ``finally``)."""
    s = _make_stack(idp_ttl=300, **_stack_args(_indexes))
    try:
        yield s
    finally:
        s.gate.stop()
        s.idp.stop()


def _stack_args(indexes: dict) -> dict:
    return {
        "private_upstream": indexes["private_upstream"],
        "public_url": indexes["public_url"],
        "private_dir": indexes["private_dir"],
        "public_dir": indexes["public_dir"],
    }


@pytest.fixture
def short_stack_factory(_indexes):
    """``make(access_ttl=3, refresh_ttl=86400, device_ttl=600) -> Stack``: a new IdP + Gate
    in front of the session's private pypiserver; all stopped at the end of the test."""
    made: list[Stack] = []

    def make(access_ttl: int = 3, refresh_ttl: int = 86400, device_ttl: int = 600) -> Stack:
        s = _make_stack(
            idp_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            device_ttl=device_ttl,
            **_stack_args(_indexes),
        )
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.gate.stop()
        servers.stop_all(s.idp for s in made)


@pytest.fixture
def short_stack(short_stack_factory) -> Stack:
    """A stack whose access tokens live 3 seconds (own IdP and Gate, same private index)."""
    return short_stack_factory(access_ttl=3)


_DROP_EXACT = {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "NO_PROXY", "no_proxy"}
_DROP_PREFIXES = ("PIP_", "UV_", "POETRY_", "CRANE_")


@pytest.fixture
def tool_env(tmp_path) -> dict[str, str]:
    """A clean environment for child tools, everything under ``tmp_path/env``.

    Drops every ``PIP_*``, ``UV_*``, ``POETRY_*``, ``CRANE_*``, ``*_PROXY``/``*_proxy``,
    ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``CURL_CA_BUNDLE`` (requests' fallback for
    REQUESTS_CA_BUNDLE). Sets ``PIP_CONFIG_FILE=/dev/null`` (pip reads no config file),
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``PIP_NO_INPUT=1``, ``PIP_CACHE_DIR``,
    ``UV_CACHE_DIR``, ``POETRY_CONFIG_DIR``, ``POETRY_CACHE_DIR``, ``POETRY_DATA_DIR``,
    ``XDG_CONFIG_HOME``/``XDG_CACHE_HOME``/``XDG_DATA_HOME`` (so no user uv.toml or poetry
    config is read), ``CRANE_HOME``, ``CI=true``, ``NO_PROXY=127.0.0.1,localhost``,
    ``UV_PYTHON_DOWNLOADS=never``.
    uv's own config discovery is left on (tests may write a uv.toml / pyproject.toml).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_DROP_PREFIXES)
        and not k.upper().endswith("_PROXY")
        and k not in _DROP_EXACT
    }
    base = tmp_path / "env"
    dirs = {
        "PIP_CACHE_DIR": base / "pip-cache",
        "UV_CACHE_DIR": base / "uv-cache",
        "POETRY_CONFIG_DIR": base / "poetry-config",
        "POETRY_CACHE_DIR": base / "poetry-cache",
        "POETRY_DATA_DIR": base / "poetry-data",
        "XDG_CONFIG_HOME": base / "xdg-config",
        "XDG_CACHE_HOME": base / "xdg-cache",
        "XDG_DATA_HOME": base / "xdg-data",
        "CRANE_HOME": base / "crane-home",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        CI="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONDONTWRITEBYTECODE="1",
        UV_PYTHON_DOWNLOADS="never",  # no network here: never fetch an interpreter
    )
    return env


@pytest.fixture
def crane(tool_env, tmp_path):
    """The real crane command with the test's clean environment (its own CRANE_HOME)."""
    from harness import Crane

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Crane(tool_env, cwd=work)
