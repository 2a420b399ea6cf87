"""The transparent door behind a real ProxyServer, with real upstreams on 127.0.0.1.

The world: a private HTTPS index (its certificate from a CA of its own, which only the
door's upstream client trusts), a private plain-HTTP index, a public HTTP server, a TLS
server that is not private, and a TCP echo server. Every HTTP upstream records what it
was sent.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO

import httpx
import pytest

from crane_launch.config import Origin
from crane_launch.proxy.server import ProxyServer
from crane_launch.proxy.tls import InterceptionCA
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import Upstream

PASSWORD = "s3cret-pw"
HOST = "127.0.0.1"


def _port(server: socketserver.BaseServer) -> int:
    address: tuple[str, int] = server.server_address  # type: ignore[assignment]
    return address[1]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = basic("crane", PASSWORD)


@dataclass
class Seen:
    server: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class World:
    proxy: ProxyServer
    private_https: int
    private_http: int
    public_http: int
    other_tls: int
    echo: int
    crane_ca: InterceptionCA
    upstream_ca: InterceptionCA
    seen: list[Seen] = field(default_factory=list)

    def requests_for(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]


class _Tokens:
    def authorization(self) -> str:
        return "Bearer tok-1"

    def reauthorized(self, stale: str) -> str:
        raise AssertionError("no upstream here answers 401")


def _recording_server(
    name: str, seen: list[Seen], tls: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5

        def do_GET(self) -> None:
            seen.append(
                Seen(name, self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            body = f"{name}:{self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Recorder)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(5)
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    crane_ca = InterceptionCA.create([HOST])
    upstream_ca = InterceptionCA.create([HOST])
    upstream_tls = upstream_ca.leaf_ssl_context(HOST)
    seen: list[Seen] = []
    servers: list[socketserver.BaseServer] = [
        _recording_server("https-private", seen, upstream_tls),
        _recording_server("http-private", seen),
        _recording_server("http-public", seen),
        _recording_server("tls-other", seen, upstream_tls),
        socketserver.ThreadingTCPServer((HOST, 0), _Echo),
    ]
    for server in servers:
        server.daemon_threads = True  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
    https_private, http_private, http_public, tls_other, echo = (
        _port(server) for server in servers
    )
    trust_upstream = ssl.create_default_context(cadata=upstream_ca.cert_pem().decode())
    clients = [
        httpx.AsyncClient(verify=trust_upstream, trust_env=False),
        httpx.AsyncClient(trust_env=False),
        httpx.AsyncClient(trust_env=False),
    ]
    tokens = _Tokens()
    door = TransparentDoor(
        {
            Origin("https", HOST, https_private): Upstream(
                f"https://{HOST}:{https_private}/simple/", tokens, client=clients[0]
            ),
            Origin("http", HOST, http_private): Upstream(
                f"http://{HOST}:{http_private}/simple/", tokens, client=clients[1]
            ),
        },
        crane_ca.leaf_ssl_context,
        password=PASSWORD,
        public_client=clients[2],
    )
    proxy = ProxyServer(door)
    proxy.start()
    try:
        yield World(
            proxy=proxy,
            private_https=https_private,
            private_http=http_private,
            public_http=http_public,
            other_tls=tls_other,
            echo=echo,
            crane_ca=crane_ca,
            upstream_ca=upstream_ca,
            seen=seen,
        )
    finally:
        for client in clients:
            asyncio.run_coroutine_threadsafe(client.aclose(), proxy.loop).result(5)
        proxy.stop()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_of_our_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # A blind tunnel goes through the user's own proxy when the environment names one.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _connect(world: World) -> socket.socket:
    return socket.create_connection((HOST, world.proxy.port), timeout=5)


def _read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def _open_tunnel(world: World, authority: str) -> socket.socket:
    """A proxy connection after a successful CONNECT; the 200's head is consumed."""
    sock = _connect(world)
    sock.sendall(
        f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        f"Proxy-Authorization: {GOOD_AUTH}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"the proxy closed the connection after {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def _get_via_proxy(world: World, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    lines = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    with _connect(world) as sock, sock.makefile("rb") as stream:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {url.split('/')[2]}\r\n{lines}\r\n".encode())
        return _read_response(stream)


@pytest.mark.parametrize(
    "credentials",
    [None, basic("crane", "wrong"), basic("crane", ""), f"Bearer {PASSWORD}", "Basic !!"],
    ids=["none", "wrong-password", "empty-password", "bearer", "garbage"],
)
@pytest.mark.parametrize("kind", ["connect", "absolute-form"])
def test_requests_without_the_proxy_password_get_407(
    world: World, kind: str, credentials: str | None
) -> None:
    auth = f"Proxy-Authorization: {credentials}\r\n" if credentials else ""
    if kind == "connect":
        authority = f"{HOST}:{world.private_https}"
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n"
    else:
        url = f"http://{HOST}:{world.private_http}/simple/refused-{kind}/"
        request = f"GET {url} HTTP/1.1\r\nHost: {HOST}:{world.private_http}\r\n{auth}\r\n"

    with _connect(world) as sock, sock.makefile("rb") as stream:
        sock.sendall(request.encode())
        status, headers, _ = _read_response(stream)

    assert status == 407
    assert headers.get("proxy-authenticate") == 'Basic realm="crane"'
    assert world.requests_for(f"/simple/refused-{kind}/") == []


def test_a_private_http_origin_gets_the_bearer_token(world: World) -> None:
    url = f"http://{HOST}:{world.private_http}/simple/plain/"

    status, _, body = _get_via_proxy(
        world, url, proxy_authorization=GOOD_AUTH, authorization="Basic Y2hpbGQ6eA=="
    )

    assert (status, body) == (200, b"http-private:/simple/plain/")
    [seen] = world.requests_for("/simple/plain/")
    assert seen.headers["authorization"] == "Bearer tok-1"
    assert "proxy-authorization" not in seen.headers


def test_another_origin_gets_none_of_cranes_credentials(world: World) -> None:
    url = f"http://{HOST}:{world.public_http}/simple/public/"

    status, _, body = _get_via_proxy(world, url, proxy_authorization=GOOD_AUTH)

    assert (status, body) == (200, b"http-public:/simple/public/")
    [seen] = world.requests_for("/simple/public/")
    assert "authorization" not in seen.headers
    assert "proxy-authorization" not in seen.headers


def test_another_origin_gets_the_childs_own_request_unchanged(world: World) -> None:
    # Design section 10: everything but the private origin passes as the child sent it
    # (a git host's own credentials included); crane adds and removes nothing but the
    # proxy's own header.
    url = f"http://{HOST}:{world.public_http}/simple/public/"

    status, _, _ = _get_via_proxy(
        world, url, proxy_authorization=GOOD_AUTH, authorization="Basic Y2hpbGQ6eA=="
    )

    assert status == 200
    seen = world.requests_for("/simple/public/")[-1]
    assert seen.headers["authorization"] == "Basic Y2hpbGQ6eA=="
    assert "proxy-authorization" not in seen.headers


def test_connect_to_the_private_origin_is_intercepted_with_crane_s_certificate(
    world: World,
) -> None:
    trust_crane_only = ssl.create_default_context(cadata=world.crane_ca.cert_pem().decode())
    host = f"Host: {HOST}:{world.private_https}\r\n"

    with (
        _open_tunnel(world, f"{HOST}:{world.private_https}") as raw,
        trust_crane_only.wrap_socket(raw, server_hostname=HOST) as tls,
        tls.makefile("rb") as stream,
    ):
        tls.sendall(f"GET /simple/tls-one/ HTTP/1.1\r\n{host}\r\n".encode())
        first = _read_response(stream)
        tls.sendall(f"GET /simple/tls-two/ HTTP/1.1\r\n{host}\r\n".encode())
        second = _read_response(stream)

    assert (first[0], first[2]) == (200, b"https-private:/simple/tls-one/")
    assert (second[0], second[2]) == (200, b"https-private:/simple/tls-two/")
    for path in ("/simple/tls-one/", "/simple/tls-two/"):
        [seen] = world.requests_for(path)
        assert seen.headers["authorization"] == "Bearer tok-1"


def test_connect_elsewhere_is_a_blind_tunnel(world: World) -> None:
    payload = b"\x16\x03\x01 not HTTP at all\r\n\r\n\x00\xff" * 100

    with _open_tunnel(world, f"{HOST}:{world.echo}") as sock:
        sock.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "the tunnel closed early"
            echoed += chunk

    assert echoed == payload


def test_a_blind_tunnel_shows_the_real_certificate(world: World) -> None:
    trust_upstream_only = ssl.create_default_context(cadata=world.upstream_ca.cert_pem().decode())

    with (
        _open_tunnel(world, f"{HOST}:{world.other_tls}") as raw,
        trust_upstream_only.wrap_socket(raw, server_hostname=HOST) as tls,
        tls.makefile("rb") as stream,
    ):
        tls.sendall(f"GET /simple/other/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        status, _, body = _read_response(stream)

    assert (status, body) == (200, b"tls-other:/simple/other/")
    [seen] = world.requests_for("/simple/other/")
    assert "authorization" not in seen.headers
