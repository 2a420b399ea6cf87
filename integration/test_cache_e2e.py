"""crane's verified file cache for the index door (issue 12), end to end: real pip, real uv,
the session's private pypiserver behind the gate (its links carry ``#sha256=``), and small
stdlib indexes of the test's own for what pypiserver cannot show (files without hashes,
revalidated with ETags; a page whose hash is wrong).

What the cache promises, and every test here counts at the index (``gate.records()``):

- a private file whose link carries a sha256 is kept in ``$CRANE_HOME/cache/files/sha256/
  <first two hex digits>/<hex digest>`` (0600 files, 0700 directories), verified while it
  streams; a later run whose page links the same hash gets it from disk, without a
  request to the index, whatever the tool's own cache holds;
- a cached file changed on disk is noticed and fetched again; a mismatch while streaming
  fails the child's download and stores nothing;
- a file without a hash is revalidated: the index answers 304 and sends no body;
- concurrent runs share the cache; ``--no-cache`` / ``CRANE_NO_CACHE=1`` leave it alone;
  ``crane cache dir|info|clean``; ``CRANE_CACHE_MAX_SIZE`` caps it.

The private index takes a static bearer token here (``--auth token``, the gate's
``static_tokens``): the cache does not depend on the scheme, and a device-flow login costs
every test 5 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from harness import CRANE, Crane, Result, uv_env
from stack.gate import Gate, GateRecord
from stack.wheels import PRIVATE_SET, build_private, build_wheel, module_name, wheel_filename

EXPECTED = {
    "crane-private-app": ("private", "1.0"),
    "public-only-dep": ("public", "1.0"),
    "decoy-pkg": ("private", "1.0"),  # the public index offers 99.0: never taken
}
PRIVATE_PROJECTS = tuple(name for name, _version, _requires in PRIVATE_SET)
TOKEN_VARIABLE = "CACHE_TEST_INDEX_TOKEN"  # a variable's name
HEX64 = re.compile(r"[0-9a-f]{64}")
# What a temporary or half-written file may be called; none may outlive a run.
LEFTOVER = re.compile(r"(\.tmp|\.temp|\.part|\.partial|\.incomplete|\.download|~)$|^\.?tmp", re.I)


# -- helpers -----------------------------------------------------------------------------------


def explain(result: Result) -> str:
    return (
        f"exit {result.code}\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-5000:]}"
    )


def installed(target: Path) -> dict[str, tuple[str, str]]:
    """{project: (ORIGIN, VERSION)} of the test packages installed into ``target``."""
    found = {}
    for name in EXPECTED:
        init = target / module_name(name) / "__init__.py"
        if init.exists():
            scope: dict[str, str] = {}
            exec(init.read_text(), scope)  # noqa: S102 - our own generated test module
            found[name] = (scope["ORIGIN"], scope["VERSION"])
    return found


def install_argv(
    tool: str, url: str, target: Path, requirements: tuple[str, ...] = (), *, flags=()
) -> list[str]:
    """crane's arguments for ``[flags] <tool> install --target T -i URL requirements``."""
    argv = ["install", "--target", str(target), "-i", url]
    argv += list(requirements or PRIVATE_PROJECTS)
    if tool == "uv":
        return [*flags, "uv", "pip", *argv]
    return [*flags, "pip", *argv]


