"""The proxy serves its own user only: another local user's connection is closed."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from crane_launch.proxy import peer
from crane_launch.proxy.peer import peer_uid
from crane_launch.proxy.server import ProxyServer, Reply, Request


async def _ok(_request: Request) -> Reply:
    return Reply.text(200, "ok")


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def _get_as(uid: int, port: int) -> bytes:
    """GET from a forked process running as `uid` (needs root to switch)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_end)
            os.setgid(uid)
            os.setuid(uid)
            try:
                answer = _get(port)
            except OSError as exc:
                answer = f"error {exc.__class__.__name__}".encode()
            os.write(write_end, answer or b"closed")
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks)


@pytest.fixture
def server() -> Iterator[ProxyServer]:
    proxy = ProxyServer(_ok)
    proxy.start()
    yield proxy
    proxy.stop()


def test_peer_uid_names_the_owner_of_a_loopback_client() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert peer_uid(accepted.getpeername(), accepted.getsockname()) == os.getuid()


def test_the_proxy_serves_its_own_user(server: ProxyServer) -> None:
    assert _get(server.port).startswith(b"HTTP/1.1 200")


def test_another_local_user_is_refused(server: ProxyServer) -> None:
    # The test machines run the suite as root, which can become another user here.
    assert os.geteuid() == 0, "this test switches to another uid and needs root"
    answer = _get_as(65534, server.port)
    assert not answer.startswith(b"HTTP/"), answer


def test_the_kernel_lookup_and_the_table_agree_on_another_users_socket() -> None:
    # Both lookups must see the client's end: the owner of the connecting process.
    assert os.geteuid() == 0, "this test switches to another uid and needs root"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        to_parent, from_child = os.pipe()
        to_child, from_parent = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.setgid(65534)
                os.setuid(65534)
                client = socket.create_connection(listener.getsockname())
                os.write(from_child, b"x")
                os.read(to_child, 1)  # hold the connection until the parent has looked
                client.close()
            finally:
                os._exit(0)
        assert os.read(to_parent, 1) == b"x"
        accepted, _ = listener.accept()
        with accepted:
            ends = (accepted.getpeername(), accepted.getsockname())
            by_kernel = peer._uid_by_netlink(socket.AF_INET, *ends)
            by_table = peer._uid_by_table(socket.AF_INET, *ends)
        os.write(from_parent, b"x")
        os.waitpid(pid, 0)
        for fd in (to_parent, from_child, to_child, from_parent):
            os.close(fd)
    assert by_kernel == by_table == 65534
