"""Start the test-only DOT identity provider from the tests (see ``server.py``).

    idp = start_dot(access_ttl=300)        # -> DotIdP, once it printed READY
    idp.issuer, idp.token_url, idp.device_url, idp.introspection_url, ...
    idp.secret("crane-dot-ci")             # the client secrets were chosen here
    idp.proc.stop()

The database schema is migrated once per test process into a template file (about 1 s);
every later start copies it (start-up then takes about 0.3 s, most of it importing
Django). The RSA key for OpenID Connect is also made once per process. A start that fails
raises ``StackError`` with the server's output.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stack.servers import STACK_DIR, ManagedProcess, StackError, _child_env

from .server import (
    CLIENT_CREDENTIALS_CLIENT,
    CLIENTS,
    CONFIDENTIAL_DEVICE_CLIENT,
    GATE_CLIENT,
    PUBLIC_DEVICE_CLIENT,
    _rsa_key_pem,
)

__all__ = [
    "CLIENT_CREDENTIALS_CLIENT",
    "CONFIDENTIAL_DEVICE_CLIENT",
    "GATE_CLIENT",
    "PUBLIC_DEVICE_CLIENT",
    "DotIdP",
    "start_dot",
]

INTEGRATION_DIR = STACK_DIR.parent
USER = "alice"

_shared_lock = threading.Lock()
_shared: dict[str, object] = {}


def _shared_dir() -> Path:
    """A directory for this process's template database, removed at exit."""
    with _shared_lock:
        if "dir" not in _shared:
            path = Path(tempfile.mkdtemp(prefix="crane-dot-"))
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            _shared["dir"] = path
            _shared["key"] = _rsa_key_pem()
        return _shared["dir"]  # type: ignore[return-value]


@dataclass
class DotIdP:
    """A running DOT identity provider. ``discovery`` is its OpenID Connect document (or
    its RFC 8414 document when OIDC is off); ``metadata`` is the RFC 8414 document."""

    issuer: str  # http://127.0.0.1:P/o
    token_url: str
    device_url: str
    revocation_url: str
    introspection_url: str
    verification_uri: str
    user: str
    password: str
    secrets: dict[str, str] = field(repr=False)
    proc: ManagedProcess
    access_ttl: int
    scopes: tuple[str, ...]
    discovery: dict = field(default_factory=dict, repr=False)
    metadata: dict = field(default_factory=dict, repr=False)
    startup_seconds: float = 0.0

    def secret(self, client_id: str) -> str:
        return self.secrets[client_id]

    def output(self, last: int | None = 60) -> str:
        return self.proc.output(last=last)

    def stop(self) -> None:
        self.proc.stop()

    # -- direct calls, for tests of the IdP itself and to set up states --------------------
    def revoke(self, token: str, client_id: str = PUBLIC_DEVICE_CLIENT) -> httpx.Response:
        """Revoke ``token`` (refresh or access) at DOT, as ``client_id``."""
        data = {"token": token, "client_id": client_id}
        auth = None
        if client_id != PUBLIC_DEVICE_CLIENT:
            auth = (client_id, self.secret(client_id))
            del data["client_id"]
        return httpx.post(self.revocation_url, data=data, auth=auth, trust_env=False, timeout=10)

    def introspect(self, token: str) -> dict:
        resp = httpx.post(
            self.introspection_url,
            data={"token": token},
            auth=(GATE_CLIENT, self.secret(GATE_CLIENT)),
            trust_env=False,
            timeout=10,
        )
        resp.raise_for_status()
        return resp.json()


def _fetch_json(url: str) -> dict:
    resp = httpx.get(url, trust_env=False, timeout=10)
    resp.raise_for_status()
    return resp.json()


def start_dot(
    access_ttl: int = 300,
    *,
    refresh_ttl: int = 86400,
    scopes: str = "index:read",
    oidc: bool = True,
    complete_uri: bool = False,
    interval: int = 1,
    timeout: float = 30.0,
) -> DotIdP:
    """Start DOT on a free port of 127.0.0.1; return once it answers its metadata."""
    if importlib.util.find_spec("oauth2_provider") is None:
        raise StackError(
            "django-oauth-toolkit is not installed in the project's environment: "
            "run `task deps` (the test extras of pyproject.toml)"
        )
    shared = _shared_dir()
    workdir = Path(tempfile.mkdtemp(prefix="instance-", dir=shared))
    client_secrets = {client_id: secrets.token_urlsafe(24) for client_id, _, _ in CLIENTS}
    password = secrets.token_urlsafe(12)
    env = _child_env()
    env.update(
        DOT_ACCESS_TTL=str(int(access_ttl)),
        DOT_REFRESH_TTL=str(int(refresh_ttl)),
        DOT_SCOPES=scopes,
        DOT_OIDC="1" if oidc else "0",
        DOT_COMPLETE_URI="1" if complete_uri else "0",
        DOT_INTERVAL=str(int(interval)),
        DOT_USER=USER,
        DOT_PASSWORD=password,
        DOT_CLIENT_SECRETS=json.dumps(client_secrets),
        DOT_RSA_KEY=str(_shared["key"]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    argv = [
        sys.executable,
        "-m",
        "stack.dotidp.server",
        *("--db", str(workdir / "db.sqlite3")),
        *("--template", str(shared / "template.sqlite3")),
        *("--port", "0", "--watch-stdin"),
    ]
    started = time.monotonic()
    proc = ManagedProcess(
        f"dot(access_ttl={access_ttl})", argv, cwd=INTEGRATION_DIR, env=env, stdin_pipe=True
    )
    line = proc.wait_for_line(lambda text: text.startswith("READY "), timeout)
    if line is None:
        exited = proc.poll()
        proc.stop()
        why = f"exited with code {exited}" if exited is not None else f"within {timeout}s"
        raise StackError(
            f"django-oauth-toolkit did not print READY ({why}):\n{proc.output(last=60)}"
        )
    issuer = line.split(" ", 1)[1].strip()
    try:
        metadata = _fetch_json(f"{issuer}/.well-known/oauth-authorization-server")
        discovery = _fetch_json(f"{issuer}/.well-known/openid-configuration") if oidc else metadata
    except (httpx.HTTPError, ValueError) as exc:
        proc.stop()
        raise StackError(
            f"django-oauth-toolkit at {issuer} does not serve its metadata: {exc}\n"
            f"{proc.output(last=60)}"
        ) from None
    return DotIdP(
        issuer=issuer,
        token_url=metadata["token_endpoint"],
        # DOT's metadata names no device_authorization_endpoint: this is its URL route.
        device_url=f"{issuer}/device-authorization/",
        revocation_url=metadata["revocation_endpoint"],
        introspection_url=metadata["introspection_endpoint"],
        verification_uri=f"{issuer}/device/",
        user=USER,
        password=password,
        secrets=client_secrets,
        proc=proc,
        access_ttl=access_ttl,
        scopes=tuple(scopes.split()),
        discovery=discovery,
        metadata=metadata,
        startup_seconds=time.monotonic() - started,
    )