def install(
    crane: Crane,
    url: str,
    target: Path,
    *requirements: str,
    tool: str = "pip",
    flags: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Result:
    env = env or crane.env
    if tool == "uv":
        env = uv_env(env)
    return crane.run(*install_argv(tool, url, target, requirements, flags=flags), env=env)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def private_wheels(stack) -> dict[str, Path]:
    """{project: the wheel the private index serves}."""
    return {
        name: Path(stack.private_dir) / wheel_filename(name, version)
        for name, version, _requires in PRIVATE_SET
    }


def cache_root(env: dict[str, str]) -> Path:
    return Path(env["CRANE_HOME"]) / "cache"


def hashed_path(env: dict[str, str], digest: str) -> Path:
    return cache_root(env) / "files" / "sha256" / digest[:2] / digest


def cache_files(env: dict[str, str]) -> list[Path]:
    root = cache_root(env)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored_files(env: dict[str, str]) -> list[Path]:
    """Every file under the cache's ``files/`` tree (the cached downloads, whatever their
    layout: hashed or not)."""
    files = cache_root(env) / "files"
    return sorted(p for p in files.rglob("*") if p.is_file()) if files.exists() else []


def hashed_entries(env: dict[str, str]) -> dict[str, Path]:
    """{digest: path} under ``files/sha256``; asserts the layout (``xx/<64 hex>`` with ``xx``
    its first two digits, beside it at most its ``.stamp``), that every entry's content
    hash is its name, and that no stamp outlives its entry."""
    base = cache_root(env) / "files" / "sha256"
    found: dict[str, Path] = {}
    stamps: list[Path] = []
    if not base.exists():
        return found
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        relative = path.relative_to(base)
        assert len(relative.parts) == 2, f"not an entry of the hashed layout: {relative}"
        prefix, name = relative.parts
        digest = name.removesuffix(".stamp")
        assert HEX64.fullmatch(digest), f"a stray file: {relative}"
        assert prefix == digest[:2], f"an entry in the wrong directory: {relative}"
        if name != digest:
            stamps.append(path)
            continue
        assert sha256_of(path) == name, f"an entry whose content is not its hash: {relative}"
        found[name] = path
    for stamp in stamps:
        assert stamp.name.removesuffix(".stamp") in found, f"a stamp without its entry: {stamp}"
    return found


def leftovers(env: dict[str, str]) -> list[str]:
    root = cache_root(env)
    return [str(p.relative_to(root)) for p in cache_files(env) if LEFTOVER.search(p.name)]


def file_requests(records: list[GateRecord]) -> list[GateRecord]:
    """The requests that reached the index for a file (pypiserver: ``/packages/...``)."""
    return [r for r in records if r.path.startswith("/packages/")]


def fetched_names(records: list[GateRecord]) -> set[str]:
    """File names the index answered with a body (GET, 200 or 206)."""
    return {
        r.path.rsplit("/", 1)[-1]
        for r in file_requests(records)
        if r.method == "GET" and r.status in (200, 206)
    }


def empty_tool_caches(env: dict[str, str]) -> None:
    for key in ("PIP_CACHE_DIR", "UV_CACHE_DIR"):
        shutil.rmtree(env[key])
        Path(env[key]).mkdir()


@pytest.fixture
def private(stack, crane) -> Iterator[Crane]:
    """crane with the stack's private index registered with a static bearer token (the
    gate takes it for the test's duration), the public index as its fallback."""
    token = "cache-" + os.urandom(16).hex()
    result = crane.run(
        "index", "register", stack.private_url, "--auth", "token", "--token-env", TOKEN_VARIABLE,
        "--public-index", stack.public_url,
    )  # fmt: skip
    assert result.code == 0, explain(result)
    crane.env[TOKEN_VARIABLE] = token
    stack.gate.reset()
    stack.gate.static_tokens = {token}
    stack.gate.clear()
    try:
        yield crane
    finally:
        stack.gate.reset()


# -- 1. run 2 asks the index for no private file ----------------------------------------------


@pytest.mark.parametrize("tool_cache", ["kept", "emptied"])
@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_run_2_takes_every_private_file_from_cranes_cache(
    stack, private, tmp_path, tool, tool_cache
):
    env = private.env
    wheels = private_wheels(stack)
    first = install(private, stack.private_url, tmp_path / "run1", tool=tool)
    assert first.code == 0, explain(first)
    assert installed(tmp_path / "run1") == EXPECTED
    # Run 1 fetched every private file from the index, and kept each under its hash.
    assert fetched_names(stack.gate.records()) >= {w.name for w in wheels.values()}
    for wheel in wheels.values():
        entry = hashed_path(env, sha256_of(wheel))
        assert entry.is_file(), f"{wheel.name} is not in the cache: {cache_files(env)}"
        assert entry.read_bytes() == wheel.read_bytes()

    if tool_cache == "emptied":  # crane's cache alone must serve the files
        empty_tool_caches(env)
    stack.gate.clear()
    second = install(private, stack.private_url, tmp_path / "run2", tool=tool)
    assert second.code == 0, explain(second)
    assert installed(tmp_path / "run2") == EXPECTED

    records = stack.gate.records()
    assert file_requests(records) == [], "run 2 asked the index for a private file"
    # Pages are never cached: private-first is decided afresh, at the index.
    asked = {r.path for r in records if r.status == 200}
    for project in PRIVATE_PROJECTS:
        assert f"/simple/{project}/" in asked, sorted(asked)


# -- 2. a tampered entry is rejected and fetched again -----------------------------------------


@pytest.mark.parametrize("stamp", ["changed", "mtime-restored"])
@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_tampered_cached_file_is_fetched_again(stack, private, tmp_path, tool, stamp):
    """One byte of a cached wheel overwritten in place between the runs, the same size.
    ``mtime-restored`` puts the modification time back as well (as ``cp -p``, ``rsync -t``
    or a restored CI cache do with a damaged file): the change time and the content still
    tell."""
    env = private.env
    wheels = private_wheels(stack)
    first = install(private, stack.private_url, tmp_path / "run1", tool=tool)
    assert first.code == 0, explain(first)

    digest = sha256_of(wheels["decoy-pkg"])
    entry = hashed_path(env, digest)
    assert entry.is_file(), cache_files(env)
    before = entry.stat()
    with entry.open("r+b") as handle:
        offset = before.st_size // 2
        handle.seek(offset)
        original = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([original[0] ^ 0xFF]))
    if stamp == "mtime-restored":
        os.utime(entry, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert sha256_of(entry) != digest

    stack.gate.clear()
    second = install(private, stack.private_url, tmp_path / "run2", tool=tool)
    assert second.code == 0, explain(second)
    assert installed(tmp_path / "run2") == EXPECTED
    fetched = fetched_names(stack.gate.records())
    assert wheels["decoy-pkg"].name in fetched, "the tampered file was not fetched again"
    assert wheels["crane-private-app"].name not in fetched  # the good entry still served
    assert entry.is_file()
    assert sha256_of(entry) == digest, "the corrupt entry was not replaced"
    assert leftovers(env) == []


def _restamp(entry: Path) -> None:
    """Make the entry's stamp describe the file as it is now: corruption that no stat
    change gives away (bit rot, a bad disk block), as far as a test can play it. The
    ``.stamp`` file's format is crane's (``crane_launch/proxy/cache.py``): JSON whose
    ``stamp`` maps stat fields (``ino``, ``size``, ``mtime_ns``, ...) to their values."""
    stamp_file = entry.with_name(entry.name + ".stamp")
    data = json.loads(stamp_file.read_text())
    now = entry.stat()
    data["stamp"] = {key: getattr(now, f"st_{key}") for key in data["stamp"]}
    stamp_file.write_text(json.dumps(data))


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_rot_under_a_good_stamp_is_healed_in_the_same_run(stack, private, tmp_path, tool):
    """A cached wheel of several MiB damaged near its start while its stamp still holds:
    the door finds out only while streaming it, cuts the download and drops the entry.
    The run must still install the right file (fetched from the index again), and leave
    the right one in the cache; pip resumes a cut download with ``Range: bytes=N-``, so
    the first N bytes it kept are the damaged ones."""
    big = build_wheel(stack.private_dir, "cache-rot-pkg", "1.0", pad_bytes=3 * 1024 * 1024)
    try:
        env = private.env
        digest = sha256_of(big)
        first = install(private, stack.private_url, tmp_path / "run1", "cache-rot-pkg", tool=tool)
        assert first.code == 0, explain(first)
        entry = hashed_path(env, digest)
        assert entry.is_file(), cache_files(env)
        with entry.open("r+b") as handle:
            handle.seek(4096)
            original = handle.read(1)
            handle.seek(4096)
            handle.write(bytes([original[0] ^ 0xFF]))
        _restamp(entry)

        stack.gate.clear()
        second = install(private, stack.private_url, tmp_path / "run2", "cache-rot-pkg", tool=tool)
        assert second.code == 0, explain(second)
        pad = tmp_path / "run2" / "cache_rot_pkg" / "_pad.bin"
        with zipfile.ZipFile(big) as wheel:
            assert pad.read_bytes() == wheel.read("cache_rot_pkg/_pad.bin")
        assert big.name in fetched_names(stack.gate.records())
        assert sha256_of(entry) == digest
    finally:
        big.unlink()


# -- 3. concurrent runs share the cache --------------------------------------------------------


@pytest.mark.parametrize("tools", [("pip", "uv"), ("pip", "pip")], ids=["pip+uv", "pip+pip"])
def test_two_concurrent_runs_share_an_empty_cache(stack, private, tmp_path, tools):
    env = private.env
    stack.gate.mode = "slow"  # every request waits a little: the two runs overlap
    stack.gate.slow_seconds = 0.2
    procs: list[subprocess.Popen] = []
    try:
        for i, tool in enumerate(tools):
            argv = install_argv(tool, stack.private_url, tmp_path / f"target{i}")
            procs.append(
                subprocess.Popen(
                    [*CRANE, *argv],
                    env=uv_env(env) if tool == "uv" else env,
                    cwd=private.cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    text=True,
                )
            )
        outputs = [proc.communicate(timeout=180) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        stack.gate.reset()
    for i, (proc, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, explain(Result(proc.returncode, out, err))
        assert installed(tmp_path / f"target{i}") == EXPECTED

    entries = hashed_entries(env)  # asserts: each entry's content is its hash
    for wheel in private_wheels(stack).values():
        assert sha256_of(wheel) in entries, f"{wheel.name} missing: {sorted(entries)}"
    assert leftovers(env) == []


# -- 4. --no-cache and CRANE_NO_CACHE=1 --------------------------------------------------------


@pytest.mark.parametrize("how", ["--no-cache", "CRANE_NO_CACHE=1"])
def test_a_run_without_the_cache_neither_reads_nor_writes_it(stack, private, tmp_path, how):
    env = private.env
    wheels = private_wheels(stack)
    if how == "--no-cache":
        off: dict = {"flags": ("--no-cache",)}
    else:
        off = {"env": {**env, "CRANE_NO_CACHE": "1"}}

    # A run without the cache leaves none behind.
    cold = install(private, stack.private_url, tmp_path / "cold", **off)
    assert cold.code == 0, explain(cold)
    assert installed(tmp_path / "cold") == EXPECTED
    assert stored_files(env) == []

    warm = install(private, stack.private_url, tmp_path / "warm")
    assert warm.code == 0, explain(warm)
    snapshot = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in stored_files(env)}
    assert len(hashed_entries(env)) >= len(wheels)

    # With the cache warm, a run without it still asks the index for every private file.
    stack.gate.clear()
    again = install(private, stack.private_url, tmp_path / "again", **off)
    assert again.code == 0, explain(again)
    assert installed(tmp_path / "again") == EXPECTED
    assert fetched_names(stack.gate.records()) >= {w.name for w in wheels.values()}
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in stored_files(env)} == snapshot


# -- 5. crane cache dir | info | clean ---------------------------------------------------------


def _info(crane: Crane) -> dict[str, str | int]:
    """``crane cache info``, read: directory, entries, cap, and the last run's files served
    from the cache (``hits``) of those asked for (``asked``)."""
    info = crane.run("cache", "info")
    assert info.code == 0, explain(info)
    text = info.stdout
    found: dict[str, str | int] = {}
    directory = re.search(r"^directory:\s*(.+)$", text, re.M)
    entries = re.search(r"\bin (\d+) files?\b", text)
    cap = re.search(r"\bcap ([\d.]+ ?\w+)", text)
    assert directory, text
    assert entries, text
    assert cap, text
    found.update(directory=directory.group(1).strip(), entries=int(entries.group(1)))
    found["cap"] = cap.group(1)
    last = re.search(r"(\d+) of (\d+) files? from the cache", text)
    if last:
        found.update(hits=int(last.group(1)), asked=int(last.group(2)))
    return found


def test_cache_dir_info_and_clean(stack, private, tmp_path):
    env = private.env
    env["CRANE_CACHE_MAX_SIZE"] = "500M"
    root = cache_root(env)
    shown = private.run("cache", "dir")
    assert shown.code == 0, explain(shown)
    assert Path(shown.stdout.strip()) == root

    first = install(private, stack.private_url, tmp_path / "run1")
    assert first.code == 0, explain(first)
    info = _info(private)
    assert Path(str(info["directory"])) == root
    assert info["cap"] in ("500 MiB", "500.0 MiB", "500M", "500 M"), info
    assert (info["hits"], info["asked"]) == (0, len(PRIVATE_PROJECTS)), info  # run 1: misses

    second = install(private, stack.private_url, tmp_path / "run2")
    assert second.code == 0, explain(second)
    info = _info(private)
    assert (info["hits"], info["asked"]) == (len(PRIVATE_PROJECTS),) * 2, info  # run 2: hits
    entries = hashed_entries(env)
    assert len(entries) == len(PRIVATE_PROJECTS)
    assert info["entries"] == len(entries), info

    # Private packages are confidential: 0700 directories, 0600 files, all the way down.
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path.relative_to(root)}: {oct(mode)}"
        else:
            assert mode == 0o600, f"{path.relative_to(root)}: {oct(mode)}"

    cleaned = private.run("cache", "clean")
    assert cleaned.code == 0, explain(cleaned)
    assert stored_files(env) == []
    assert _info(private)["entries"] == 0

    stack.gate.clear()
    third = install(private, stack.private_url, tmp_path / "run3")
    assert third.code == 0, explain(third)
    assert fetched_names(stack.gate.records()) >= {w.name for w in private_wheels(stack).values()}


