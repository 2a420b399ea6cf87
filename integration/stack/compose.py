"""Compose the integration stack outside pytest too (the demo and benchmarks use it).

``make_stack`` starts the IdP (idp.mjs) and the gate and returns a ``Stack``: the IdP's
endpoints, the public device client ``client_id`` (``crane-test``), and two confidential
clients whose secrets are new random strings for every IdP:

- ``ci_client_id`` / ``ci_client_secret``: ``crane-ci``, the client credentials grant
  (client_secret_basic); ask for scope ``index:read`` (``CI_SCOPE``) to get a JWT the gate
  accepts (``client_credentials_token()`` does it by hand);
- ``confidential_client_id`` / ``confidential_client_secret``: ``crane-test-confidential``,
  a device-flow client that authenticates with client_secret_basic.

The IdP writes ``EVENT client.auth <route> <client_id> <basic|post|none> <status>`` for
every client authentication (see idp.mjs), so a test can tell how a client authenticated.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stack import servers, wheels
from stack.gate import Gate
from stack.user import complete_device_flow, deny_device_flow

CLIENT_ID = "crane-test"
CI_CLIENT_ID = "crane-ci"
CONFIDENTIAL_CLIENT_ID = "crane-test-confidential"
CI_SCOPE = "index:read"
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
    # The confidential clients (defaults: idp.mjs's own, for a Stack built by hand).
    ci_client_id: str = CI_CLIENT_ID
    ci_client_secret: str = field(default=servers.IDP_DEFAULT_SECRETS[CI_CLIENT_ID], repr=False)
    confidential_client_id: str = CONFIDENTIAL_CLIENT_ID
    confidential_client_secret: str = field(
        default=servers.IDP_DEFAULT_SECRETS[CONFIDENTIAL_CLIENT_ID], repr=False
    )

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

    def client_credentials_token(
        self, scope: str | None = CI_SCOPE, *, secret: str | None = None, **extra: str
    ) -> httpx.Response:
        """A client credentials request of ``crane-ci`` (client_secret_basic), by hand."""
        data = {"grant_type": "client_credentials", **extra}
        if scope:
            data["scope"] = scope
        return httpx.post(
            self.token_url,
            data=data,
            auth=(self.ci_client_id, self.ci_client_secret if secret is None else secret),
            trust_env=False,
        )

    def login_tokens(self, scope: str | None = None, *, login: str = "alice") -> dict:
        """A whole device flow without crane: returns the token response (dict)."""
        auth = self.device_authorize(scope)
        self.complete(auth["verification_uri_complete"], login=login)
        resp = self.poll_token(auth["device_code"])
        resp.raise_for_status()
        return resp.json()


def discover(issuer: str) -> dict:
    resp = httpx.get(f"{issuer}/.well-known/openid-configuration", trust_env=False, timeout=5)
    resp.raise_for_status()
    return resp.json()


def make_stack(
    *,
    idp_ttl: int,
    private_upstream: str,
    public_url: str,
    private_dir: Path,
    public_dir: Path,
    refresh_ttl: int = 86400,
    device_ttl: int = 600,
):
    client_secrets = {
        CI_CLIENT_ID: f"ci-secret-{secrets.token_hex(16)}",
        CONFIDENTIAL_CLIENT_ID: f"device-secret-{secrets.token_hex(16)}",
    }
    issuer, idp = servers.start_idp(
        access_ttl=idp_ttl,
        refresh_ttl=refresh_ttl,
        device_ttl=device_ttl,
        client_secrets=client_secrets,
    )
    gate = None
    try:
        meta = discover(issuer)
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
            ci_client_secret=client_secrets[CI_CLIENT_ID],
            confidential_client_secret=client_secrets[CONFIDENTIAL_CLIENT_ID],
        )
    except BaseException:
        if gate is not None:
            gate.stop()
        idp.stop()
        raise


@contextlib.contextmanager
def running_indexes(root: Path) -> Iterator[dict]:
    """The two pypiservers with the test wheels (private and public)."""
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


@contextlib.contextmanager
def running_stack(root: Path | None = None, *, access_ttl: int = 300) -> Iterator[Stack]:
    """The whole stack (IdP, gate, both indexes), stopped on exit."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crane-stack-")))
        indexes = stack.enter_context(running_indexes(root))
        built = make_stack(idp_ttl=access_ttl, **indexes)
        try:
            yield built
        finally:
            built.gate.stop()
            built.idp.stop()
