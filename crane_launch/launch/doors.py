"""The doors of one run: the loopback server with the index door, the transparent door
and the guard, and what is judged through them before and after the child runs.

`launch.run` imports this module only for a plan that has a registered index in play,
so a command that runs a tool unchanged (`crane pip --version`, `crane uv --help`)
never pays for importing the proxy, httpx and the authentication code.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psutil

from crane_launch.auth import (
    Authorizer,
    TerminalUI,
    TokenStore,
    authorizer_for,
    describe_scheme,
    login_policy,
)
from crane_launch.config import (
    PrivateIndex,
    atomic_write_text,
    cache_dir,
    normalise_url,
    origin_of,
    origin_url,
    shown_url,
)
from crane_launch.console import say
from crane_launch.errors import EXIT_CONFIG, ConfigError, CraneError
from crane_launch.launch.environment import guarded_environment, index_door_environment
from crane_launch.launch.locks import LockedPackage, find_locks, lock_violations, read_lock
from crane_launch.launch.plan import (
    DirectReference,
    FileCopy,
    IndexDoorMode,
    PipxRecord,
    Plan,
)
from crane_launch.launch.report import Report
from crane_launch.launch.supervise import run_supervised
from crane_launch.proxy.cache import FileCache
from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.guard import Guard, NameStatus, distribution_projects
from crane_launch.proxy.provenance import Ledger
from crane_launch.proxy.server import ProxyServer, Reply, Request
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import TokenSource, Upstream

__all__ = [
    "GuardedDoors",
    "OpenIndexDoor",
    "account",
    "credentials_for",
    "file_cache",
    "index_spec",
    "open_index_door",
    "restore_real_urls",
    "through_index_door",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_PUBLIC_CHECK_WAIT = 1.0
"""Seconds the end of a run waits for the public index to say whether it has the
private projects of the run (the checks start as soon as each project is served)."""


def credentials_for(
    index: PrivateIndex, environ: Mapping[str, str], *, no_input: bool
) -> Authorizer:
    """The index's authorizer, ready now: logged in first when needed and allowed, its
    secret read, its first client-credentials token fetched (`auth.authorizer_for`)."""
    policy = login_policy(
        explicit=False,
        no_input=no_input,
        environ=environ,
        stderr_isatty=sys.stderr.isatty(),
    )
    return authorizer_for(
        index,
        environ,
        store=TokenStore(),
        policy=policy,
        ui=TerminalUI(live=sys.stderr.isatty()),
    )


def file_cache(environ: Mapping[str, str]) -> FileCache:
    """crane's file cache for this run (`--no-cache`, or `CRANE_NO_CACHE` through the
    option, turns it off before this is asked). A cap (`CRANE_CACHE_MAX_SIZE`) that cannot
    be read is a `ConfigError` naming it."""
    try:
        return FileCache.for_run(environ, cache_dir())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def index_spec(index: PrivateIndex, public_url: str) -> IndexSpec:
    """What the proxy is told of `index`: its URLs, its probe path, and what to do when it
    refuses crane's credentials."""
    advice = None
    if index.auth != "device":
        advice = f"check the index's credentials: {describe_scheme(index)}"
    return IndexSpec(index.url, public_url, index.probe_path, auth_advice=advice)


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
    index: PrivateIndex,
    public_url: str,
    tokens: TokenSource,
    *,
    port: int = 0,
    cache: FileCache | None = None,
) -> Iterator[OpenIndexDoor]:
    """An index door alone for `index` on 127.0.0.1 (`crane serve`), its credentials
    proven by a probe of the index; stopped, and its port closed, on exit."""
    upstream = Upstream(index.url, tokens)
    door = IndexDoor(index_spec(index, public_url), upstream, cache=cache)
    server = ProxyServer(door, port=port)
    server.start()
    try:
        _on_loop(server, door.probe())
        yield OpenIndexDoor(door, server)
    finally:
        with contextlib.suppress(Exception):
            _on_loop(server, upstream.aclose(), timeout=5)
        server.stop()