def test_the_size_cap_evicts(stack, private, tmp_path):
    env = private.env
    sizes = sorted(w.stat().st_size for w in private_wheels(stack).values())
    cap = sizes[-1] + 16  # room for the larger wheel, not for both
    assert cap < sum(sizes)
    env["CRANE_CACHE_MAX_SIZE"] = str(cap)
    result = install(private, stack.private_url, tmp_path / "run1")
    assert result.code == 0, explain(result)
    assert installed(tmp_path / "run1") == EXPECTED
    entries = hashed_entries(env)
    assert entries, "nothing cached at all"
    assert sum(p.stat().st_size for p in entries.values()) <= cap, sorted(entries)
    assert leftovers(env) == []


# -- an index of the test's own: no hashes, or a wrong one -------------------------------------


@dataclass
class Served:
    method: str
    path: str
    status: int
    body_bytes: int


@dataclass
class TinyIndex:
    """A stdlib PEP 503 index (root page, project pages, ``/packages/<file>``), no auth of
    its own. ``link_hash(file)`` gives a link's ``#sha256=`` value, or None for none. Files
    carry a strong ETag (their sha256) and Last-Modified, and a matching
    ``If-None-Match`` (or, without one, ``If-Modified-Since``) gets 304 with no body. No
    ``Accept-Ranges``: uv downloads whole files."""

    files: dict[str, list[Path]]
    link_hash: dict[str, str | None] = field(default_factory=dict)
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def start(self) -> str:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _TinyHandler)
        self.server.daemon_threads = True
        self.server.index = self  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def record(self, method: str, path: str, status: int, body_bytes: int) -> None:
        with self.lock:
            self.served.append(Served(method, path, status, body_bytes))

    def file_answers(self) -> list[Served]:
        with self.lock:
            return [s for s in self.served if s.path.startswith("/packages/")]

    def clear(self) -> None:
        with self.lock:
            self.served.clear()


