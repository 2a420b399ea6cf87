"""The shared test gate, checking DOT's opaque access tokens by introspection (RFC 7662).

``stack.gate.Gate`` checks JWTs against the IdP's keys; DOT's access tokens are random
strings that only DOT can judge. ``IntrospectionGate`` keeps everything of ``Gate`` (the
forwarding, the knobs, the records, the scope check) and replaces only the token check,
``_verify_jwt``: it posts the token to DOT's introspection endpoint, authenticating as its
own confidential client with HTTP Basic, and turns the answer into the claims ``Gate``
expects (``sub``: the user name, or the client id of a client-credentials token;
``scope``; ``exp``; ``client_id``). ``{"active": false}`` (unknown, expired or revoked) is a
401 ``invalid_token``; an introspection that fails is a 401 too (fail closed).

Nothing is cached: every request is introspected (about 15 ms each), so a revocation at
DOT is seen by the very next request. ``introspections`` counts the calls.
"""

from __future__ import annotations

import threading

import httpx

from stack.gate import Gate, _AuthFailure

__all__ = ["IntrospectionGate"]


class IntrospectionGate(Gate):
    """``Gate`` in front of ``upstream_url`` that asks ``introspection_url`` about tokens."""

    def __init__(
        self,
        upstream_url: str,
        issuer: str,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        *,
        required_scope: str | None = "index:read",
    ) -> None:
        super().__init__(upstream_url, issuer, audience="", required_scope=required_scope)
        self.introspection_url = introspection_url
        self._auth = (client_id, client_secret)
        self._http = httpx.Client(trust_env=False, timeout=10.0)
        self._count_lock = threading.Lock()
        self.introspections = 0

    def stop(self) -> None:
        super().stop()
        self._http.close()

    def _verify_jwt(self, token: str) -> dict:  # the gate's one token check
        with self._count_lock:
            self.introspections += 1
        try:
            resp = self._http.post(
                self.introspection_url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
            )
        except httpx.HTTPError as exc:
            raise _AuthFailure(f"introspection failed: {exc}") from None
        if resp.status_code != 200:
            raise _AuthFailure(f"introspection answered {resp.status_code}")
        try:
            answer = resp.json()
        except ValueError:
            raise _AuthFailure("introspection answered no JSON") from None
        if answer.get("active") is not True:
            raise _AuthFailure("inactive")
        return {
            "sub": answer.get("username") or answer.get("client_id"),
            "scope": answer.get("scope") or "",
            "exp": answer.get("exp"),
            "client_id": answer.get("client_id"),
        }

    def __repr__(self) -> str:
        return f"<IntrospectionGate {self.url} -> {self.upstream_url} mode={self.mode}>"