def _on_loop(server: ProxyServer, work: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    return asyncio.run_coroutine_threadsafe(work, server.loop).result(timeout)


class GuardedDoors:
    """One run's loopback server: the index door of each private index (served for the
    first, probed and asked by the guard for all) and the transparent door with the
    guard. A context manager: everything starts on enter and is gone on exit."""

    def __init__(
        self,
        indexes: Sequence[tuple[PrivateIndex, TokenSource]],
        public_url: str,
        *,
        pass_through: frozenset[str],
        cache: FileCache | None = None,
        check_public: bool = True,
    ) -> None:
        from crane_launch.proxy.tls import InterceptionCA  # cryptography: only when needed

        self._upstreams = [Upstream(index.url, tokens) for index, tokens in indexes]
        self.ledger = Ledger()
        self._index_doors = [
            IndexDoor(index_spec(index, public_url), upstream, cache=cache, ledger=self.ledger)
            for (index, _tokens), upstream in zip(indexes, self._upstreams, strict=True)
        ]
        if public_url and check_public:
            self.ledger.public_check = self._index_doors[0].public_has
        self._ca = InterceptionCA.create_for_guard()
        privates = {
            origin_of(index.url): upstream
            for (index, _tokens), upstream in zip(indexes, self._upstreams, strict=True)
        }
        self.guard = Guard(self._index_doors, privates)
        self._transparent = TransparentDoor(
            privates,
            self._ca.leaf_ssl_context,
            guard=self.guard,
            pass_through=pass_through,
            ledger=self.ledger,
            private_indexes={origin_of(index.url): index.url for index, _tokens in indexes},
        )
        self._server = ProxyServer(self._dispatch)
        _sweep_stale(Path(tempfile.gettempdir()), _RUN_DIR_PREFIX)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{_RUN_DIR_PREFIX}{os.getpid()}-"))
        self._private_hosts = sorted({origin_of(index.url).host for index, _ in indexes})

    async def _dispatch(self, request: Request) -> Reply:
        """Origin-form requests are for the index door; CONNECT and absolute-form ones for
        the transparent door, except those addressed to this very server (a child whose
        private index is on loopback reaches the index door through its proxy)."""
        target = request.target
        if request.method != "CONNECT" and target.startswith("http://"):
            own = f"http://127.0.0.1:{self._server.port}/"
            if target.startswith(own):
                target = target[len(own) - 1 :]
        if request.method == "CONNECT" or target.startswith("http://"):
            return await self._transparent(request)
        return await self._index_doors[0](dataclasses.replace(request, target=target))

    def __enter__(self) -> GuardedDoors:
        self._server.start()
        try:
            for door in self._index_doors:
                _on_loop(self._server, door.probe())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        async def close_all() -> None:
            for upstream in self._upstreams:
                await upstream.aclose()
            await self._transparent.aclose()

        with contextlib.suppress(Exception):
            _on_loop(self._server, close_all(), timeout=5)
        self._server.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    @property
    def index_url(self) -> str:
        """The index door's URL for the child (the first private index's)."""
        return self._index_doors[0].index_url(self._server.port)

    @property
    def proxy_url(self) -> str:
        """The guard as the child's proxy: `http://crane:<password>@127.0.0.1:<port>`."""
        return self._transparent.proxy_url(self._server.port)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop both doors run on (for profiling)."""
        return self._server.loop

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` with every request of the child going through the guard."""
        from crane_launch.proxy.tls import default_trust_file, write_ca_bundle

        bundle = write_ca_bundle(
            self._ca.cert_pem(), base_bundle=default_trust_file(environ), directory=self._workdir
        )
        return guarded_environment(environ, self.proxy_url, str(bundle), self._private_hosts)

    def verify_locks(self, project_dir: Path | None) -> None:
        """Refuse (ConfigError, exit 3) a lock file in `project_dir` that takes a project
        one of the private indexes serves from anywhere else."""
        if project_dir is not None:
            self.verify_lock_files(find_locks(project_dir))

    def verify_lock_files(self, locks: Sequence[Path]) -> None:
        """The same for the lock files `locks`."""
        packages = [
            package for lock in locks for package in read_lock(lock, project_dir=lock.parent)
        ]
        if not packages:
            return
        self._note_locked(packages)
        names = sorted({package.name for package in packages})
        for door in self._index_doors:
            served = self._served(door, names)
            violations = lock_violations(
                packages, private_url=door.private_url, private_names=served
            )
            if violations:
                more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
                raise ConfigError(violations[0].message(door.private_url) + more)

    def _note_locked(self, packages: Sequence[LockedPackage]) -> None:
        """Tell the ledger which index each locked file comes from: a tool installing
        from a lock fetches files without pages, and a file on a private host may be a
        mirror's."""
        privates = [door.private_url for door in self._index_doors]
        for package in packages:
            registry = next(
                (
                    loc
                    for kind, loc in zip(package.kinds, package.sources, strict=True)
                    if kind in ("registry", "reference")
                ),
                None,
            )
            if registry is None or "://" not in registry:
                continue
            try:
                private = normalise_url(registry) in privates
            except CraneError:
                continue
            for kind, location in zip(package.kinds, package.sources, strict=True):
                if kind in ("sdist", "wheel", "file") and "://" in location:
                    self.ledger.locked_file(
                        location,
                        project=package.name,
                        source="private" if private else "public",
                        index=registry,
                    )

    def verify_find_links(self, directories: Sequence[Path]) -> None:
        """Refuse (ConfigError, exit 3) a local find-links directory that holds a file of a
        project one of the private indexes serves: the tool would take it from there."""
        files = [
            (path, project)
            for path in _find_links_files(directories)
            for project in distribution_projects(path.name)
        ]
        for door in self._index_doors:
            served = self._served(door, sorted({project for _, project in files}))
            for path, project in files:
                if project in served:
                    raise ConfigError(
                        f"find-links location {path.parent} holds {path.name}, a file of "
                        f"{project}, a project of private index {door.private_url}; remove "
                        "it, or publish it to the private index"
                    )

    def verify_references(self, references: Sequence[DirectReference]) -> None:
        """Refuse (ConfigError, exit 3) a requirement that takes a project one of the
        private indexes serves from a URL or an index that is not that private index."""
        for door in self._index_doors:
            foreign = [ref for ref in references if not _on_private_index(ref, door.private_url)]
            nameless = next((ref for ref in foreign if not ref.project), None)
            if nameless is not None:
                raise ConfigError(
                    f"{nameless.place}: {shown_url(nameless.url)} does not say which project it "
                    f"is; write it as `name @ {shown_url(nameless.url)}` so that crane can check "
                    f"it is not a project of private index {door.private_url}"
                )
            served = self._served(door, sorted({ref.project for ref in foreign}))
            for ref in foreign:
                if ref.project in served:
                    raise ConfigError(
                        f"{ref.place}: {ref.project} would come from {shown_url(ref.url)}, but "
                        f"{ref.project} is a project of private index {door.private_url}; "
                        "remove the URL or the pin to install it from the private index"
                    )

    def _served(self, door: IndexDoor, names: Sequence[str]) -> set[str]:
        return _on_loop(self._server, _served_names(door, names))

    def provenance(self, wait: float = _PUBLIC_CHECK_WAIT) -> Ledger:
        """The run's ledger, once the public index checks still running have had up to
        `wait` seconds to finish (call it after the child is gone)."""
        _on_loop(self._server, self.ledger.settle(wait), timeout=wait + 5)
        return self.ledger

    @property
    def indexes(self) -> list[dict[str, str]]:
        """The private indexes of the run and the public index each falls back to."""
        return [
            {"url": door.spec.url, "public_index": door.spec.public_url}
            for door in self._index_doors
        ]

    def verdict(self, code: int) -> int:
        """The run's exit code: the child's, or 3 when the guard refused a request."""
        if not self.guard.refusals:
            return code
        for line in dict.fromkeys(refusal.line() for refusal in self.guard.refusals):
            say(f"guard: {line}")
        return EXIT_CONFIG


def account(
    plan: Plan,
    doors: GuardedDoors,
    report: Report | None,
    *,
    child: int | None,
    outcome: int | None,
    error: CraneError | None,
) -> None:
    """The end of a run with open doors: the provenance line when the child ran, and the
    record in `report` (`crane --report FILE`) whatever happened (`Report.write`)."""
    try:
        # Stopped by a signal (128 + n) or by an error: no waiting for the public index.
        finished = child is not None and 0 <= child < 128
        ledger = doors.provenance(wait=_PUBLIC_CHECK_WAIT if finished else 0.0)
    except Exception as exc:  # the loop is gone: say nothing rather than hide the real end
        log.debug("no provenance: %s", type(exc).__name__)
        return
    if child is not None:
        say(ledger.summary())
    if report is None:
        return
    report.write(
        ledger,
        command=plan.command,
        tool=plan.tool,
        guarded=True,
        outcome=outcome,
        child=child,
        error=error,
        indexes=doors.indexes,
        refusals=[refusal.line() for refusal in doors.guard.refusals],
    )


def _find_links_files(locations: Sequence[Path]) -> list[Path]:
    """The files local find-links locations offer: a directory's entries, or the file."""
    files: list[Path] = []
    for location in locations:
        try:
            if location.is_dir():
                files += [location / name for name in sorted(os.listdir(location))]
            elif location.is_file():
                files.append(location)
        except OSError:
            continue
    return files


def _on_private_index(reference: DirectReference, private_url: str) -> bool:
    """Whether `reference` points at the private index itself (or a file on its origin).
    A VCS URL never does (an index serves files, not repositories), nor does a URL that
    parsers read differently (`config.origin_of` refuses it)."""
    if reference.kind == "index":
        try:
            return normalise_url(reference.url) == private_url
        except CraneError:
            return False
    if "+" in reference.url.split(":", 1)[0]:
        return False
    try:
        return origin_of(reference.url) == origin_of(private_url)
    except ValueError:
        return False


async def _served_names(door: IndexDoor, names: Sequence[str]) -> set[str]:
    """The names of `names` the door's private index serves; an unknown one is an error
    (crane cannot tell, so it does not let the project come from elsewhere)."""
    slots = asyncio.Semaphore(8)

    async def one(name: str) -> tuple[str, NameStatus, str]:
        async with slots:
            return (name, *await door.project_status(name))

    answers = await asyncio.gather(*(one(name) for name in names))
    for name, status, reason in answers:
        if status is NameStatus.UNKNOWN:
            raise CraneError(f"cannot tell whether {door.private_url} has {name}: {reason}")
    return {name for name, status, _ in answers if status is NameStatus.SERVED}


def through_index_door(
    command: list[str], mode: IndexDoorMode, environ: Mapping[str, str], doors: GuardedDoors
) -> int:
    record = mode.pipx_record
    before = _metadata_times(record.venvs) if record is not None else {}
    with _written(mode.file_copies):
        env = index_door_environment(doors.environment(environ), mode, doors.index_url)
        log.debug("running %s", command[0])
        try:
            code = run_supervised(command, env)
        finally:
            if record is not None:
                record_pipx_index(record, before, mode.private.url)
            for recorded in mode.recorded:  # whatever the outcome: uv may have written them
                for path in sorted(recorded.directory.glob(recorded.pattern)):
                    if recorded.only is None or path.parent.name in recorded.only:
                        restore_real_urls(
                            path, doors.index_url, mode.private.url, collapse_repeats=True
                        )
                    else:
                        remove_door_entries(path, doors.index_url)
    if code == 0 and mode.lock_output is not None:
        restore_real_urls(mode.lock_output, doors.index_url, mode.private.url)
    return code


_RUN_DIR_PREFIX = "crane-run-"
_COPY_PREFIX = ".crane-"


def _sweep_stale(directory: Path, prefix: str) -> None:
    """Remove what a crane killed outright left in `directory`: per-run files and folders
    named `<prefix><pid>-...`, ours, whose process is gone."""
    with contextlib.suppress(OSError):
        for entry in directory.glob(prefix + "*"):
            pid = entry.name.removeprefix(prefix).split("-", 1)[0]
            with contextlib.suppress(OSError, ValueError):
                if not pid.isdigit() or psutil.pid_exists(int(pid)):
                    continue
                if entry.lstat().st_uid != os.getuid():
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
                log.debug("removed %s, left by a crane that was killed", entry)


@contextlib.contextmanager
def _written(copies: Sequence[FileCopy]) -> Iterator[None]:
    """The requirements-file copies exist (0600, never over an existing file) inside."""
    for directory in {copy.copy.parent for copy in copies}:
        _sweep_stale(directory, _COPY_PREFIX)
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


_PIPX_METADATA = "*/pipx_metadata.json"
_INDEX_ARGS = ("--index-url", "-i", "--index", "--pypi-url")


def _metadata_times(venvs: Path) -> dict[Path, int]:
    times: dict[Path, int] = {}
    for path in venvs.glob(_PIPX_METADATA):
        with contextlib.suppress(OSError):
            times[path] = path.stat().st_mtime_ns
    return times


def record_pipx_index(record: PipxRecord, before: Mapping[Path, int], private_url: str) -> None:
    """In each pipx metadata file the run wrote (new, or changed since `before`) of the
    environments `record` allows, give every package whose recorded pip arguments name no
    index `--index-url <private_url>` (the injected ones only, for `inject`)."""
    from crane_launch.launch.pipx import recorded_pip_args  # pipx runs only

    for path, mtime in _metadata_times(record.venvs).items():
        if before.get(path) == mtime:
            continue
        if record.only is not None and path.parent.name not in record.only:
            continue
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # pipx's own file, unreadable to pipx too: nothing to add to
        changed = False
        for args in recorded_pip_args(metadata, main_package=record.main_package):
            if not any(
                isinstance(arg, str) and arg.split("=", 1)[0].startswith(_INDEX_ARGS)
                for arg in args
            ):
                args += ["--index-url", private_url]
                changed = True
        if changed:
            text = json.dumps(metadata, indent=4, sort_keys=True) + "\n"
            atomic_write_text(path, text, mode=path.stat().st_mode & 0o777)
            say(f"{path.parent.name}: pipx records the private index for later upgrades")


def _rewritable(path: Path, why: str) -> str | None:
    """The text of a file crane rewrites after the run; None when there is none."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read {why} ({exc})") from None


def remove_door_entries(path: Path, door_index_url: str) -> None:
    """Take the door's entries out of a tool receipt: an inline table naming its URL in an
    array, a `key = "<door URL>"` line. For a receipt that named no private index before
    the run (uv records the run's default index in every receipt it rewrites)."""
    text = _rewritable(path, "to remove crane's proxy")
    if text is None:
        return
    url = re.escape(door_index_url.rstrip("/")) + "/?"
    cleaned = re.sub(r'\{[^{}\n]*"' + url + r'"[^{}\n]*\}(, )?', "", text)
    cleaned = re.sub(r"^[A-Za-z0-9_-]+ = \"" + url + r"\"\n", "", cleaned, flags=re.M)
    cleaned = cleaned.replace(", ]", "]")
    if cleaned != text:
        atomic_write_text(path, cleaned, mode=path.stat().st_mode & 0o777)


_REPEATED_INLINE_TABLE = re.compile(r"(\{[^{}\n]*\})(?:, \1)+")


def restore_real_urls(
    path: Path, door_index_url: str, private_url: str, *, collapse_repeats: bool = False
) -> None:
    """Rewrite a lock file the child wrote through the index door so that it names the
    real index: `<door>/simple/` becomes the private index URL, `<door>/files/<path>` the
    file's URL on the private origin. Written atomically, mode kept; absent file: no-op.

    `collapse_repeats` (uv's tool receipts): an inline table repeated right after itself
    is kept once. uv puts each run's default index first in the receipt, so without this
    every `crane uv tool upgrade` would add one more entry for the same index."""
    text = _rewritable(path, "to restore the index URLs")
    if text is None:
        return
    door_base = door_index_url.removesuffix("simple/")
    origin = origin_url(origin_of(private_url))
    restored = (
        text.replace(door_index_url, private_url)
        .replace(door_index_url.rstrip("/"), private_url.rstrip("/"))
        .replace(door_base + "files/", origin + "/")
    )
    if collapse_repeats:
        restored = _REPEATED_INLINE_TABLE.sub(r"\1", restored)
    if restored != text:
        atomic_write_text(path, restored, mode=path.stat().st_mode & 0o777)
        say(f"{path.name}: recorded the real index URLs instead of crane's one-run proxy")
