"""A test-only auth gate: a bearer-token-checking reverse proxy in front of pypiserver.

pypiserver has no OAuth support, so the "private index" of the integration tests is this
gate in front of it. It runs in a thread of the test process:

    gate = Gate("http://127.0.0.1:P/simple/", issuer, "urn:crane:test-index")
    private_url = gate.start()          # -> "http://127.0.0.1:G/simple/"
    ...
    gate.stop()

Every request must carry ``Authorization: Bearer <jwt>`` (or, with the knobs below, a
static token or HTTP Basic credentials). The JWT is checked with PyJWT
against the IdP's keys (``jwks_uri`` from the discovery document, cached by ``kid`` and
fetched again for an unknown ``kid``): signature, ``exp`` (no leeway), ``iss``, ``aud``, and
the scope (``index:read`` must be in the ``scope`` claim; a token without it gets 403
``insufficient_scope``). Missing or invalid token: 401 with ``WWW-Authenticate: Bearer``.
A JWT check cannot see a revocation: a revoked grant's access token passes until it expires
(oidc-provider's introspection cannot help: it answers ``{"active": false}`` for every JWT
access token, revoked or not, since those are not stored). Use ``mode = "unauthorized"`` to
play an index that refuses a token early.

GET and HEAD are forwarded (``Range``, ``Accept``, ``If-None-Match``, ``If-Modified-Since``,
``User-Agent``, and the client's ``Host`` so pypiserver's redirects point at the gate); the
answer's status and ``Content-Type``, ``Content-Length``, ``ETag``, ``Last-Modified``,
``Accept-Ranges``, ``Content-Range``, ``Location``, ``Cache-Control`` come back, and the body
is streamed in 64 KiB chunks (chunked transfer coding when upstream sent no length).
Other methods: 405.

Knobs (plain attributes, change them at any time):
- ``mode``: ``"normal"``; ``"error500"`` (every request gets 500, auth or not);
  ``"slow"`` (sleep ``slow_seconds`` before answering each request);
  ``"unauthorized"`` (every request gets 401, as if every token were revoked).
- ``required_scope``: ``"index:read"``; ``None`` to accept any scope.
- ``static_tokens``: a set of opaque bearer tokens accepted as well as the IdP's JWTs (a
  personal access token, say); no scope check. Empty by default.
- ``basic_users``: ``None`` (default: bearer tokens as above); a dict ``{user: password}``
  turns the gate into an HTTP Basic index: ``Authorization: Basic`` with a matching pair
  passes (the record's ``subject`` is the user name), anything else, bearer tokens
  included, gets 401 with ``WWW-Authenticate: Basic realm="crane-test-index"``.
- ``requests``: list of ``GateRecord(method, path, auth_ok, had_auth_header, status,
  reason, subject, credential)``, in arrival order (``credential`` is the request's
  ``Authorization`` header, for tests that look for where a credential went).
  ``clear()`` empties it; ``reset()`` restores the knobs (mode, slow_seconds,
  revoked_tokens, basic_users, static_tokens) and keeps the records.

The handler disables Nagle (``disable_nagle_algorithm``; without it every keep-alive
response waits ~40 ms for the delayed ACK), speaks HTTP/1.1 keep-alive, serves each
connection on a daemon thread, and listens with a backlog of 128.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import http.client
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import jwt

__all__ = ["Gate", "GateRecord"]

CHUNK = 64 * 1024
FORWARD_REQUEST_HEADERS = (
    "Range",
    "Accept",
    "If-None-Match",
    "If-Modified-Since",
    "If-Range",
    "User-Agent",
    "Accept-Encoding",
)
PASS_RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Length",
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Content-Range",
    "Location",
    "Cache-Control",
    "Content-Encoding",
)
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


@dataclass
class GateRecord:
    method: str
    path: str
    auth_ok: bool
    had_auth_header: bool
    status: int
    reason: str = ""  # why auth failed ("missing", "expired", "bad audience", ...) or ""
    subject: str | None = None  # the token's "sub" (the Basic user name) when auth succeeded
    credential: str | None = field(default=None, repr=False)  # the Authorization header


class _AuthFailure(Exception):
    def __init__(self, reason: str, status: int = 401, error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error


class _Keys:
    """The IdP's signing keys, found through discovery, cached by kid."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer.rstrip("/")
        self._lock = threading.Lock()
        self._keys: dict[str, object] = {}
        self._metadata: dict | None = None
        self._last_fetch = 0.0

    def metadata(self) -> dict:
        with self._lock:
            if self._metadata is None:
                url = f"{self.issuer}/.well-known/openid-configuration"
                with httpx.Client(trust_env=False, timeout=5.0) as client:
                    resp = client.get(url)
                    resp.raise_for_status()
                    self._metadata = resp.json()
            return self._metadata

    def key_for(self, kid: str | None):
        with self._lock:
            if kid in self._keys:
                return self._keys[kid]
        self._refresh(force=kid not in self._keys)
        with self._lock:
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            if kid in self._keys:
                return self._keys[kid]
        raise _AuthFailure(f"unknown signing key {kid!r}")

    def _refresh(self, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if self._keys and not force:
                return
            if self._keys and now - self._last_fetch < 1.0:
                return  # do not let a stream of bad kids hammer the IdP
        jwks_uri = self.metadata()["jwks_uri"]
        with httpx.Client(trust_env=False, timeout=5.0) as client:
            resp = client.get(jwks_uri)
            resp.raise_for_status()
            jwk_set = jwt.PyJWKSet.from_dict(resp.json())
        with self._lock:
            self._keys = {k.key_id: k.key for k in jwk_set.keys}
            self._last_fetch = now


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, gate: Gate) -> None:
        self.gate = gate
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request_thread(self, request, client_address):
        with self.sockets_lock:
            self.open_sockets.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(request)

    def handle_error(self, request, client_address):
        pass  # client went away mid-response: normal for Range/cancelled downloads


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 60
    server_version = "crane-test-gate/1"
    sys_version = ""
    server: _Server

    # -- plumbing ----------------------------------------------------------------------------
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._handle(head=False)

    def do_HEAD(self):
        self._handle(head=True)

    def _not_allowed(self):
        gate = self.server.gate
        gate._seen.credential = self.headers.get("Authorization")
        self._drain_body()
        gate._record(self.command, self.path, False, "Authorization" in self.headers, 405, "method")
        self._send_simple(405, "method not allowed\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _drain_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _send_simple(
        self, status: int, body: str, headers: dict[str, str] | None = None, head: bool = False
    ) -> None:
        data = body.encode()
        self.send_response(status)
        if "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    # -- the request -------------------------------------------------------------------------
    def _handle(self, head: bool) -> None:
        gate = self.server.gate
        method, path = self.command, self.path
        auth_header = self.headers.get("Authorization")
        had_auth = auth_header is not None
        gate._seen.credential = auth_header  # what _record files with this request

        mode = gate.mode
        if mode == "slow":
            time.sleep(gate.slow_seconds)

        try:
            claims = gate._authenticate(auth_header)
            auth_ok, reason, subject = True, "", claims.get("sub")
        except _AuthFailure as failure:
            auth_ok, reason, subject = False, failure.reason, None
            auth_error = failure
        except Exception as exc:  # IdP unreachable and such: fail closed
            auth_ok, reason, subject = False, f"check failed: {exc}", None
            auth_error = _AuthFailure(reason)

        if mode == "login":
            # A misbehaving index: the root sends everyone to a sign-in form, and every
            # project page answers 404 (how some servers hide what a token may not see).
            gate._record(method, path, auth_ok, had_auth, 302, "mode login", subject)
            if path.startswith("/login"):
                form = '<html><form action="/login" method="post"><input type="password" name="p">'
                self._send_simple(
                    200, form + "</form></html>\n", {"Content-Type": "text/html"}, head=head
                )
            elif path.rstrip("/") == gate._up_path.rstrip("/"):
                self._send_simple(302, "", {"Location": "/login?next=" + path}, head=head)
            else:
                self._send_simple(404, "not found\n", head=head)
            return
        if mode == "project-login" and path.rstrip("/") != gate._up_path.rstrip("/"):
            # The root is a real index page, but every project page is a sign-in form
            # answered 200 (not an empty project).
            gate._record(method, path, auth_ok, had_auth, 200, "mode project-login", subject)
            form = '<html><form action="/login"><input type="password" name="p"></form></html>'
            self._send_simple(200, form + "\n", {"Content-Type": "text/html"}, head=head)
            return
        if mode == "error500":
            gate._record(method, path, auth_ok, had_auth, 500, reason, subject)
            self._send_simple(500, "gate: simulated index failure\n", head=head)
            return
        refused = {"WWW-Authenticate": gate._challenge('error="invalid_token"')}
        if mode == "unauthorized":
            gate._record(method, path, False, had_auth, 401, "mode unauthorized", subject)
            self._send_simple(401, "unauthorized\n", refused, head=head)
            return
        if auth_ok and auth_header and auth_header.split(" ", 1)[-1] in gate.revoked_tokens:
            gate._record(method, path, False, had_auth, 401, "revoked", subject)
            self._send_simple(401, "unauthorized\n", refused, head=head)
            return
        if not auth_ok and gate.basic_users is not None:
            gate._record(method, path, False, had_auth, 401, reason)
            self._send_simple(
                401, "unauthorized\n", {"WWW-Authenticate": gate._challenge()}, head=head
            )
            return
        if not auth_ok:
            status = auth_error.status
            gate._record(method, path, False, had_auth, status, reason)
            if not had_auth:
                challenge = 'Bearer realm="crane-test-index"'
            else:
                challenge = (
                    f'Bearer realm="crane-test-index", error="{auth_error.error}", '
                    f'error_description="{auth_error.reason.replace(chr(34), "")}"'
                )
            if status == 403 and gate.required_scope:
                challenge += f', scope="{gate.required_scope}"'
            body = "forbidden\n" if status == 403 else "unauthorized\n"
            self._send_simple(status, body, {"WWW-Authenticate": challenge}, head=head)
            return

        self._forward(head, path, subject)

    def _upstream(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self, "_upstream_conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            gate = self.server.gate
            conn = http.client.HTTPConnection(gate._up_host, gate._up_port, timeout=30)
            self._upstream_conn = conn
        return conn

    def _forward(self, head: bool, path: str, subject: str | None) -> None:
        gate = self.server.gate
        headers = {
            name: self.headers[name] for name in FORWARD_REQUEST_HEADERS if name in self.headers
        }
        # pypiserver builds redirect URLs from Host: keep the gate's, so they point here.
        headers["Host"] = self.headers.get("Host") or f"127.0.0.1:{gate.port}"
        resp = None
        for attempt in (0, 1):
            conn = self._upstream(fresh=attempt == 1)
            try:
                conn.request(self.command, path, headers=headers)
                resp = conn.getresponse()
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._upstream_conn = None
                if attempt == 1:
                    gate._record(self.command, path, True, True, 502, f"upstream: {exc}", subject)
                    self._send_simple(502, f"gate: upstream failed: {exc}\n", head=head)
                    return
        assert resp is not None

        status = resp.status
        gate._record(self.command, path, True, True, status, "", subject)
        self.send_response(status)
        length = resp.getheader("Content-Length")
        for name in PASS_RESPONSE_HEADERS:
            value = resp.getheader(name)
            if value is None:
                continue
            if name == "Location":
                value = gate._rewrite_location(value)
            self.send_header(name, value)
        no_body = head or status in (204, 304) or 100 <= status < 200
        chunked = length is None and not no_body
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        try:
            if no_body:
                resp.read()  # nothing, but leaves the upstream connection reusable
                return
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                if chunked:
                    self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (OSError, http.client.HTTPException):
            # client or upstream went away mid-body: drop both connections
            self.close_connection = True
            self._upstream(fresh=True)
            return
        if resp.will_close:
            self._upstream_conn.close()
            self._upstream_conn = None

    def finish(self):
        conn = getattr(self, "_upstream_conn", None)
        if conn is not None:
            conn.close()
        super().finish()


class Gate:
    """See the module docstring."""

    def __init__(
        self,
        upstream_url: str,
        issuer: str,
        audience: str = "urn:crane:test-index",
        *,
        required_scope: str | None = "index:read",
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the gate forwards to plain http upstreams only: {upstream_url!r}")
        self.upstream_url = upstream_url
        self._up_host = parts.hostname
        self._up_port = parts.port or 80
        self._up_origin = f"http://{parts.netloc}"
        self._up_path = parts.path or "/"
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.required_scope = required_scope
        self.mode = "normal"
        self.slow_seconds = 2.0
        self.revoked_tokens: set[str] = set()  # access tokens answered 401 from now on
        self.basic_users: dict[str, str] | None = None  # {user: password}: Basic only
        self.static_tokens: set[str] = set()  # bearer tokens accepted besides the IdP's JWTs
        self.requests: list[GateRecord] = []
        self._records_lock = threading.Lock()
        self._seen = threading.local()  # the Authorization header of each thread's request
        self._keys = _Keys(self.issuer)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.url: str | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> str:
        """Listen on 127.0.0.1 (a free port); return the gate's URL for ``upstream_url``.

        With ``tls``, the gate speaks HTTPS (a TLS front, as a real index would) and its
        URL names ``host`` (e.g. ``localhost``, which the test certificate covers).
        """
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        if tls is not None:
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.port = self._server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.origin = f"{scheme}://{host}:{self.port}"
        self.url = self.origin + self._up_path
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"gate:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:  # end keep-alive connections still parked in handler threads
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Gate:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test helpers ------------------------------------------------------------------------
    def clear(self) -> None:
        with self._records_lock:
            self.requests.clear()

    def reset(self) -> None:
        """Restore the knobs (mode, slow_seconds, revoked_tokens, basic_users,
        static_tokens); the records stay."""
        self.mode = "normal"
        self.slow_seconds = 2.0
        self.revoked_tokens = set()
        self.basic_users = None
        self.static_tokens = set()

    def records(self, *, path_prefix: str | None = None) -> list[GateRecord]:
        with self._records_lock:
            recs = list(self.requests)
        if path_prefix is not None:
            recs = [r for r in recs if r.path.startswith(path_prefix)]
        return recs

    # -- internals -----------------------------------------------------------------------
    def _record(  # noqa: PLR0917
        self, method, path, auth_ok, had_auth, status, reason="", subject=None
    ) -> None:
        # One handler thread serves one request at a time: it set _seen for this one.
        credential = getattr(self._seen, "credential", None)
        with self._records_lock:
            self.requests.append(
                GateRecord(method, path, auth_ok, had_auth, status, reason, subject, credential)
            )

    def _challenge(self, bearer_params: str = "") -> str:
        """The ``WWW-Authenticate`` value of a 401 for the gate's current scheme."""
        if self.basic_users is not None:
            return 'Basic realm="crane-test-index", charset="UTF-8"'
        return f"Bearer {bearer_params}".rstrip()

    def _rewrite_location(self, value: str) -> str:
        if value.startswith(self._up_origin):
            return self.origin + value[len(self._up_origin) :]
        return value

    def _authenticate(self, header: str | None) -> dict:
        if header is None:
            raise _AuthFailure("missing", error="invalid_request")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        basic_users = self.basic_users
        if basic_users is not None:
            return self._check_basic(basic_users, scheme, token)
        if scheme.lower() != "bearer" or not token:
            raise _AuthFailure(f"not a bearer token ({scheme or 'empty'})", error="invalid_request")
        if any(hmac.compare_digest(token.encode(), t.encode()) for t in list(self.static_tokens)):
            return {"sub": "static-token"}
        claims = self._verify_jwt(token)
        if self.required_scope:
            scopes = str(claims.get("scope") or "").split()
            if self.required_scope not in scopes:
                raise _AuthFailure(
                    f"scope {self.required_scope} missing", 403, "insufficient_scope"
                )
        return claims

    @staticmethod
    def _check_basic(users: dict[str, str], scheme: str, encoded: str) -> dict:
        if scheme.lower() != "basic" or not encoded:
            raise _AuthFailure(f"not basic credentials ({scheme or 'empty'})")
        try:
            pair = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise _AuthFailure("malformed basic credentials") from None
        user, sep, password = pair.partition(":")
        if not sep:
            raise _AuthFailure("malformed basic credentials")
        expected = users.get(user)
        if expected is None:
            raise _AuthFailure("unknown user")
        if not hmac.compare_digest(password.encode(), expected.encode()):
            raise _AuthFailure("wrong password")
        return {"sub": user}

    def _verify_jwt(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _AuthFailure(f"malformed: {exc}") from None
        key = self._keys.key_for(header.get("kid"))
        try:
            return jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise _AuthFailure("expired") from None
        except jwt.InvalidAudienceError:
            raise _AuthFailure("bad audience") from None
        except jwt.InvalidIssuerError:
            raise _AuthFailure("bad issuer") from None
        except jwt.InvalidTokenError as exc:
            raise _AuthFailure(f"invalid: {exc}") from None

    def __repr__(self) -> str:
        return f"<Gate {self.url} -> {self.upstream_url} mode={self.mode}>"


if __name__ == "__main__":  # python gate.py UPSTREAM_URL ISSUER  (manual poking)
    import sys

    g = Gate(sys.argv[1], sys.argv[2])
    print(f"READY {g.start()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        g.stop()
        print(json.dumps([r.__dict__ for r in g.requests], indent=1))
