"""Carry out a `Plan`: log in if needed, open the plan's door, run the child, tear down.

Order matters and is the same for every tool: credentials first (a login that nobody
can answer fails before anything starts), then the door and, for the index door, its
credential probe (a broken index fails before the child runs), then the child under
supervision, and in `finally` the requirements-file copies, the CA bundle and the door,
after the child is gone. `crane serve` opens its index door through `open_index_door`
here too.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from crane_launch.console import say, warn
from crane_launch.errors import ConfigError
from crane_launch.launch.environment import index_door_environment, transparent_environment
from crane_launch.launch.plan import (
    FileCopy,
    IndexDoorMode,
    Plan,
    TransparentDoorMode,
    Unchanged,
)
from crane_launch.launch.supervise import run_supervised
from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.server import ProxyServer
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import TokenSource, Upstream

if TYPE_CHECKING:
    from crane_launch.proxy.tls import InterceptionCA

__all__ = [
    "OpenIndexDoor",
    "credentials_for",
    "open_index_door",
    "resolve_command",
    "restore_real_urls",
    "run",
]

log = logging.getLogger(__name__)


def run(plan: Plan, environ: Mapping[str, str], *, no_input: bool) -> int:
    """Run `plan` to the end and return the child's exit code (128 + n for signal n)."""
    command = resolve_command(plan.command, environ)
    for note in plan.notes:
        say(note)
    for warning in plan.warnings:
        warn(warning)
    mode = plan.mode
    if isinstance(mode, IndexDoorMode):
        return _through_index_door(command, mode, environ, no_input=no_input)
    if isinstance(mode, TransparentDoorMode):
        return _through_transparent_door(command, mode, environ, no_input=no_input)
    assert isinstance(mode, Unchanged)  # noqa: S101 - Mode is a closed union
    return run_supervised(command, dict(environ))


def resolve_command(command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The tool the user would get by typing its name: a PATH lookup, never crane's own."""
    first = command[0]
    if os.sep in first:
        return list(command)
    found = shutil.which(first, path=environ.get("PATH", os.defpath))
    if found is None:
        raise ConfigError(f"{first} was not found on PATH; install it or activate its environment")
    return [found, *command[1:]]


def credentials_for(
    index: PrivateIndex, environ: Mapping[str, str], *, no_input: bool
) -> Credentials:
    """Credentials with a valid token now, logging in first when needed and allowed."""
    credentials = Credentials(index, TokenStore())
    policy = login_policy(
        explicit=False,
        no_input=no_input,
        environ=environ,
        stderr_isatty=sys.stderr.isatty(),
    )
    credentials.ensure(policy, TerminalUI(live=sys.stderr.isatty()), True)
    return credentials


class OpenIndexDoor:
    """A running index door: its URL for the child, its port, and its event loop."""

    def __init__(self, door: IndexDoor, server: ProxyServer) -> None:
        self._door = door
        self.port = server.port
        self.loop = server.loop

    @property
    def index_url(self) -> str:
        return self._door.index_url(self.port)


@contextlib.contextmanager
def open_index_door(
    index: PrivateIndex, public_url: str, tokens: TokenSource, *, port: int = 0
) -> Iterator[OpenIndexDoor]:
    """An index door for `index` on 127.0.0.1, its credentials proven by a probe of the
    index; stopped, and its port closed, on exit."""
    spec = IndexSpec(index.url, public_url, index.probe_path)
    upstream = Upstream(spec.url, tokens)
    door = IndexDoor(spec, upstream)
    server = ProxyServer(door, port=port)
    server.start()
    try:
        asyncio.run_coroutine_threadsafe(door.probe(), server.loop).result()
        yield OpenIndexDoor(door, server)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(upstream.aclose(), server.loop).result(5)
        server.stop()


def _through_index_door(
    command: list[str], mode: IndexDoorMode, environ: Mapping[str, str], *, no_input: bool
) -> int:
    credentials = credentials_for(mode.private, environ, no_input=no_input)
    with open_index_door(mode.private, mode.public_url, credentials) as door:
        with _written(mode.file_copies):
            env = index_door_environment(environ, mode, door.index_url)
            log.debug("running %s", command[0])
            code = run_supervised(command, env)
        if code == 0 and mode.lock_output is not None:
            restore_real_urls(mode.lock_output, door.index_url, mode.private.url)
        return code


@contextlib.contextmanager
def _written(copies: Sequence[FileCopy]) -> Iterator[None]:
    """The requirements-file copies exist (0600, never over an existing file) inside."""
    written: list[Path] = []
    try:
        for copy in copies:
            fd = os.open(copy.copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written.append(copy.copy)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(copy.text)
        yield
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


@contextlib.contextmanager
def _open_transparent_door(
    indexes: Sequence[tuple[PrivateIndex, TokenSource]],
) -> Iterator[tuple[TransparentDoor, ProxyServer, InterceptionCA]]:
    """A running forward proxy that intercepts TLS for the private hosts only."""
    from crane_launch.proxy.tls import InterceptionCA  # cryptography: only when needed

    hosts = sorted({origin_of(index.url).host for index, _ in indexes})
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


def _through_transparent_door(
    command: list[str], mode: TransparentDoorMode, environ: Mapping[str, str], *, no_input: bool
) -> int:
    from crane_launch.proxy.tls import default_trust_file, write_ca_bundle

    indexes = [
        (index, credentials_for(index, environ, no_input=no_input)) for index in mode.privates
    ]
    workdir = Path(tempfile.mkdtemp(prefix="crane-"))
    try:
        with _open_transparent_door(indexes) as (door, server, ca):
            bundle = write_ca_bundle(
                ca.cert_pem(), base_bundle=default_trust_file(environ), directory=workdir
            )
            env = transparent_environment(
                environ, door.proxy_url(server.port), str(bundle), mode.private_hosts
            )
            return run_supervised(command, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
