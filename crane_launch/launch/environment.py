"""The child's environment for each door: the only channel through which crane reaches
the tool (argv is world-readable through `ps`, the environment is not).

- Index door: the door's one-run URL in the tool's index variable (`PIP_INDEX_URL`,
  `UV_DEFAULT_INDEX`), the plan's removals and additions, and loopback in `NO_PROXY`
  (requests and uv do not bypass a configured proxy for 127.0.0.1 by themselves).
- Transparent door: crane's forward proxy in every proxy variable, a CA bundle (the
  child's own trust plus the run's CA) in every trust variable, and no `NO_PROXY` entry
  that would let the child skip crane for a private host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from crane_launch.launch.plan import IndexDoorMode

__all__ = ["index_door_environment", "no_proxy_covers", "transparent_environment"]

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
_CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")
_NO_PROXY_VARS = ("NO_PROXY", "no_proxy")


def index_door_environment(
    environ: Mapping[str, str], mode: IndexDoorMode, index_url: str
) -> dict[str, str]:
    """`environ` shaped for a child that reaches `mode.private` through the index door."""
    env = {k: v for k, v in environ.items() if k not in mode.env_unset}
    env.update(mode.env_set)
    env[mode.index_env_var] = index_url
    for name in _NO_PROXY_VARS:
        present = [p for p in env.get(name, "").split(",") if p.strip()]
        if "127.0.0.1" not in (p.strip() for p in present):
            env[name] = ",".join([*present, "127.0.0.1"])
    return env


def transparent_environment(
    environ: Mapping[str, str], proxy_url: str, ca_bundle: str, private_hosts: Sequence[str]
) -> dict[str, str]:
    """`environ` shaped for a child that reaches `private_hosts` through the transparent
    door at `proxy_url`, trusting the CA bundle at `ca_bundle`."""
    env = {k: v for k, v in environ.items() if k not in ("ALL_PROXY", "all_proxy")}
    for name in _PROXY_VARS:
        env[name] = proxy_url
    for name in _CA_VARS:
        env[name] = ca_bundle
    hosts = [h.lower() for h in private_hosts]
    for name in _NO_PROXY_VARS:
        if name in env:
            kept = [
                entry
                for entry in env[name].split(",")
                if entry.strip() and not any(no_proxy_covers(entry, host) for host in hosts)
            ]
            env[name] = ",".join(kept)
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