def _page(title: str, links: list[tuple[str, str]]) -> bytes:
    anchors = "".join(f'<a href="{href}">{text}</a>\n' for href, text in links)
    return (
        '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
        f"<title>{title}</title></head><body>\n{anchors}</body></html>\n"
    ).encode()


class _TinyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30

    def log_message(self, format, *args):
        pass

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _send(self, status: int, body: bytes, head: bool, **headers: str) -> None:
        index: TinyIndex = self.server.index  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if not head and status != 304:
            self.wfile.write(body)
            sent = len(body)
        index.record(self.command, self.path, status, sent)

    def _answer(self, head: bool) -> None:
        index: TinyIndex = self.server.index  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        html = "text/html; charset=utf-8"
        if path == "/simple/":
            links = [(f"/simple/{p}/", p) for p in index.files]
            self._send(200, _page("Simple index", links), head, Content_Type=html)
            return
        if path.startswith("/simple/") and path.endswith("/"):
            project = path.removeprefix("/simple/").strip("/")
            if project not in index.files:
                self._send(404, b"not found\n", head, Content_Type="text/plain")
                return
            links = []
            for file in index.files[project]:
                digest = index.link_hash.get(file.name)
                fragment = f"#sha256={digest}" if digest else ""
                links.append((f"/packages/{file.name}{fragment}", file.name))
            self._send(200, _page(f"Links for {project}", links), head, Content_Type=html)
            return
        if path.startswith("/packages/"):
            name = path.removeprefix("/packages/")
            found = [f for files in index.files.values() for f in files if f.name == name]
            if found:
                self._file(found[0], head)
                return
        self._send(404, b"not found\n", head, Content_Type="text/plain")

    def _file(self, file: Path, head: bool) -> None:
        data = file.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        mtime = int(file.stat().st_mtime)
        validators = {"ETag": etag, "Last_Modified": formatdate(mtime, usegmt=True)}
        match = self.headers.get("If-None-Match")
        since = self.headers.get("If-Modified-Since")
        fresh = False
        if match is not None:
            tags = [t.strip().removeprefix("W/") for t in match.split(",")]
            fresh = etag in tags or "*" in tags
        elif since is not None:
            with contextlib.suppress(TypeError, ValueError):
                fresh = parsedate_to_datetime(since).timestamp() >= mtime
        if fresh:
            self._send(304, b"", head, **validators)
            return
        self._send(200, data, head, Content_Type="application/octet-stream", **validators)


