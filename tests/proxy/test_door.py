"""The index door: private first, a public fallback only on proven absence, 502 on errors.

The door is called directly with `Request` objects; its upstreams are scripted behind an
`httpx.MockTransport`. The last section runs it behind a real `ProxyServer` on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx
import pytest

from crane_launch.errors import ConfigError, UpstreamError
from crane_launch.proxy.cache import FileCache
from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.server import Door, ProxyServer, Reply, Request
from crane_launch.proxy.upstream import Upstream
from tests.proxy.fakes import read_reply
from tests.recording import RecordingHandler

if TYPE_CHECKING:
    from tests.proxy.fakes import FakeTokens, ScriptedOrigins

INDEX = "https://crane.example/pypi/simple/"
PUBLIC = "https://pypi.example/simple/"
TOKEN = "t0ken-abc"
CHILD_AUTHORIZATION = "Basic Y2hpbGQ6c2VjcmV0"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
JSON_TYPE = {"content-type": "application/vnd.pypi.simple.v1+json"}
HTML_TYPE = {"content-type": "text/html; charset=utf-8"}
AUTH_FAILED = f"authentication to {INDEX} failed: run `crane login {INDEX}`\n"

PRIVATE_JSON = json.dumps(
    {
        "meta": {"api-version": "1.1"},
        "name": "demo-pkg",
        "files": [
            {
                "filename": "demo_pkg-1.0.tar.gz",
                "url": "/repo/demo-pkg/demo_pkg-1.0.tar.gz",
                "hashes": {"sha256": "aa"},
            },
            {
                "filename": "demo_pkg-0.1.tar.gz",
                "url": "https://files.example/demo_pkg-0.1.tar.gz",
                "hashes": {"sha256": "bb"},
            },
        ],
    }
).encode()
PRIVATE_HTML = (
    b'<!DOCTYPE html><html><body><a href="/repo/demo/demo-1.0.tar.gz#sha256=aa"'
    b' data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a></body></html>'
)
PUBLIC_HTML = (
    b'<!DOCTYPE html><html><body><a href="../../packages/ab/demo-9.0.tar.gz#sha256=cc">'
    b"demo-9.0.tar.gz</a>"
    # A public page must not get crane to fetch from the private origin with credentials.
    b'<a href="https://crane.example/repo/demo/demo-0.0.tar.gz">demo-0.0.tar.gz</a>'
    b"</body></html>"
)
# What old Crane/RDepot index server builds answer, with status 200, for a missing project.
RDEPOT_NOT_FOUND = (
    b"<!DOCTYPE html><html><head><title>Crane - not found</title></head><body>"
    b'<div class="container"><h1>Not found</h1>'
    b"<p>The resource <code>/pypi/simple/demo/</code> was not found.</p>"
    b'<a href="https://crane.example/">Go back to the main page</a></div></body></html>'
)


@pytest.fixture
def door(origins: ScriptedOrigins, tokens: FakeTokens) -> IndexDoor:
    upstream = Upstream(INDEX, tokens, client=origins.client())
    return IndexDoor(IndexSpec(INDEX, PUBLIC), upstream, token=TOKEN)


async def _fetch(
    door: Door, target: str, method: str, headers: dict[str, str]
) -> tuple[Reply, bytes]:
    request = Request(method, target, tuple((k.lower(), v) for k, v in headers.items()))
    return await read_reply(door, request)


def ask(door: Door, target: str, method: str = "GET", **headers: str) -> tuple[Reply, bytes]:
    """Send one request to the door; header names use `_` for `-`."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return asyncio.run(_fetch(door, target, method, named))


def header(reply: Reply, name: str) -> str | None:
    return next((value for key, value in reply.headers if key.lower() == name), None)


# The index root the probe gets: a simple index with one project link.
INDEX_ROOT = b'<!DOCTYPE html><html><body><a href="demo/">demo</a></body></html>'


def prove_credentials(door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)
    asyncio.run(door.probe())
    assert door.proven


