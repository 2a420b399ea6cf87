"""Who is on the other end of a loopback connection (Linux).

The index door's secret path token can end up where other local users see it: pip
passes its index URL on the command line of the subprocess that installs build
dependencies (`pip install ... -i <url>`), and `ps` shows every user's argv. So the
proxy does not rely on the token alone: on Linux it looks the connecting socket up in
`/proc/net/tcp[6]`, whose `uid` column names the socket's owner, and serves only its
own user. Elsewhere the owner cannot be read this way and the token is the only check.

The lookup asks the kernel for that one socket over netlink (`NETLINK_SOCK_DIAG`, about
0.02 ms); reading the whole table instead costs ~10 ms on a host with a few thousand
sockets, paid on every new connection, so the table is only the fallback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
from pathlib import Path

__all__ = ["peer_uid"]

_TABLES: dict[int, Path] = {
    socket.AF_INET: Path("/proc/net/tcp"),
    socket.AF_INET6: Path("/proc/net/tcp6"),
}


def _kernel_address(host: str, port: int) -> str:
    """An address as /proc/net/tcp writes it: the raw bytes in host order, then the port."""
    packed = ipaddress.ip_address(host).packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    text = "".join(f"{int.from_bytes(word, 'little'):08X}" for word in words)
    return f"{text}:{port:04X}"


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")
_UID_OFFSET = _NLMSG_HEADER.size + 64  # inet_diag_msg: 4 bytes, sockid (48), 3 x u32, uid


def _diag_request(family: int, peer: tuple[str, int], local: tuple[str, int]) -> bytes:
    # inet_diag_req_v2 for the socket bound at `peer` and connected to `local`: the
    # client's end of the connection, whose owner is the client's user.
    def address(host: str) -> bytes:
        return ipaddress.ip_address(host).packed.ljust(16, b"\0")

    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
    body += struct.pack(">HH", peer[1], local[1]) + address(peer[0]) + address(local[0])
    body += struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    header = _NLMSG_HEADER.pack(_NLMSG_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY,
                                _NLM_F_REQUEST, 1, 0)  # fmt: skip
    return header + body


def _uid_by_netlink(family: int, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        return None
    try:
        with socket.socket(netlink, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as diag:
            diag.settimeout(1.0)
            diag.send(_diag_request(family, peer, local))
            answer = diag.recv(8192)
    except OSError:
        return None
    if len(answer) < _UID_OFFSET + 4:
        return None
    _length, kind, _flags, _seq, _pid = _NLMSG_HEADER.unpack_from(answer)
    if kind != _SOCK_DIAG_BY_FAMILY:
        return None
    uid: int = struct.unpack_from("=I", answer, _UID_OFFSET)[0]
    return uid


def peer_uid(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid owning the client socket `peer` connected to our `local`; None if unknown."""
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    with contextlib.suppress(ValueError):
        uid = _uid_by_netlink(family, peer, local)
        if uid is not None:
            return uid
    return _uid_by_table(family, peer, local)


def _uid_by_table(family: int, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    try:
        table = _TABLES[family].read_text()
    except OSError:
        return None
    want = (_kernel_address(*peer[:2]), _kernel_address(*local[:2]))
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and (fields[1], fields[2]) == want:
            return int(fields[7])
    return None