@pytest.fixture
def own_index(stack, crane, tmp_path):
    """``make(link_hash) -> (TinyIndex, Gate)``: the test's own index with the private
    wheels, behind a gate that takes a static bearer token, registered in crane
    (``--auth token``) with the stack's public index as the fallback."""
    made: list[tuple[TinyIndex, Gate]] = []

    def make(link_hash: dict[str, str | None]) -> tuple[TinyIndex, Gate]:
        wheels = build_private(tmp_path / "own-index")
        index = TinyIndex(
            {name: [w for w in wheels if w.name.startswith(module_name(name) + "-")]
             for name in PRIVATE_PROJECTS},
            dict(link_hash),
        )  # fmt: skip
        index.start()
        gate = Gate(index.url, stack.issuer, stack.audience)
        made.append((index, gate))
        url = gate.start()
        token = "own-" + os.urandom(16).hex()
        gate.static_tokens = {token}
        crane.env[TOKEN_VARIABLE] = token
        result = crane.run(
            "index", "register", url, "--auth", "token", "--token-env", TOKEN_VARIABLE,
            "--public-index", stack.public_url,
        )  # fmt: skip
        assert result.code == 0, explain(result)
        return index, gate

    try:
        yield make
    finally:
        for index, gate in made:
            gate.stop()
            index.stop()


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_file_without_a_hash_is_revalidated_and_served_from_the_cache(
    own_index, crane, tmp_path, tool
):
    index, gate = own_index({})  # no link carries a hash
    wheels = {f.name: f.read_bytes() for files in index.files.values() for f in files}
    first = install(crane, gate.url, tmp_path / "run1", tool=tool)
    assert first.code == 0, explain(first)
    assert installed(tmp_path / "run1") == EXPECTED
    bodies = {s.path.rsplit("/", 1)[-1] for s in index.file_answers() if s.body_bytes}
    assert bodies == set(wheels)
    kept = {p.read_bytes() for p in cache_files(crane.env)}
    for name, data in wheels.items():
        assert data in kept, f"{name} was not kept in the cache"

    index.clear()
    gate.clear()
    second = install(crane, gate.url, tmp_path / "run2", tool=tool)
    assert second.code == 0, explain(second)
    assert installed(tmp_path / "run2") == EXPECTED
    answers = index.file_answers()
    asked = {s.path.rsplit("/", 1)[-1] for s in answers}
    assert asked == set(wheels), answers  # each file revalidated at the index...
    assert all(s.status == 304 and s.body_bytes == 0 for s in answers), answers  # ...no body
    assert all(r.status == 304 for r in file_requests(gate.records())), gate.records()