def assert_one_line_502(reply: Reply, body: bytes) -> str:
    assert reply.status == 502
    assert header(reply, "content-type") == "text/plain; charset=utf-8"
    text = body.decode()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "tok-" not in text
    return text


# -- project pages ----------------------------------------------------------------------


def test_a_private_project_is_served_with_links_through_the_door(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(INDEX + "demo-pkg/", 200, PRIVATE_JSON, JSON_TYPE)

    reply, body = ask(
        door, f"/{TOKEN}/simple/Demo_Pkg/", accept=JSON_ACCEPT, authorization=CHILD_AUTHORIZATION
    )

    assert reply.status == 200
    assert header(reply, "content-type") == JSON_TYPE["content-type"]
    assert header(reply, "content-length") == str(len(body))
    urls = [file["url"] for file in json.loads(body)["files"]]
    assert urls == [
        f"/{TOKEN}/files/repo/demo-pkg/demo_pkg-1.0.tar.gz",
        "https://files.example/demo_pkg-0.1.tar.gz",
    ]
    [request] = origins.requests
    assert request.headers["authorization"] == "Bearer tok-1"
    assert request.headers["accept"] == JSON_ACCEPT


def test_an_html_project_page_keeps_fragments_and_data_attributes(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(INDEX + "demo/", 200, PRIVATE_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/", accept="text/html")

    assert reply.status == 200
    link = f'href="/{TOKEN}/files/repo/demo/demo-1.0.tar.gz#sha256=aa"'
    assert f'{link} data-requires-python="&gt;=3.8"' in body.decode()


@pytest.mark.parametrize(
    ("private_answer", "probe_at_start"),
    [
        ((404, b"", {}), True),
        ((410, b"", {}), False),
        ((200, RDEPOT_NOT_FOUND, HTML_TYPE), True),
        ((200, RDEPOT_NOT_FOUND, HTML_TYPE), False),
    ],
    ids=["404", "410-probe-on-demand", "rdepot-200-not-found", "rdepot-200-not-found-on-demand"],
)
def test_a_project_missing_privately_comes_from_the_public_index_without_credentials(
    door: IndexDoor,
    origins: ScriptedOrigins,
    private_answer: tuple[int, bytes, dict[str, str]],
    probe_at_start: bool,
) -> None:
    if probe_at_start:
        prove_credentials(door, origins)
    else:
        origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)
    origins.answer(INDEX + "demo/", *private_answer)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(
        door, f"/{TOKEN}/simple/demo/", accept="text/html", authorization=CHILD_AUTHORIZATION
    )

    assert reply.status == 200
    assert 'href="https://pypi.example/packages/ab/demo-9.0.tar.gz#sha256=cc"' in body.decode()
    assert 'href="https://crane.example/repo/demo/demo-0.0.tar.gz"' in body.decode()
    assert TOKEN not in body.decode()
    [public] = origins.to("pypi.example")
    assert "authorization" not in public.headers
    assert public.headers["accept"] == "text/html"
    assert all(r.headers.get("authorization") != CHILD_AUTHORIZATION for r in origins.requests)


def test_a_project_missing_everywhere_is_a_404(door: IndexDoor, origins: ScriptedOrigins) -> None:
    prove_credentials(door, origins)
    origins.answer(INDEX + "nowhere/", 404)
    origins.answer(PUBLIC + "nowhere/", 404)

    reply, body = ask(door, f"/{TOKEN}/simple/nowhere/")

    assert (reply.status, body) == (404, b"")


@pytest.mark.parametrize(
    ("private_answer"),
    [(404, b"", {}), (200, RDEPOT_NOT_FOUND, HTML_TYPE)],
    ids=["404", "rdepot-200-not-found"],
)
@pytest.mark.parametrize(
    "root_answer",
    ["404", "401", "500", "connect-error"],
)
def test_a_404_before_the_credentials_are_proven_never_falls_back(
    door: IndexDoor,
    origins: ScriptedOrigins,
    private_answer: tuple[int, bytes, dict[str, str]],
    root_answer: str,
) -> None:
    # A Crane/RDepot index server answers 404 to forbidden and anonymous requests too.
    if root_answer == "connect-error":
        origins.answers[INDEX] = httpx.ConnectError
    else:
        origins.answer(INDEX, int(root_answer))
    origins.answer(INDEX + "demo/", *private_answer)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    assert "not falling back" in assert_one_line_502(reply, body)
    assert origins.to("pypi.example") == []
    assert not door.proven


@pytest.mark.parametrize(
    "failure",
    [500, 502, 400, httpx.ReadTimeout, httpx.ConnectError, "redirect"],
    ids=["500", "502", "400", "timeout", "connect-error", "redirect-to-login"],
)
def test_an_error_never_falls_back_even_with_proven_credentials(
    door: IndexDoor, origins: ScriptedOrigins, failure: object
) -> None:
    prove_credentials(door, origins)
    if failure == "redirect":
        location = "https://login.example/authorize?state=s3cret"
        origins.answer(INDEX + "demo/", 302, headers={"location": location})
    elif isinstance(failure, int):
        origins.answer(INDEX + "demo/", failure, b"<html>oops</html>", HTML_TYPE)
    else:
        assert isinstance(failure, type)
        assert issubclass(failure, httpx.TransportError)
        origins.answers[INDEX + "demo/"] = failure
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    text = assert_one_line_502(reply, body)
    assert "s3cret" not in text
    assert origins.to("pypi.example") == []
    assert origins.to("login.example") == []


def test_a_502_is_logged_under_the_crane_launch_logger_tree(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    # console.setup configures the `crane_launch` tree for -v; a line logged elsewhere
    # would escape its handler and its redaction.
    handler = RecordingHandler()
    records = handler.records
    tree = logging.getLogger("crane_launch")
    tree.addHandler(handler)
    try:
        origins.answer(INDEX + "demo/", 500)
        reply, _ = ask(door, f"/{TOKEN}/simple/demo/")
    finally:
        tree.removeHandler(handler)

    assert reply.status == 502
    assert [record.name for record in records if record.levelno >= logging.WARNING] == [
        "crane_launch.proxy.door"
    ]


def test_a_same_origin_redirect_out_of_the_index_is_an_error(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    # A login page on the index's own host answers 200 with no links: serving it would
    # look like an empty project. Only redirects that stay inside the index are followed.
    prove_credentials(door, origins)
    login = INDEX.split("/simple/", maxsplit=1)[0] + "/login?next=/simple/demo/"
    origins.answer(INDEX + "demo/", 302, headers={"location": login})
    origins.answer(login.split("?")[0], 200, b"<html>sign in</html>", HTML_TYPE)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    assert_one_line_502(reply, body)
    assert [r.url.path for r in origins.requests if r.url.path.startswith("/login")] == []
    assert origins.to("pypi.example") == []


def test_a_redirect_inside_the_index_is_followed(door: IndexDoor, origins: ScriptedOrigins) -> None:
    prove_credentials(door, origins)
    origins.answer(INDEX + "demo/", 301, headers={"location": INDEX + "demo/index.html"})
    origins.answer(INDEX + "demo/index.html", 200, PRIVATE_HTML, HTML_TYPE)

    reply, _ = ask(door, f"/{TOKEN}/simple/demo/")

    assert reply.status == 200


@pytest.mark.parametrize("proven", [False, True], ids=["unproven", "proven"])
def test_a_401_refreshes_the_token_and_retries(
    door: IndexDoor, origins: ScriptedOrigins, tokens: FakeTokens, proven: bool
) -> None:
    if proven:
        prove_credentials(door, origins)

    def page(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != "Bearer tok-2":
            return httpx.Response(401)
        return httpx.Response(200, headers=HTML_TYPE, content=PRIVATE_HTML)

    origins.answers[INDEX + "demo/"] = page

    reply, _ = ask(door, f"/{TOKEN}/simple/demo/")

    assert reply.status == 200
    assert tokens.refreshed == ["tok-1"]


@pytest.mark.parametrize(("status", "refreshes"), [(401, ["tok-1"]), (403, [])])
def test_refused_credentials_are_a_502_that_names_the_login_command(
    door: IndexDoor,
    origins: ScriptedOrigins,
    tokens: FakeTokens,
    status: int,
    refreshes: list[str],
) -> None:
    prove_credentials(door, origins)
    origins.answer(INDEX + "demo/", status)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    assert reply.status == 502
    assert body.decode() == AUTH_FAILED
    assert tokens.refreshed == refreshes
    assert origins.to("pypi.example") == []


def test_a_malformed_json_page_is_a_502(door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(INDEX + "demo/", 200, b'{"files": [', JSON_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/", accept=JSON_ACCEPT)

    assert_one_line_502(reply, body)


# -- files ------------------------------------------------------------------------------

FILE_URL = "https://crane.example/repo/demo/demo-1.0.tar.gz"
FILE_TARGET = f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz"
FILE_BYTES = bytes(range(256)) * 1024
FILE_HEADERS = {
    "content-type": "application/x-tar",
    "etag": '"v1"',
    "last-modified": "Tue, 05 Mar 2024 10:00:00 GMT",
    "accept-ranges": "bytes",
}


def test_a_file_is_streamed_with_the_bearer_token(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(FILE_URL, 200, FILE_BYTES, FILE_HEADERS)

    reply, body = ask(door, FILE_TARGET + "?v=1", authorization=CHILD_AUTHORIZATION)

    assert reply.status == 200
    assert body == FILE_BYTES
    for name, value in FILE_HEADERS.items():
        assert header(reply, name) == value
    assert header(reply, "content-length") == str(len(FILE_BYTES))
    [request] = origins.requests
    assert request.url.query == b"v=1"
    assert request.headers["authorization"] == "Bearer tok-1"


def test_a_range_request_is_forwarded_and_its_206_passed_back(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    def ranged(request: httpx.Request) -> httpx.Response:
        assert request.headers["range"] == "bytes=10-19"
        headers = {"content-range": f"bytes 10-19/{len(FILE_BYTES)}", "accept-ranges": "bytes"}
        return httpx.Response(206, headers=headers, content=FILE_BYTES[10:20])

    origins.answers[FILE_URL] = ranged

    reply, body = ask(door, FILE_TARGET, range="bytes=10-19")

    assert reply.status == 206
    assert header(reply, "content-range") == f"bytes 10-19/{len(FILE_BYTES)}"
    assert body == FILE_BYTES[10:20]


def test_head_passes_the_content_length(door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(FILE_URL, 200, headers={"content-length": "262144", **FILE_HEADERS})

    reply, body = ask(door, FILE_TARGET, "HEAD")

    assert (reply.status, body) == (200, b"")
    assert header(reply, "content-length") == "262144"
    assert origins.requests[0].method == "HEAD"


def test_a_file_redirected_to_another_origin_is_fetched_without_credentials(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    cdn = "https://cdn.example/blobs/demo-1.0.tar.gz"
    origins.answer(FILE_URL, 302, headers={"location": cdn + "?sig=abc"})
    origins.answer(cdn, 200, FILE_BYTES, FILE_HEADERS)

    reply, body = ask(door, FILE_TARGET)

    assert (reply.status, body) == (200, FILE_BYTES)
    private, foreign = origins.requests
    assert private.headers["authorization"] == "Bearer tok-1"
    assert foreign.url.host == "cdn.example"
    assert "authorization" not in foreign.headers


def test_a_file_redirected_within_the_private_origin_keeps_the_credentials(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    stored = "https://crane.example/storage/demo-1.0.tar.gz"
    origins.answer(FILE_URL, 307, headers={"location": "/storage/demo-1.0.tar.gz"})
    origins.answer(stored, 200, FILE_BYTES, FILE_HEADERS)

    reply, body = ask(door, FILE_TARGET)

    assert (reply.status, body) == (200, FILE_BYTES)
    assert [r.headers["authorization"] for r in origins.requests] == ["Bearer tok-1"] * 2


def test_a_refused_file_is_a_502_that_names_the_login_command(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(FILE_URL, 403, b"forbidden")

    reply, body = ask(door, FILE_TARGET)

    assert (reply.status, body.decode()) == (502, AUTH_FAILED)


# -- what the door does not serve -------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/wrong-token/simple/demo/",
        "/simple/demo/",
        "/",
        f"/{TOKEN}",
        f"/{TOKEN}x/simple/demo/",
        f"/{TOKEN}/other/demo/",
        f"/{TOKEN}/files/%2e%2e/etc/passwd",
        f"/{TOKEN}/files//evil.example/x",
        f"http://127.0.0.1/{TOKEN}/simple/demo/",
    ],
)
def test_anything_outside_the_door_is_an_empty_404(
    door: IndexDoor, origins: ScriptedOrigins, target: str
) -> None:
    reply, body = ask(door, target)

    assert (reply.status, body) == (404, b"")
    assert origins.requests == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "CONNECT"])
def test_only_get_and_head_are_allowed(
    door: IndexDoor, origins: ScriptedOrigins, method: str
) -> None:
    reply, _ = ask(door, f"/{TOKEN}/simple/demo/", method)

    assert reply.status == 405
    assert header(reply, "allow") == "GET, HEAD"
    assert origins.requests == []


# -- behind the loopback server ---------------------------------------------------------


@contextmanager
def serving(door: Door) -> Iterator[ProxyServer]:
    server = ProxyServer(door)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: ProxyServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def read_response(stream: BinaryIO, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head:
        return status, headers, b""
    return status, headers, stream.read(int(headers["content-length"]))


def test_one_connection_carries_head_range_and_page_requests(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    # uv's pattern: HEAD, then Range GETs, then more pages, all on one kept-alive connection.
    def file(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(200, headers={"content-length": str(len(FILE_BYTES))})
        return httpx.Response(
            206, headers={"content-range": "bytes 0-3/262144"}, content=FILE_BYTES[:4]
        )

    origins.answers[FILE_URL] = file
    origins.answer(INDEX + "demo/", 200, PRIVATE_HTML, HTML_TYPE)
    host = "Host: 127.0.0.1\r\n"

    with serving(door) as server, connect(server) as sock, sock.makefile("rb") as stream:
        sock.sendall(f"HEAD {FILE_TARGET} HTTP/1.1\r\n{host}\r\n".encode())
        head = read_response(stream, head=True)
        sock.sendall(f"GET {FILE_TARGET} HTTP/1.1\r\n{host}Range: bytes=0-3\r\n\r\n".encode())
        ranged = read_response(stream)
        sock.sendall(f"GET /{TOKEN}/simple/demo/ HTTP/1.1\r\n{host}\r\n".encode())
        page = read_response(stream)

    assert (head[0], head[1]["content-length"]) == (200, str(len(FILE_BYTES)))
    assert (ranged[0], ranged[2]) == (206, FILE_BYTES[:4])
    assert page[0] == 200
    assert f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz".encode() in page[2]


def test_64_connections_are_served_at_once() -> None:
    wanted = 64
    arrived = 0
    everyone: asyncio.Event | None = None

    async def barrier(request: Request) -> Reply:
        # Every request waits until all have arrived: they succeed only if all 64 are
        # being served at the same time.
        nonlocal arrived, everyone
        if everyone is None:
            everyone = asyncio.Event()
        arrived += 1
        if arrived == wanted:
            everyone.set()
        try:
            await asyncio.wait_for(everyone.wait(), 5)
        except TimeoutError:
            return Reply.text(503, f"only {arrived} arrived")
        return Reply.text(200, "ok")

    def one_client(server: ProxyServer) -> int:
        with connect(server) as sock, sock.makefile("rb") as stream:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return read_response(stream)[0]

    with serving(barrier) as server, ThreadPoolExecutor(wanted) as pool:
        statuses = list(pool.map(one_client, [server] * wanted, timeout=10))

    assert statuses == [200] * wanted


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "192.168.1.10", "localhost"])  # noqa: S104
def test_the_server_binds_loopback_only(host: str) -> None:
    async def never(request: Request) -> Reply:
        raise AssertionError("unreachable")

    with pytest.raises(ValueError, match="loopback"):
        ProxyServer(never, host=host)


def test_accepted_sockets_have_tcp_nodelay() -> None:
    async def report(request: Request) -> Reply:
        async def takeover(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leftover: bytes
        ) -> None:
            sock = writer.get_extra_info("socket")
            writer.write(b"%d" % sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await writer.drain()

        return Reply(200, [], takeover=takeover)

    with serving(report) as server, connect(server) as sock, sock.makefile("rb") as stream:
        sock.sendall(b"CONNECT x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n")
        status, _, _ = read_response(stream, head=True)
        nodelay = stream.read()

    assert status == 200
    assert int(nodelay) != 0


# -- only an index page proves the credentials or says what a project has -------------------

LOGIN_PAGE = b'<html><form action="/login"><input type="password" name="p"></form></html>'


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ((200, LOGIN_PAGE, HTML_TYPE), "got a page with a form (a login page?)"),
        ((200, b"", HTML_TYPE), "got an empty page"),
        ((200, b"ok", {"content-type": "text/plain"}), "got not an index page (text/plain)"),
        (
            (200, b"[1, 2]", {"content-type": "application/vnd.pypi.simple.v1+json"}),
            "got JSON without",
        ),
        ((302, b"", None), "answered 302 to an authenticated request (a redirect to "),
    ],
    ids=["login-page", "empty", "plain-text", "bad-json", "redirect-to-login"],
)
def test_a_probe_answered_with_anything_but_an_index_page_proves_nothing(
    door: IndexDoor,
    origins: ScriptedOrigins,
    answer: tuple[int, bytes, dict[str, str] | None],
    said: str,
) -> None:
    status, body, headers = answer
    if status == 302:
        login = INDEX.split("/simple/", maxsplit=1)[0] + "/login?next=x&state=s3cret"
        origins.answer(INDEX, 302, headers={"location": login})
    else:
        origins.answer(INDEX, status, body, headers)
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(door.probe())
    message = str(caught.value)
    assert said in message, message
    assert message.endswith("crane cannot prove that the index accepts its login")
    assert "s3cret" not in message
    assert not door.proven


def test_a_project_page_that_is_a_login_page_is_an_error_not_an_empty_project(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    prove_credentials(door, origins)
    origins.answer(INDEX + "demo/", 200, LOGIN_PAGE, HTML_TYPE)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    line = assert_one_line_502(reply, body)
    assert "answered 200 for demo with a page with a form" in line
    assert origins.to("pypi.example") == []


def test_a_redirect_chain_that_ends_in_a_404_is_an_error_not_absence(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    prove_credentials(door, origins)
    origins.answer(INDEX + "demo/", 302, headers={"location": INDEX + "moved/demo/"})
    origins.answer(INDEX + "moved/demo/", 404)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_HTML, HTML_TYPE)

    reply, body = ask(door, f"/{TOKEN}/simple/demo/")

    line = assert_one_line_502(reply, body)
    assert "answered 404 for demo after a redirect to" in line
    assert origins.to("pypi.example") == []


@pytest.mark.parametrize(
    "page",
    [
        b"<html><title>Sign in</title><div id=root></div><script src=login.js></script></html>",
        b"<html><body><h1>403 Forbidden</h1><p>Access denied</p></body></html>",
        b"<html><body></body></html>",
    ],
    ids=["sign-in-shell", "access-denied", "empty"],
)
def test_a_root_page_without_a_single_link_proves_nothing(
    door: IndexDoor, origins: ScriptedOrigins, page: bytes
) -> None:
    # An empty index proves itself through the probe path set at registration instead.
    origins.answer(INDEX, 200, page, HTML_TYPE)
    with pytest.raises(UpstreamError) as caught:
        asyncio.run(door.probe())
    assert "an HTML page without a single link" in str(caught.value) or "an empty page" in str(
        caught.value
    )
    assert not door.proven


def test_a_repository_version_meta_proves_an_empty_index(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    page = b'<html><head><meta name="pypi:repository-version" content="1.0"></head></html>'
    origins.answer(INDEX, 200, page, HTML_TYPE)
    asyncio.run(door.probe())
    assert door.proven


# -- an index page anybody gets ---------------------------------------------------------------


def test_an_index_page_anybody_gets_proves_nothing(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    # A wrong token would pass such a probe, and the 404 the index then gives for every
    # project would send them all to the public index.
    origins.closed_origins.clear()
    origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)
    with pytest.raises(ConfigError, match="answers without credentials too") as info:
        asyncio.run(door.probe())
    assert "--probe-path" in str(info.value)
    assert not door.proven
    anonymous = [r for r in origins.requests if "authorization" not in r.headers]
    assert [str(r.url) for r in anonymous] == [INDEX]


def test_a_probe_path_only_credentials_open_proves_them(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    origins.closed_origins.clear()
    origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)
    probe = "https://crane.example/pypi/simple/demo/"

    def closed(request: httpx.Request) -> httpx.Response:
        if "authorization" not in request.headers:
            return httpx.Response(401)
        return httpx.Response(200, headers=HTML_TYPE, content=INDEX_ROOT)

    origins.answers[probe] = closed
    upstream = Upstream(INDEX, tokens, client=origins.client())
    door = IndexDoor(IndexSpec(INDEX, PUBLIC, "/pypi/simple/demo/"), upstream, token=TOKEN)
    asyncio.run(door.probe())
    assert door.proven


def test_a_closed_index_page_is_asked_once_more_without_credentials(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    prove_credentials(door, origins)
    assert [bool(r.headers.get("authorization")) for r in origins.requests] == [True, False]


@pytest.mark.parametrize(
    ("anonymous_page", "refused"),
    [
        (b'<html><body><a href="/login">Sign in</a></body></html>', False),
        (b'<html><body><a href="demo/">demo</a></body></html>', True),
        (b'<html><body><a href="/files/demo-1.0.tar.gz">demo</a></body></html>', True),
        (b'<html><head><meta name="pypi:repository-version" content="1.0"></head></html>', True),
    ],
)
def test_only_an_anonymous_page_with_index_entries_is_an_open_index(
    origins: ScriptedOrigins, tokens: FakeTokens, anonymous_page: bytes, refused: bool
) -> None:
    origins.closed_origins.clear()

    def root(request: httpx.Request) -> httpx.Response:
        body = INDEX_ROOT if "authorization" in request.headers else anonymous_page
        return httpx.Response(200, headers=HTML_TYPE, content=body)

    origins.answers[INDEX] = root
    upstream = Upstream(INDEX, tokens, client=origins.client())
    door = IndexDoor(IndexSpec(INDEX, PUBLIC), upstream, token=TOKEN)
    if refused:
        with pytest.raises(ConfigError, match="answers without credentials too"):
            asyncio.run(door.probe())
    else:
        asyncio.run(door.probe())
        assert door.proven


# -- crane's file cache ------------------------------------------------------------------------


def _cached_door(origins: ScriptedOrigins, tokens: FakeTokens, cache: FileCache) -> IndexDoor:
    upstream = Upstream(INDEX, tokens, client=origins.client())
    return IndexDoor(IndexSpec(INDEX, PUBLIC), upstream, token=TOKEN, cache=cache)


def test_a_later_run_takes_a_hashed_file_from_the_cache(
    origins: ScriptedOrigins, tokens: FakeTokens, tmp_path: Path
) -> None:
    data = b"sdist bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    page = (
        b'<!DOCTYPE html><html><body><a href="/repo/demo/demo-1.0.tar.gz#sha256='
        + digest.encode()
        + b'">demo-1.0.tar.gz</a></body></html>'
    )
    origins.answer(INDEX + "demo/", 200, page, HTML_TYPE)
    origins.answer("https://crane.example/repo/demo/demo-1.0.tar.gz", 200, data)
    cache = FileCache(tmp_path / "cache")
    for run in (1, 2):
        door = _cached_door(origins, tokens, cache)
        prove_credentials(door, origins)
        ask(door, f"/{TOKEN}/simple/demo/")
        reply, body = ask(door, f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz")
        assert (reply.status, body) == (200, data)
        files = [r for r in origins.requests if r.url.path.endswith(".tar.gz")]
        assert len(files) == 1, f"run {run}"
    assert cache.stats.hits == 1


def test_a_file_without_a_hash_comes_from_the_cache_after_a_304(
    origins: ScriptedOrigins, tokens: FakeTokens, tmp_path: Path
) -> None:
    data = b"sdist bytes" * 100
    page = b'<html><body><a href="/repo/demo/demo-1.0.tar.gz">demo-1.0.tar.gz</a></body></html>'
    origins.answer(INDEX + "demo/", 200, page, HTML_TYPE)

    def conditional(request: httpx.Request) -> httpx.Response:
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"etag": '"v1"'})
        return httpx.Response(200, headers={"etag": '"v1"'}, content=data)

    origins.answers["https://crane.example/repo/demo/demo-1.0.tar.gz"] = conditional
    cache = FileCache(tmp_path / "cache")
    for _run in (1, 2):
        door = _cached_door(origins, tokens, cache)
        prove_credentials(door, origins)
        ask(door, f"/{TOKEN}/simple/demo/")
        reply, body = ask(door, f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz")
        assert (reply.status, body) == (200, data)
    files = [r for r in origins.requests if r.url.path.endswith(".tar.gz")]
    assert [r.headers.get("if-none-match") for r in files] == [None, '"v1"']


def test_a_page_gives_hashes_for_its_own_projects_files_only(
    origins: ScriptedOrigins, tokens: FakeTokens, tmp_path: Path
) -> None:
    # zz-evil's page names corp-shared's wheel with zz-evil's own wheel's hash: were it
    # believed, the cache would serve zz-evil's bytes for corp-shared's file.
    evil = b"evil wheel" * 50
    good = b"good wheel" * 50
    evil_digest = hashlib.sha256(evil).hexdigest()
    good_digest = hashlib.sha256(good).hexdigest()
    evil_page = (
        f'<html><body><a href="/f/zz_evil-1.0-py3-none-any.whl#sha256={evil_digest}">e</a>'
        f'<a href="/f/corp_shared-1.0-py3-none-any.whl#sha256={evil_digest}">c</a>'
        "</body></html>"
    ).encode()
    good_page = (
        f'<html><body><a href="/f/corp_shared-1.0-py3-none-any.whl#sha256={good_digest}">c</a>'
        "</body></html>"
    ).encode()
    origins.answer(INDEX + "zz-evil/", 200, evil_page, HTML_TYPE)
    origins.answer(INDEX + "corp-shared/", 200, good_page, HTML_TYPE)
    origins.answer("https://crane.example/f/zz_evil-1.0-py3-none-any.whl", 200, evil)
    origins.answer("https://crane.example/f/corp_shared-1.0-py3-none-any.whl", 200, good)
    cache = FileCache(tmp_path / "cache")
    door = _cached_door(origins, tokens, cache)
    prove_credentials(door, origins)
    ask(door, f"/{TOKEN}/simple/zz-evil/")
    ask(door, f"/{TOKEN}/files/f/zz_evil-1.0-py3-none-any.whl")
    ask(door, f"/{TOKEN}/simple/corp-shared/")
    ask(door, f"/{TOKEN}/simple/zz-evil/")
    reply, body = ask(door, f"/{TOKEN}/files/f/corp_shared-1.0-py3-none-any.whl")
    assert (reply.status, body) == (200, good)
