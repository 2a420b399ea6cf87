"""Who is on the other end of a loopback connection (Linux).

The index door's secret path token can end up where other local users see it: pip
passes its index URL on the command line of the subprocess that installs build
dependencies (`pip install ... -i <url>`), and `ps` shows every user's argv. So the
proxy does not rely on the token alone: on Linux it looks the connecting socket up in
`/proc/net/tcp[6]`, whose `uid` column names the socket's owner, and serves only its
own user. Elsewhere the owner cannot be read this way and the token is the only check.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

__all__ = ["peer_uid"]

_TABLES = {socket.AF_INET: Path("/proc/net/tcp"), socket.AF_INET6: Path("/proc/net/tcp6")}


def _kernel_address(host: str, port: int) -> str:
    """An address as /proc/net/tcp writes it: the raw bytes in host order, then the port."""
    packed = ipaddress.ip_address(host).packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    text = "".join(f"{int.from_bytes(word, 'little'):08X}" for word in words)
    return f"{text}:{port:04X}"


def peer_uid(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid owning the client socket `peer` connected to our `local`; None if unknown."""
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
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
