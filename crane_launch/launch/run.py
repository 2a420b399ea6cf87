"""One launcher run: log in if needed, open the index door, run the child, tear down.

Order matters and is the same for every tool: credentials first (a login that nobody
can answer fails before anything starts), then the proxy and its credential probe
(a broken index fails before the child runs), then the child under supervision, and
in `finally` the requirement-file copies and the proxy, after the child is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crane_launch.auth import Credentials, TerminalUI, TokenStore, login_policy
from crane_launch.config import PrivateIndex, atomic_write_text, origin_of, origin_url
from crane_launch.errors import ConfigError
from crane_launch.launch.plan import LaunchPlan
from crane_launch.launch.project import ProjectPlan
from crane_launch.launch.supervise import run_supervised
from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.server import ProxyServer
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import TokenSource, Upstream

if TYPE_CHECKING:
    from crane_launch.proxy.tls import InterceptionCA

__all__ = [
    "LoginOptions",
    "credentials_for",
    "open_index_door",
    "open_transparent_door",
    "resolve_command",
    "run_plan",
    "run_project_plan",
]

log = logging.getLogger("crane")


class LoginOptions:
    def __init__(self, *, no_input: bool = False, open_browser: bool = True) -> None:
        self.no_input = no_input
        self.open_browser = open_browser


def say(message: str) -> None:
    print(f"crane: {message}", file=sys.stderr, flush=True)


def credentials_for(
    index: PrivateIndex, options: LoginOptions, environ: Mapping[str, str]
) -> Credentials:
    """Credentials with a valid token now, logging in first when needed and allowed."""
    credentials = Credentials(index, TokenStore())
    policy = login_policy(
        explicit=False,
        no_input=options.no_input,
        environ=environ,
        stdin_isatty=sys.stdin.isatty(),
        stderr_isatty=sys.stderr.isatty(),
    )
    credentials.ensure(policy, TerminalUI(live=sys.stderr.isatty()), options.open_browser)
    return credentials


@contextlib.contextmanager
def open_index_door(
    spec: IndexSpec, credentials: TokenSource, *, port: int = 0, probe: bool = True
) -> Iterator[tuple[IndexDoor, ProxyServer]]:
    """A running index door on 127.0.0.1; stopped (and its port closed) on exit."""
    upstream = Upstream(spec.url, credentials)
    door = IndexDoor(spec, upstream)
    server = ProxyServer(door, port=port)
    server.start()
    try:
        if probe:
            asyncio.run_coroutine_threadsafe(door.probe(), server.loop).result()
        yield door, server
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(upstream.aclose(), server.loop).result(5)
        server.stop()


def resolve_command(command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The tool the user would get by typing its name: a PATH lookup, never crane's own."""
    first = command[0]
    if os.sep in first:
        return list(command)
    found = shutil.which(first, path=environ.get("PATH", os.defpath))
    if found is None:
        raise ConfigError(f"{first} was not found on PATH; install it or activate its environment")
    return [found, *command[1:]]


def child_environment(
    environ: Mapping[str, str], plan: LaunchPlan, index_url: str | None
) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k not in plan.env_unset}
    env.update(plan.env_set)
    if index_url is not None:
        env[plan.index_env_var] = index_url
        # requests and uv do not bypass a configured proxy for loopback by themselves.
        for name in ("NO_PROXY", "no_proxy"):
            present = [p for p in env.get(name, "").split(",") if p.strip()]
            if "127.0.0.1" not in (p.strip() for p in present):
                env[name] = ",".join([*present, "127.0.0.1"])
    return env


def run_plan(plan: LaunchPlan, options: LoginOptions, environ: Mapping[str, str]) -> int:
    command = resolve_command(plan.command, environ)
    for note in plan.notes:
        say(note)
    if plan.private is None:
        return run_supervised(command, child_environment(environ, plan, None))
    credentials = credentials_for(plan.private, options, environ)
    spec = IndexSpec(plan.private.url, plan.public_url, plan.private.probe_path)
    written = []
    try:
        with open_index_door(spec, credentials) as (door, server):
            for copy in plan.file_copies:
                _write_private(copy.copy, copy.text)
                written.append(copy.copy)
            index_url = door.index_url(server.port)
            env = child_environment(environ, plan, index_url)
            log.debug("running %s", command[0])
            code = run_supervised(command, env)
            if code == 0 and plan.lock_output is not None:
                restore_real_urls(plan.lock_output, index_url, plan.private.url)
            return code
    finally:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()


def restore_real_urls(path: Path, door_index_url: str, private_url: str) -> None:
    """Rewrite a lock file the child wrote through the index door so that it names the
    real index: `<door>/simple/` becomes the private index URL, `<door>/files/<path>` the
    file's URL on the private origin. Written atomically, mode kept; absent file: no-op."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read to restore the index URLs ({exc})") from None
    door_base = door_index_url.removesuffix("simple/")
    origin = origin_url(origin_of(private_url))
    restored = text.replace(door_index_url, private_url).replace(door_base + "files/", origin + "/")
    if restored != text:
        atomic_write_text(path, restored, mode=path.stat().st_mode & 0o777)
        say(f"{path.name}: recorded the real index URLs instead of crane's one-run proxy")


def _write_private(path: os.PathLike[str], text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def open_transparent_door(
    indexes: Sequence[tuple[PrivateIndex, TokenSource]],
) -> Iterator[tuple[TransparentDoor, ProxyServer, InterceptionCA]]:
    """A running forward proxy that intercepts TLS for the private hosts only."""
    from crane_launch.proxy.tls import InterceptionCA

    hosts = sorted({origin_of(index.url)[1] for index, _ in indexes})
    ca = InterceptionCA.create(hosts)
    privates = {origin_of(index.url): Upstream(index.url, tokens) for index, tokens in indexes}
    door = TransparentDoor(privates, ca.leaf_ssl_context)
    server = ProxyServer(door)
    server.start()
    try:
        yield door, server, ca
    finally:

        async def close_all() -> None:
            for upstream in privates.values():
                await upstream.aclose()
            await door.aclose()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), server.loop).result(5)
        server.stop()


_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
_CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")


def transparent_environment(
    environ: Mapping[str, str], proxy_url: str, ca_bundle: str, private_hosts: Sequence[str]
) -> dict[str, str]:
    """The child's environment: crane's proxy and a CA bundle; private hosts not bypassed."""
    env = {k: v for k, v in environ.items() if k not in ("ALL_PROXY", "all_proxy")}
    for name in _PROXY_VARS:
        env[name] = proxy_url
    for name in _CA_VARS:
        env[name] = ca_bundle
    hosts = [h.lower() for h in private_hosts]
    for name in ("NO_PROXY", "no_proxy"):
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


def run_project_plan(plan: ProjectPlan, options: LoginOptions, environ: Mapping[str, str]) -> int:
    from crane_launch.proxy.tls import default_trust_file, write_ca_bundle

    command = resolve_command(plan.command, environ)
    for note in plan.notes:
        say(note)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    if not plan.privates:
        return run_supervised(command, dict(environ))
    indexes = [(index, credentials_for(index, options, environ)) for index in plan.privates]
    workdir = Path(tempfile.mkdtemp(prefix="crane-"))
    try:
        with open_transparent_door(indexes) as (door, server, ca):
            bundle = write_ca_bundle(
                ca.cert_pem(), base_bundle=default_trust_file(environ), directory=workdir
            )
            env = transparent_environment(
                environ, door.proxy_url(server.port), str(bundle), plan.private_hosts
            )
            return run_supervised(command, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