def _mismatching_install(
    own_index, crane, tmp_path, tool, *, retries: bool = False
) -> tuple[Result, Path, str]:
    """Install ``decoy-pkg`` from an index whose page gives a wrong sha256 for its wheel
    (uv without its retries, which take seconds of back-off, unless ``retries``)."""
    wrong = hashlib.sha256(b"not the file the index serves").hexdigest()
    index, gate = own_index({wheel_filename("decoy-pkg", "1.0"): wrong})
    [wheel] = index.files["decoy-pkg"]
    env = crane.env if retries else {**crane.env, "UV_HTTP_RETRIES": "0"}
    result = install(crane, gate.url, tmp_path / "t", "decoy-pkg", tool=tool, env=env)
    assert result.code != 0, explain(result)
    assert installed(tmp_path / "t") == {}
    assert any(s.body_bytes for s in index.file_answers()), "the file was never fetched"
    return result, wheel, wrong


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_hash_mismatch_while_streaming_fails_the_run_and_stores_nothing(
    own_index, crane, tmp_path, tool
):
    _result, wheel, wrong = _mismatching_install(own_index, crane, tmp_path, tool)
    # Nothing stored: not under the page's hash, not under the real one, no half file.
    assert stored_files(crane.env) == [], stored_files(crane.env)
    assert not hashed_path(crane.env, wrong).exists()
    assert not hashed_path(crane.env, sha256_of(wheel)).exists()
    assert wheel.read_bytes() not in {p.read_bytes() for p in cache_files(crane.env)}
    assert leftovers(crane.env) == []


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_hash_mismatch_is_said_in_one_line(own_index, crane, tmp_path, tool):
    result, _wheel, _wrong = _mismatching_install(own_index, crane, tmp_path, tool)
    assert "does not match the hash its page gave" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_hash_mismatch_never_reaches_the_tool_whole(own_index, crane, tmp_path, tool):
    """The door cuts the download before its last byte, so the child never holds the whole
    wrong file, whatever way the tool asks for it again (pip resumes an interrupted
    download with ``Range: bytes=N-``): the tool's own hash check never gets to run."""
    result, _wheel, _wrong = _mismatching_install(own_index, crane, tmp_path, tool, retries=True)
    output = (result.stdout + result.stderr).lower()
    assert "hash mismatch" not in output, explain(result)  # uv's own check
    assert "do not match the hashes" not in output, explain(result)  # pip's own check
