"""crane's file cache: verified storage, stamps, eviction, and the replies it makes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crane_launch.proxy.cache import DEFAULT_MAX_SIZE, FileCache, parse_size
from crane_launch.proxy.cached import CorruptDownload, byte_range, disk_reply, teed_reply
from crane_launch.proxy.server import Reply, Request
from crane_launch.proxy.upstream import streamed_reply

DATA = b"wheel bytes " * 1000
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def cache(tmp_path: Path) -> FileCache:
    return FileCache(tmp_path / "cache")


def store(cache: FileCache, data: bytes = DATA, digest: str = DIGEST) -> None:
    writer = cache.writer(sha256=digest, content_type="application/zip")
    assert writer is not None
    writer.write(data[:100])
    writer.write(data[100:])
    writer.commit()


def request(method: str = "GET", **headers: str) -> Request:
    return Request(
        method, "/t/files/x.whl", tuple((k.replace("_", "-"), v) for k, v in headers.items())
    )


async def body_of(reply: Reply) -> bytes:
    if isinstance(reply.body, bytes):
        return reply.body
    return b"".join([chunk async for chunk in reply.body])


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("1.5GiB", 1610612736)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_a_bad_cap_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CRANE_CACHE_MAX_SIZE"):
        FileCache.for_run({"CRANE_CACHE_MAX_SIZE": "lots"}, tmp_path)
    assert FileCache.for_run({}, tmp_path).max_size == DEFAULT_MAX_SIZE


def test_a_verified_file_is_stored_under_its_hash_privately(cache: FileCache) -> None:
    store(cache)
    path = cache.hashed_path(DIGEST)
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (cache.directory, path.parent, path.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    entry = cache.lookup(DIGEST)
    assert entry is not None
    assert (entry.size, entry.content_type) == (len(DATA), "application/zip")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_file_that_does_not_match_is_not_stored(cache: FileCache) -> None:
    writer = cache.writer(sha256=DIGEST)
    assert writer is not None
    writer.write(b"something else")
    assert not writer.matches()
    writer.commit()
    assert cache.lookup(DIGEST) is None
    assert not list(cache.files.rglob("*.tmp"))


def test_a_tampered_file_is_found_by_its_stamp_and_removed(cache: FileCache) -> None:
    store(cache)
    path = cache.hashed_path(DIGEST)
    path.write_bytes(b"X" + DATA[1:])
    assert cache.lookup(DIGEST) is None
    assert not path.exists()
    assert cache.stats.rejected == 1


def test_a_file_rewritten_with_the_same_bytes_is_verified_and_kept(cache: FileCache) -> None:
    store(cache)
    path = cache.hashed_path(DIGEST)
    path.write_bytes(DATA)  # a new stamp, the same content
    assert cache.lookup(DIGEST) is not None
    assert cache.lookup(DIGEST) is not None


def test_a_hashless_file_needs_a_validator_and_keeps_it(cache: FileCache) -> None:
    url = "https://crane.example/repo/packages/x-1.0.tar.gz"
    assert cache.writer(sha256=None, url=url) is None
    writer = cache.writer(sha256=None, url=url, etag='"v1"')
    assert writer is not None
    writer.write(DATA)
    writer.commit()
    entry = cache.lookup_url(url)
    assert entry is not None
    assert entry.etag == '"v1"'
    assert entry.path.read_bytes() == DATA


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "cache", max_size=2 * len(DATA) + 10)
    blobs = [bytes([n]) * len(DATA) for n in range(3)]
    digests = [hashlib.sha256(blob).hexdigest() for blob in blobs]
    store(cache, blobs[0], digests[0])
    store(cache, blobs[1], digests[1])
    old = cache.hashed_path(digests[0]).with_name(digests[0] + ".stamp")
    os.utime(old, (1, 1))  # the first is the least recently used
    store(cache, blobs[2], digests[2])
    assert cache.lookup(digests[0]) is None
    assert cache.lookup(digests[1]) is not None
    assert cache.lookup(digests[2]) is not None


def test_clean_removes_everything(cache: FileCache) -> None:
    store(cache)
    assert cache.clean() == 1
    assert cache.entries() == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=100-", False),
        ("bytes=-0", False),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
    ],
)
def test_byte_ranges(header: str | None, expected: object) -> None:
    assert byte_range(header, 100) == expected


def test_a_cached_file_is_served_whole_ranged_and_to_head(cache: FileCache) -> None:
    store(cache)
    entry = cache.lookup(DIGEST)
    assert entry is not None
    whole = disk_reply(request(), entry, cache, lambda: None)
    assert whole.status == 200
    assert ("content-length", str(len(DATA))) in whole.headers
    assert ("accept-ranges", "bytes") in whole.headers
    assert asyncio.run(body_of(whole)) == DATA
    part = disk_reply(request(range="bytes=5-14"), entry, cache, lambda: None)
    assert part.status == 206
    assert ("content-range", f"bytes 5-14/{len(DATA)}") in part.headers
    assert asyncio.run(body_of(part)) == DATA[5:15]
    head = disk_reply(request("HEAD"), entry, cache, lambda: None)
    assert head.status == 200
    assert head.body == b""
    assert (
        disk_reply(request(range=f"bytes={len(DATA)}-"), entry, cache, lambda: None).status == 416
    )


def test_bytes_that_rot_under_a_good_stamp_are_cut_before_the_end(cache: FileCache) -> None:
    store(cache)
    entry = cache.lookup(DIGEST)
    assert entry is not None
    # Same size, same times: only the hash can tell (a disk that rots under crane).
    path = cache.hashed_path(DIGEST)
    times = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"X")
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    cuts: list[bool] = []
    reply = disk_reply(request(), entry, cache, lambda: cuts.append(True))
    with pytest.raises(CorruptDownload):
        asyncio.run(body_of(reply))
    assert not path.exists()
    assert cuts == [True]


def _upstream(data: bytes) -> httpx.Response:
    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for chunk in stream():
                yield chunk

    return httpx.Response(200, headers={"content-length": str(len(data))}, stream=Stream())


BIG = bytes(range(256)) * 8192  # 2 MiB: hashed and written in a thread beside the relay
BODIES = pytest.mark.parametrize("data", [DATA, BIG], ids=["small", "large"])


@BODIES
def test_a_download_is_stored_as_it_streams(cache: FileCache, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    writer = cache.writer(sha256=digest)
    assert writer is not None
    reply = teed_reply(_upstream(data), writer, "https://crane.example/x.whl", lambda: None)
    assert asyncio.run(body_of(reply)) == data
    assert cache.lookup(digest) is not None


@BODIES
@pytest.mark.parametrize("where", ["first", "last"])
def test_a_download_that_does_not_match_is_cut_before_its_last_bytes(
    cache: FileCache, data: bytes, where: str
) -> None:
    digest = hashlib.sha256(data).hexdigest()
    writer = cache.writer(sha256=digest)
    assert writer is not None
    bad = b"Y" + data[1:] if where == "first" else data[:-1] + b"Y"
    cuts: list[bool] = []
    reply = teed_reply(
        _upstream(bad), writer, "https://crane.example/x.whl", lambda: cuts.append(True)
    )
    sent: list[bytes] = []

    async def consume() -> None:
        assert not isinstance(reply.body, bytes)
        async for chunk in reply.body:
            sent.append(chunk)

    with pytest.raises(CorruptDownload):
        asyncio.run(consume())
    assert len(b"".join(sent)) < len(bad)
    assert cuts == [True]
    assert cache.lookup(digest) is None
    assert not list(cache.files.rglob("*.tmp"))


def test_a_stamp_with_odd_fields_is_no_stamp(cache: FileCache) -> None:
    store(cache)
    path = cache.hashed_path(DIGEST)
    stamp = path.with_name(path.name + ".stamp")
    data = json.loads(stamp.read_text())
    data.update(etag=5, content_type={"a": 1})
    stamp.write_text(json.dumps(data))
    entry = cache.lookup(DIGEST)  # hashed again, stamped anew
    assert entry is not None
    assert entry.etag is None
    assert entry.content_type is None
    assert json.loads(stamp.read_text()).get("etag") is None


def test_clean_and_eviction_never_follow_a_symlink_out_of_the_cache(
    cache: FileCache, tmp_path: Path
) -> None:
    store(cache)
    outside = tmp_path / "outside" / "ab"
    outside.mkdir(parents=True)
    victim = outside / ("0" * 64)
    victim.write_text("keep me")
    cache.files.joinpath("url").mkdir(parents=True, exist_ok=True)
    (cache.files / "url" / "ab").symlink_to(outside, target_is_directory=True)
    (cache.files / "sha256" / "zz").symlink_to(outside, target_is_directory=True)
    assert len(cache.entries()) == 1
    assert cache.clean() == 1
    assert victim.read_text() == "keep me"


def test_a_cache_that_cannot_be_changed_still_answers(cache: FileCache) -> None:
    store(cache)
    path = cache.hashed_path(DIGEST)
    path.write_bytes(b"X" + DATA[1:])
    os.chmod(path.parent, 0o500)
    try:
        assert cache.lookup(DIGEST) is None  # rejected; its removal fails quietly
    finally:
        os.chmod(path.parent, 0o700)


BIG_DIGEST = hashlib.sha256(BIG).hexdigest()


def test_a_large_download_the_child_abandons_leaves_nothing(cache: FileCache) -> None:
    writer = cache.writer(sha256=BIG_DIGEST)
    assert writer is not None
    reply = teed_reply(_upstream(BIG), writer, "https://crane.example/big.whl", lambda: None)

    async def consume_some() -> None:
        assert not isinstance(reply.body, bytes)
        body = reply.body.__aiter__()
        for _ in range(10):
            await body.__anext__()
        await body.aclose()  # type: ignore[attr-defined]

    asyncio.run(consume_some())
    for _ in range(50):
        if not list(cache.files.rglob("*.tmp")):
            break
        time.sleep(0.02)
    assert not list(cache.files.rglob("*.tmp"))
    assert cache.lookup(BIG_DIGEST) is None


def test_a_large_download_is_stored_when_no_thread_can_be_had(
    cache: FileCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    real_submit = ThreadPoolExecutor.submit

    def refuse(self: ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        if (self._thread_name_prefix or "").startswith("crane-cache"):
            raise RuntimeError("can't start new thread")
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", refuse)
    writer = cache.writer(sha256=BIG_DIGEST)
    assert writer is not None
    reply = teed_reply(_upstream(BIG), writer, "https://crane.example/big.whl", lambda: None)
    assert asyncio.run(body_of(reply)) == BIG
    assert cache.lookup(BIG_DIGEST) is not None
    assert not list(cache.files.rglob("*.tmp"))


def test_a_teed_reply_whose_body_never_starts_leaves_nothing(cache: FileCache) -> None:
    writer = cache.writer(sha256=BIG_DIGEST)
    assert writer is not None
    reply = teed_reply(_upstream(BIG), writer, "https://crane.example/big.whl", lambda: None)
    close = reply.close
    assert close is not None

    async def closing() -> None:
        await close()  # as the server does when sending the head failed

    asyncio.run(closing())
    assert not list(cache.files.rglob("*.tmp"))


def test_a_length_beside_a_transfer_coding_never_reaches_the_child(cache: FileCache) -> None:
    response = httpx.Response(
        200,
        headers={"transfer-encoding": "chunked", "content-length": "5", "content-type": "x/y"},
        content=b"",
    )
    writer = cache.writer(sha256=BIG_DIGEST)
    assert writer is not None
    reply = teed_reply(response, writer, "https://crane.example/big.whl", lambda: None)
    assert [name for name, _ in reply.headers] == ["content-type"]
    assert [name for name, _ in streamed_reply(response).headers] == ["content-type"]
