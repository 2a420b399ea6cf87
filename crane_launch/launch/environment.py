"""The child's environment for each door: the only channel through which crane reaches
the tool (argv is world-readable through `ps`, the environment is not).

- The guard (every run with a registered index, design section 10): crane's forward
  proxy in every proxy variable the common tools read, `NO_PROXY` limited to loopback
  (the index door's address; requests and uv do not bypass a proxy for 127.0.0.1 by
  themselves), and a CA bundle (the child's own trust plus the run's CA) in every trust
  variable the common tools read.
- Index door: on top of that, the door's one-run URL in the tool's index variable
  (`PIP_INDEX_URL`, `UV_DEFAULT_INDEX`) and the plan's removals and additions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from crane_launch.launch.plan import IndexDoorMode

__all__ = [
    "GUARD_PROXY_VARS",
    "GUARD_TRUST_VARS",
    "LOOPBACK",
    "guarded_environment",
    "index_door_environment",
    "no_proxy_covers",
]

_NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


def index_door_environment(
    environ: Mapping[str, str], mode: IndexDoorMode, index_url: str
) -> dict[str, str]:
    """`environ` shaped for a child that reaches `mode.private` through the index door."""
    env = {k: v for k, v in environ.items() if k not in mode.env_unset}
    env.update(mode.env_set)
    for name in (mode.index_env_var, *mode.also_env_vars):
        env[name] = index_url
    return env


GUARD_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
GUARD_TRUST_VARS = (
    "SSL_CERT_FILE",  # uv, OpenSSL-based tools, Python's ssl defaults
    "REQUESTS_CA_BUNDLE",  # requests: poetry, pip's vendored copy when PIP_CERT is unset
    "PIP_CERT",  # pip
    "CURL_CA_BUNDLE",  # curl, and requests' fallback
    "GIT_SSL_CAINFO",  # git over https
    "NODE_EXTRA_CA_CERTS",  # node-based tools
)
LOOPBACK = "127.0.0.1,::1"


def guarded_environment(
    environ: Mapping[str, str], proxy_url: str, ca_bundle: str, private_hosts: Sequence[str]
) -> dict[str, str]:
    """`environ` with every request of the child going through crane's guard at
    `proxy_url` and trusting the CA bundle at `ca_bundle`.

    Only loopback (the index door) is reached directly, and not even that when a private
    host is a loopback address (its requests need the door's credentials): the user's own
    `NO_PROXY` entries would let the child skip the guard, and the guard reaches those
    hosts through the user's proxy settings itself.
    """
    env = dict(environ)
    for name in GUARD_PROXY_VARS:
        env[name] = proxy_url
    for name in GUARD_TRUST_VARS:
        env[name] = ca_bundle
    direct = [
        entry
        for entry in LOOPBACK.split(",")
        if not any(no_proxy_covers(entry, host) for host in private_hosts)
    ]
    for name in _NO_PROXY_VARS:
        env[name] = ",".join(direct)
    return env


def no_proxy_covers(entry: str, host: str) -> bool:
    """Whether a NO_PROXY entry makes a client skip the proxy for `host`.

    The union of what curl, requests and uv accept: `*`, a host or domain suffix with
    or without a leading `.` or `*.`, an optional `:port`, an IP address or CIDR block.
    A private host that some entry covers would reach the index without credentials.
    """
    pattern = entry.strip().lower()
    if not pattern:
        return False
    if pattern == "*":
        return True
    if pattern.startswith("["):
        pattern = pattern[1:].split("]", 1)[0]
    elif pattern.count(":") == 1:
        pattern = pattern.split(":", 1)[0]
    host = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        try:
            return address in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            return False
    domain = pattern.removeprefix("*").lstrip(".")
    return host == domain or host.endswith("." + domain)
