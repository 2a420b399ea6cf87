"""The guard (design section 10): which project a request is for, and whether it may go.

Four layers, each tested on its own:

1. `requested_projects(url)`, pure text, table-driven.
2. `Guard.check` with fake `ProjectLookup`s (no network, no door).
3. `IndexDoor.project_status`, the real lookup, through scripted upstreams.
4. The transparent door with a guard, end to end over real sockets on 127.0.0.1: local
   HTTP and HTTPS servers, a real `ProxyServer`, httpx (through the proxy, as a child
   would use it) and raw sockets as clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography import x509

from crane_launch.config import Origin
from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.guard import Guard, NameStatus, ProjectLookup, Refusal, requested_projects
from crane_launch.proxy.server import ProxyServer, Request
from crane_launch.proxy.tls import InterceptionCA
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import Upstream

if TYPE_CHECKING:
    from tests.proxy.fakes import FakeTokens, ScriptedOrigins


# =======================================================================================
# 1. requested_projects
# =======================================================================================

FILES = "https://files.example/packages/ab/cd"

_FILE_CASES: list[tuple[str, tuple[str, ...]]] = [
    # wheels (PEP 427)
    (f"{FILES}/private_pkg-1.0-py3-none-any.whl", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0-1-py3-none-any.whl", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0-1b-cp311-cp311-manylinux_2_17_x86_64.whl", ("private-pkg",)),
    (f"{FILES}/Private_Pkg-1.0-PY3-NONE-ANY.WHL", ("private-pkg",)),
    (f"{FILES}/zope.interface-6.0-cp311-cp311-macosx_11_0_arm64.whl", ("zope-interface",)),
    (f"{FILES}/private_pkg-1.0-py3-none-any.whl.metadata", ("private-pkg",)),
    (f"{FILES}/private%5Fpkg-1.0-py3-none-any.whl", ("private-pkg",)),
    (f"{FILES}/Private%2EPkg-1.0-py3-none-any.whl", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0%2Blocal-py3-none-any.whl", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0-py3-none-any.whl?hash=sha256:aa", ("private-pkg",)),
    # sdists
    (f"{FILES}/private_pkg-1.0.tar.gz", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tgz", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tar.bz2", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tbz", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tar.xz", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.txz", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tar", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.zip", ("private-pkg",)),
    (f"{FILES}/Private_Pkg-1.0.TAR.GZ", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0.tar.gz.metadata", ("private-pkg",)),
    (f"{FILES}/private%2Dpkg-1.0.tar.gz", ("private-pkg",)),
    (f"{FILES}/foo-bar-1.0.tar.gz", ("foo-bar",)),
    (f"{FILES}/foo-2fa-1.0.tar.gz", ("foo", "foo-2fa")),
    (f"{FILES}/foo-bar-baz-2024.1.post1.zip", ("foo-bar-baz",)),
    (f"{FILES}/foo-1.0-2.0.tar.gz", ("foo", "foo-1-0")),
    # eggs
    (f"{FILES}/private_pkg-1.0-py3.11.egg", ("private-pkg",)),
    (f"{FILES}/Private.Pkg-1.0.egg", ("private-pkg",)),
    (f"{FILES}/private_pkg-1.0-py3.11-linux-x86_64.egg", ("private-pkg",)),
]

_PAGE_CASES: list[tuple[str, tuple[str, ...]]] = [
    ("https://index.example/simple/private-pkg/", ("private-pkg",)),
    ("https://index.example/simple/private-pkg", ("private-pkg",)),
    ("https://index.example/simple/Private_Pkg/", ("private-pkg",)),
    ("https://index.example/simple/private.pkg", ("private-pkg",)),
    ("https://index.example/simple/PRIVATE--pkg/?format=json", ("private-pkg",)),
    ("https://index.example/SIMPLE/private-pkg/", ("private-pkg",)),
    ("https://index.example/simple/private%2Dpkg/", ("private-pkg",)),
    ("https://mirror.example/pypi/simple/private-pkg/", ("private-pkg",)),
    ("https://devpi.example/team/dev/+simple/private-pkg/", ("private-pkg",)),
    ("https://devpi.example/team/dev/+simple/Private.Pkg", ("private-pkg",)),
    ("https://index.example/pypi/private-pkg/json", ("private-pkg",)),
    ("https://index.example/pypi/Private_Pkg/json/", ("private-pkg",)),
    ("https://index.example/pypi/private-pkg/1.0/json", ("private-pkg",)),
    ("https://mirror.example/PyPI/private.pkg/2.0rc1/json", ("private-pkg",)),
]

_NEGATIVE_CASES: list[str] = [
    "https://index.example",
    "https://index.example/",
    "https://index.example/simple/",
    "https://index.example/simple",
    "https://devpi.example/team/dev/+simple/",
    "https://mirror.example/pypi/simple/",
    "https://index.example/pypi/json",
    # git smart HTTP
    "https://git.example/org/private-pkg.git/info/refs?service=git-upload-pack",
    "https://git.example/org/private-pkg.git/git-upload-pack",
    "https://git.example/org/private-pkg.git/git-receive-pack",
    "https://git.example/org/private-pkg/HEAD",
    # README files and other documents
    "https://git.example/org/private-pkg/README.md",
    "https://git.example/org/private-pkg/raw/main/README.rst",
    "https://docs.example/private-pkg-1.0/index.html",
    "https://files.example/notes-2024.txt",
    # a query string that looks like a file names nothing: the path does
    "https://files.example/download?file=private_pkg-1.0-py3-none-any.whl",
    "https://files.example/download?name=private_pkg-1.0.tar.gz",
    "https://files.example/get/?x=/simple/private-pkg/",
    # not a distribution pip takes
    "https://files.example/private_pkg.whl",
    "https://files.example/private_pkg-1.0.exe",
    "https://files.example/private_pkg-1.0.rpm",
    "https://files.example/private_pkg.tar.gz",
    # names with characters no project name has
    "https://index.example/simple/private%20pkg/",
    "https://index.example/simple/-private-pkg/",
    "https://index.example/simple/private-pkg-/",
    "https://index.example/simple/priv%00ate/",
    "https://index.example/simple/priv@te/",
    "https://index.example/pypi/private%20pkg/json",
    "https://files.example/priv%20ate-1.0-py3-none-any.whl",
    "https://files.example/-1.0.tar.gz",
]


@pytest.mark.parametrize(("url", "expected"), _FILE_CASES + _PAGE_CASES)
def test_requested_projects_names_the_project(url: str, expected: tuple[str, ...]) -> None:
    assert requested_projects(url) == expected


@pytest.mark.parametrize("url", _NEGATIVE_CASES)
def test_requested_projects_names_nothing(url: str) -> None:
    assert requested_projects(url) == ()


@pytest.mark.parametrize(
    "url",
    [
        f"{FILES}/private_pkg-1.0.tar.gz",
        # Every archive suffix pip accepts (pip._internal.utils.filetypes.ARCHIVE_EXTENSIONS).
        *(
            pytest.param(
                f"{FILES}/private_pkg-1.0{suffix}",
                id=f"sdist{suffix}",
            )
            for suffix in (".tar.lz", ".tlz", ".tar.lzma")
        ),
        # PEP 440 allows a leading "v"; pip parses private_pkg-v1.0.tar.gz as version 1.0.
        pytest.param(
            f"{FILES}/private_pkg-v1.0.tar.gz",
            id="sdist-v-version",
        ),
        # A file under a `simple` path is judged as a file, not only as a page.
        pytest.param(
            "https://evil.example/simple/private_pkg-1.0-py3-none-any.whl",
            id="wheel-under-simple",
        ),
        pytest.param(
            "https://evil.example/+simple/private_pkg-1.0.tar.gz",
            id="sdist-under-plus-simple",
        ),
    ],
)
def test_every_file_pip_installs_as_the_project_is_named(url: str) -> None:
    assert "private-pkg" in requested_projects(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://index.example/simple/private-pkg/",
        pytest.param(
            "https://index.example/simple/x/%2E%2E/private-pkg/",
            id="encoded-dot-dot",
        ),
        pytest.param(
            "https://index.example/simple/private-pkg/%2E/",
            id="encoded-dot",
        ),
    ],
)
def test_a_page_reached_through_dot_segments_is_named(url: str) -> None:
    assert requested_projects(url) == ("private-pkg",)


# =======================================================================================
# 2. Guard.check with fake lookups
# =======================================================================================

PRIVATE_INDEX = "https://crane.example/pypi/simple/"
OTHER_INDEX = "https://other.example/simple/"
PRIVATE_ORIGIN = Origin("https", "crane.example", 443)
OTHER_ORIGIN = Origin("https", "other.example", 443)
PUBLIC_WHEEL = "https://files.example/packages/private_pkg-1.0-py3-none-any.whl"


class FakeLookup:
    """A `ProjectLookup` answering from a table; records each call; may be slow or crash."""

    def __init__(
        self,
        private_url: str,
        statuses: Mapping[str, NameStatus] | None = None,
        *,
        reason: str = "the index answered 500",
        error: Exception | None = None,
        ticks: int = 0,
    ) -> None:
        self._private_url = private_url
        self._statuses = dict(statuses or {})
        self._reason = reason
        self._error = error
        self._ticks = ticks
        self.calls: list[str] = []

    @property
    def private_url(self) -> str:
        return self._private_url

    async def project_status(self, project: str) -> tuple[NameStatus, str]:
        self.calls.append(project)
        for _ in range(self._ticks):  # let other checks run while this one "waits"
            await asyncio.sleep(0)
        if self._error is not None:
            raise self._error
        status = self._statuses.get(project, NameStatus.ABSENT)
        return status, (self._reason if status is NameStatus.UNKNOWN else "")


def _check(guard: Guard, url: str) -> Refusal | None:
    return asyncio.run(guard.check(url))


def _guard(*lookups: ProjectLookup, origins: tuple[Origin, ...] = (PRIVATE_ORIGIN,)) -> Guard:
    return Guard(list(lookups), origins)


@pytest.mark.parametrize(
    "url",
    [
        "https://crane.example/pypi/simple/private-pkg/",
        "https://crane.example/repo/private_pkg-1.0-py3-none-any.whl",
        "https://crane.example:443/repo/private_pkg-1.0.tar.gz",
        "HTTPS://Crane.Example/repo/private_pkg-1.0.tar.gz",
    ],
)
def test_the_private_origin_is_always_allowed_even_for_a_private_name(url: str) -> None:
    lookup = FakeLookup(
        PRIVATE_INDEX, {"private-pkg": NameStatus.SERVED}, error=RuntimeError("never asked")
    )
    guard = _guard(lookup)

    assert _check(guard, url) is None
    assert lookup.calls == []
    assert guard.refusals == []


@pytest.mark.parametrize(
    "url",
    [
        PUBLIC_WHEEL,
        "https://index.example/simple/Private_Pkg/",
        "https://index.example/pypi/private-pkg/json",
        "https://files.example/private-pkg-1.0.tar.gz.metadata",
        # Same host, another scheme or port: not the private origin.
        "http://crane.example/repo/private_pkg-1.0.tar.gz",
        "https://crane.example:8443/repo/private_pkg-1.0.tar.gz",
        # A port no origin can have does not make the URL unjudgeable.
        "https://files.example:99999/private_pkg-1.0.tar.gz",
    ],
)
def test_a_private_name_elsewhere_is_refused_naming_project_and_index(url: str) -> None:
    lookup = FakeLookup(PRIVATE_INDEX, {"private-pkg": NameStatus.SERVED})
    guard = _guard(lookup)

    refusal = _check(guard, url)

    assert refusal is not None
    assert refusal.url == url
    assert refusal.project == "private-pkg"
    assert "private-pkg" in refusal.reason
    assert PRIVATE_INDEX in refusal.reason
    assert guard.refusals == [refusal]


def test_an_absent_name_is_allowed() -> None:
    lookup = FakeLookup(PRIVATE_INDEX, {"private-pkg": NameStatus.SERVED})
    guard = _guard(lookup)

    assert _check(guard, "https://files.example/requests-2.32.0-py3-none-any.whl") is None
    assert lookup.calls == ["requests"]
    assert guard.refusals == []


def test_a_request_for_no_project_is_allowed_without_a_lookup() -> None:
    lookup = FakeLookup(PRIVATE_INDEX, error=RuntimeError("must not be asked"))
    guard = _guard(lookup)

    for url in _NEGATIVE_CASES:
        assert _check(guard, url) is None
    assert lookup.calls == []


def test_an_unknown_name_is_refused_with_the_reason() -> None:
    lookup = FakeLookup(
        PRIVATE_INDEX, {"private-pkg": NameStatus.UNKNOWN}, reason="the index answered 503"
    )
    guard = _guard(lookup)

    refusal = _check(guard, PUBLIC_WHEEL)

    assert refusal is not None
    assert refusal.project == "private-pkg"
    assert "the index answered 503" in refusal.reason
    assert PRIVATE_INDEX in refusal.reason
    assert "private-pkg" in refusal.reason


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), httpx.ConnectError("down"), ValueError("bad")]
)
def test_a_lookup_that_raises_is_refused_not_allowed(error: Exception) -> None:
    lookup = FakeLookup(PRIVATE_INDEX, error=error)
    guard = _guard(lookup)

    async def twice() -> tuple[Refusal | None, Refusal | None]:
        return await guard.check(PUBLIC_WHEEL), await guard.check(PUBLIC_WHEEL)

    first, second = asyncio.run(twice())

    assert first is not None
    assert second is not None
    assert type(error).__name__ in first.reason
    assert first.project == "private-pkg"
    assert lookup.calls == ["private-pkg"]  # the failure is remembered: still refused
    assert guard.refusals == [first, second]


def test_each_name_is_looked_up_once_under_many_concurrent_checks() -> None:
    lookup = FakeLookup(PRIVATE_INDEX, {"private-pkg": NameStatus.SERVED}, ticks=5)
    guard = _guard(lookup)
    urls = [
        *(f"https://files.example/{n}/private_pkg-1.{n}-py3-none-any.whl" for n in range(20)),
        *(f"https://index.example/simple/Private.Pkg/?n={n}" for n in range(10)),
        *(f"https://files.example/{n}/requests-2.{n}.tar.gz" for n in range(20)),
        *(f"https://files.example/{n}/idna-3.{n}.tar.gz" for n in range(10)),
    ]

    async def all_at_once() -> list[Refusal | None]:
        return list(await asyncio.gather(*(guard.check(url) for url in urls)))

    results = asyncio.run(all_at_once())

    assert sorted(lookup.calls) == ["idna", "private-pkg", "requests"]
    assert [r is not None for r in results] == [True] * 30 + [False] * 30
    assert len(guard.refusals) == 30


def test_two_private_indexes_refuse_a_name_either_serves() -> None:
    first = FakeLookup(PRIVATE_INDEX, {"alpha": NameStatus.SERVED})
    second = FakeLookup(OTHER_INDEX, {"beta": NameStatus.SERVED})
    guard = _guard(first, second, origins=(PRIVATE_ORIGIN, OTHER_ORIGIN))

    alpha = _check(guard, "https://files.example/alpha-1.0.tar.gz")
    beta = _check(guard, "https://files.example/beta-1.0.tar.gz")
    gamma = _check(guard, "https://files.example/gamma-1.0.tar.gz")

    assert alpha is not None
    assert PRIVATE_INDEX in alpha.reason
    assert beta is not None
    assert OTHER_INDEX in beta.reason
    assert gamma is None
    # Each index is asked at most once per name; a name served by the first is settled.
    assert first.calls == ["alpha", "beta", "gamma"]
    assert second.calls == ["beta", "gamma"]
    # Either private origin may serve anything.
    assert _check(guard, "https://other.example/files/alpha-1.0.tar.gz") is None


def test_an_unknown_answer_from_either_index_refuses() -> None:
    first = FakeLookup(PRIVATE_INDEX)
    second = FakeLookup(OTHER_INDEX, {"alpha": NameStatus.UNKNOWN}, reason="timed out")
    guard = _guard(first, second, origins=(PRIVATE_ORIGIN, OTHER_ORIGIN))

    refusal = _check(guard, "https://files.example/alpha-1.0.tar.gz")

    assert refusal is not None
    assert OTHER_INDEX in refusal.reason
    assert "timed out" in refusal.reason


def test_an_sdist_is_refused_when_any_candidate_name_is_private() -> None:
    lookup = FakeLookup(PRIVATE_INDEX, {"foo-2fa": NameStatus.SERVED})
    guard = _guard(lookup)

    refusal = _check(guard, "https://files.example/foo-2fa-1.0.tar.gz")

    assert refusal is not None
    assert refusal.project == "foo-2fa"
    assert lookup.calls == ["foo", "foo-2fa"]


def test_refusals_are_recorded_in_order_and_logged_without_the_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lookup = FakeLookup(
        PRIVATE_INDEX,
        {"one": NameStatus.SERVED, "two": NameStatus.SERVED, "three": NameStatus.UNKNOWN},
    )
    guard = _guard(lookup)
    urls = [
        "https://files.example/two-1.0.tar.gz?sig=SECRET2",
        "https://files.example/free-1.0.tar.gz",
        "https://index.example/simple/one/",
        "https://files.example/three-1.0.zip?sig=SECRET3",
        "https://files.example/two-2.0.tar.gz",
    ]

    async def in_order() -> None:
        for url in urls:
            await guard.check(url)

    with caplog.at_level(logging.WARNING, logger="crane_launch"):
        asyncio.run(in_order())

    assert [(r.url, r.project) for r in guard.refusals] == [
        (urls[0], "two"),
        (urls[2], "one"),
        (urls[3], "three"),
        (urls[4], "two"),
    ]
    assert [r.getMessage() for r in caplog.records] == [r.line() for r in guard.refusals]
    assert "SECRET" not in caplog.text


def test_refusal_line_drops_the_query_string() -> None:
    refusal = Refusal(
        "https://files.example/private_pkg-1.0.tar.gz?X-Amz-Signature=abc&x=1",
        "private-pkg",
        "private-pkg is a project of private index https://crane.example/pypi/simple/",
    )

    assert refusal.line() == (
        "refused https://files.example/private_pkg-1.0.tar.gz: "
        "private-pkg is a project of private index https://crane.example/pypi/simple/"
    )
    plain = Refusal("https://index.example/simple/x/", "x", "why")
    assert plain.line() == "refused https://index.example/simple/x/: why"


# =======================================================================================
# 3. IndexDoor.project_status
# =======================================================================================

INDEX = "https://crane.example/pypi/simple/"
PUBLIC = "https://pypi.example/simple/"
TOKEN = "t0ken-abc"
HTML_TYPE = {"content-type": "text/html; charset=utf-8"}
PAGE = b'<!DOCTYPE html><html><body><a href="/repo/demo/demo-1.0.tar.gz">x</a></body></html>'
EMPTY_ROOT = b'<!DOCTYPE html><html><body><a href="demo-pkg/">demo-pkg</a></body></html>'


@pytest.fixture
def index_door(origins: ScriptedOrigins, tokens: FakeTokens) -> IndexDoor:
    upstream = Upstream(INDEX, tokens, client=origins.client())
    return IndexDoor(IndexSpec(INDEX, PUBLIC), upstream, token=TOKEN)


def _status(door: IndexDoor, project: str) -> tuple[NameStatus, str]:
    return asyncio.run(door.project_status(project))


def _prove(door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(INDEX, 200, EMPTY_ROOT, HTML_TYPE)
    asyncio.run(door.probe())
    assert door.proven
    origins.requests.clear()


def test_the_lookup_names_its_private_index(index_door: IndexDoor) -> None:
    lookup: ProjectLookup = index_door
    assert lookup.private_url == INDEX


def test_a_200_page_is_served(index_door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(INDEX + "demo-pkg/", 200, PAGE, HTML_TYPE)

    assert _status(index_door, "demo-pkg") == (NameStatus.SERVED, "")
    [request] = origins.requests
    assert request.headers["authorization"] == "Bearer tok-1"


@pytest.mark.parametrize("status", [404, 410])
def test_a_not_found_after_proof_is_absent(
    index_door: IndexDoor, origins: ScriptedOrigins, status: int
) -> None:
    _prove(index_door, origins)
    origins.answer(INDEX + "demo-pkg/", status)

    assert _status(index_door, "demo-pkg") == (NameStatus.ABSENT, "")
    assert [str(r.url) for r in origins.requests] == [INDEX + "demo-pkg/"]


def test_a_404_proven_by_the_probe_it_triggers_is_absent(
    index_door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(INDEX + "demo-pkg/", 404)
    origins.answer(INDEX, 200, EMPTY_ROOT, HTML_TYPE)

    assert _status(index_door, "demo-pkg") == (NameStatus.ABSENT, "")
    assert index_door.proven


@pytest.mark.parametrize(
    "probe",
    [401, 403, 404, 500, httpx.ConnectError],
    ids=["401", "403", "404", "500", "connect-error"],
)
def test_a_404_before_proof_with_a_failing_probe_is_unknown(
    index_door: IndexDoor, origins: ScriptedOrigins, probe: int | type[httpx.TransportError]
) -> None:
    origins.answer(INDEX + "demo-pkg/", 404)
    if isinstance(probe, int):
        origins.answer(INDEX, probe)
    else:
        origins.answers[INDEX] = probe

    status, reason = _status(index_door, "demo-pkg")

    assert status is NameStatus.UNKNOWN
    assert "before crane proved its credentials" in reason
    assert not index_door.proven
    assert origins.to("pypi.example") == []


@pytest.mark.parametrize(
    ("answer", "in_reason"),
    [
        ((500, b"oops", {}), "answered 500"),
        ((502, b"", {}), "answered 502"),
        ((403, b"", {}), "authentication to"),
        ((302, b"", {"location": "https://login.example/authorize?state=s3cret"}), "redirect"),
        ((302, b"", {"location": "/login?next=/pypi/simple/demo-pkg/"}), "redirect"),
        ((200, b"", {"content-type": "text/html"}), "an empty page"),
        (
            (
                200,
                b'<form action="/login"><input type="password"></form>',
                {"content-type": "text/html"},
            ),
            "a page with a form",
        ),
        ((200, b"<html><body></body></html>", {"content-type": "text/html"}), None),
    ],
    ids=[
        "500",
        "502",
        "403",
        "redirect-to-login",
        "same-origin-login",
        "empty-200",
        "login-page-200",
        "control",
    ],
)
def test_an_error_answer_is_unknown(
    index_door: IndexDoor,
    origins: ScriptedOrigins,
    answer: tuple[int, bytes, dict[str, str]],
    in_reason: str | None,
) -> None:
    _prove(index_door, origins)
    origins.answer(INDEX + "demo-pkg/", *answer)

    status, reason = _status(index_door, "demo-pkg")

    if in_reason is None:
        assert status is NameStatus.SERVED
        return
    assert status is NameStatus.UNKNOWN
    assert in_reason in reason
    assert "s3cret" not in reason
    assert "tok-" not in reason
    assert origins.to("pypi.example") == []
    assert origins.to("login.example") == []


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout])
def test_a_connection_error_is_unknown(
    index_door: IndexDoor, origins: ScriptedOrigins, failure: type[httpx.TransportError]
) -> None:
    _prove(index_door, origins)
    origins.answers[INDEX + "demo-pkg/"] = failure

    status, reason = _status(index_door, "demo-pkg")

    assert status is NameStatus.UNKNOWN
    assert "could not be reached" in reason


def test_an_unknown_answer_is_not_remembered_by_the_door(
    index_door: IndexDoor, origins: ScriptedOrigins
) -> None:
    _prove(index_door, origins)
    origins.answer(INDEX + "demo-pkg/", 500)
    assert _status(index_door, "demo-pkg")[0] is NameStatus.UNKNOWN

    origins.answer(INDEX + "demo-pkg/", 200, PAGE, HTML_TYPE)

    assert _status(index_door, "demo-pkg") == (NameStatus.SERVED, "")
    assert len(origins.requests) == 2


def test_a_decided_status_is_not_asked_again(
    index_door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answer(INDEX + "demo-pkg/", 200, PAGE, HTML_TYPE)

    assert _status(index_door, "demo-pkg") == (NameStatus.SERVED, "")
    assert _status(index_door, "demo-pkg") == (NameStatus.SERVED, "")
    assert len(origins.requests) == 1


@pytest.mark.parametrize(
    ("private", "expected"),
    [((200, PAGE, HTML_TYPE), NameStatus.SERVED), ((404, b"", {}), NameStatus.ABSENT)],
    ids=["served", "fell-back"],
)
def test_a_page_already_decided_by_a_door_request_is_not_asked_again(
    index_door: IndexDoor,
    origins: ScriptedOrigins,
    private: tuple[int, bytes, dict[str, str]],
    expected: NameStatus,
) -> None:
    _prove(index_door, origins)
    origins.answer(INDEX + "demo-pkg/", *private)
    origins.answer(PUBLIC + "demo-pkg/", 200, EMPTY_ROOT, HTML_TYPE)

    async def page_then_status() -> tuple[int, tuple[NameStatus, str]]:
        reply = await index_door(Request("GET", f"/{TOKEN}/simple/Demo_Pkg/", ()))
        if reply.close is not None:
            await reply.close()
        asked = len(origins.requests)
        status = await index_door.project_status("demo-pkg")
        assert len(origins.requests) == asked, "the lookup asked again"
        return reply.status, status

    reply_status, status = asyncio.run(page_then_status())

    assert reply_status == 200
    assert status == (expected, "")


def test_the_real_lookup_drives_the_guard(index_door: IndexDoor, origins: ScriptedOrigins) -> None:
    _prove(index_door, origins)
    origins.answer(INDEX + "demo-pkg/", 200, PAGE, HTML_TYPE)
    origins.answer(INDEX + "requests/", 404)
    origins.answer(INDEX + "flaky/", 503)
    guard = Guard([index_door], [PRIVATE_ORIGIN])

    async def judge() -> list[Refusal | None]:
        return [
            await guard.check("https://files.example/demo_pkg-1.0-py3-none-any.whl"),
            await guard.check("https://index.example/simple/Demo.Pkg/"),
            await guard.check("https://files.example/requests-2.0.tar.gz"),
            await guard.check("https://files.example/flaky-1.0.tar.gz"),
        ]

    served, page, absent, flaky = asyncio.run(judge())

    assert served is not None
    assert page is not None
    assert INDEX in served.reason
    assert absent is None
    assert flaky is not None
    assert "answered 503" in flaky.reason
    assert [str(r.url) for r in origins.requests] == [
        INDEX + "demo-pkg/",
        INDEX + "requests/",
        INDEX + "flaky/",
    ]


# =======================================================================================
# 4. The transparent door with a guard, over real sockets
# =======================================================================================

HOST = "127.0.0.1"
PASS_HOST = "localhost"
PASSWORD = "guard-pw"
PRIVATE_NAMES = {"private-pkg": NameStatus.SERVED, "broken-pkg": NameStatus.UNKNOWN}
WHEEL = "private_pkg-1.0-py3-none-any.whl"
PUBLIC_WHEEL_NAME = "requests-2.32.0-py3-none-any.whl"
CHILD_AUTH = "Basic Y2hpbGQ6Z2l0LXRva2Vu"


@dataclass
class Seen:
    server: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class GuardWorld:
    proxy: ProxyServer
    guard: Guard
    lookup: FakeLookup
    private_https: int
    public_https: int
    public_http: int
    pass_through_tls: int
    crane_ca: InterceptionCA
    upstream_ca: InterceptionCA
    seen: list[Seen] = field(default_factory=list)

    @property
    def proxy_url(self) -> str:
        return f"http://crane:{PASSWORD}@{HOST}:{self.proxy.port}"

    def requests_for(self, path: str) -> list[Seen]:
        return [request for request in self.seen if request.path == path]

    def client(self, trust: InterceptionCA | None = None) -> httpx.Client:
        """A child's client: through the proxy, trusting only `trust` (crane's CA)."""
        ca = trust or self.crane_ca
        verify = ssl.create_default_context(cadata=ca.cert_pem().decode())
        return httpx.Client(proxy=self.proxy_url, verify=verify, trust_env=False, timeout=5.0)


def _read_request_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while size := int(handler.rfile.readline().split(b";")[0].strip(), 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b""):
            pass
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("content-length") or 0))


def _recording_server(
    name: str, seen: list[Seen], tls: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5

        def _answer(self) -> None:
            body = _read_request_body(self)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append(Seen(name, self.command, self.path, headers, body))
            if self.command in ("GET", "HEAD"):
                reply = f"{name}:{self.path}".encode()
            else:
                digest = hashlib.sha256(body).hexdigest()
                reply = f"{name}:{self.command}:{len(body)}:{digest}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.send_header("X-Upstream", name)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply)

        do_GET = do_HEAD = do_POST = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Recorder)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def _port(server: socketserver.BaseServer) -> int:
    address: tuple[str, int] = server.server_address  # type: ignore[assignment]
    return address[1]


class _Tokens:
    def authorization(self) -> str:
        return "Bearer tok-1"

    def reauthorized(self, stale: str) -> str:
        raise AssertionError("no upstream here answers 401")


@pytest.fixture(scope="module")
def world() -> Iterator[GuardWorld]:
    crane_ca = InterceptionCA.create_for_guard()
    upstream_ca = InterceptionCA.create([HOST, PASS_HOST])
    seen: list[Seen] = []
    servers = [
        _recording_server("private", seen, upstream_ca.leaf_ssl_context(HOST)),
        _recording_server("public-tls", seen, upstream_ca.leaf_ssl_context(HOST)),
        _recording_server("public-http", seen),
        _recording_server("pass-through", seen, upstream_ca.leaf_ssl_context(PASS_HOST)),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
    private_https, public_https, public_http, pass_through_tls = (_port(s) for s in servers)
    trust_upstream = ssl.create_default_context(cadata=upstream_ca.cert_pem().decode())
    private_client = httpx.AsyncClient(verify=trust_upstream, trust_env=False)
    public_client = httpx.AsyncClient(verify=trust_upstream, trust_env=False)
    private_url = f"https://{HOST}:{private_https}/simple/"
    private_origin = Origin("https", HOST, private_https)
    lookup = FakeLookup(private_url, PRIVATE_NAMES, reason="the index answered 503")
    guard = Guard([lookup], [private_origin])
    door = TransparentDoor(
        {private_origin: Upstream(private_url, _Tokens(), client=private_client)},
        crane_ca.leaf_ssl_context,
        guard=guard,
        pass_through=frozenset({PASS_HOST.upper()}),
        password=PASSWORD,
        public_client=public_client,
    )
    proxy = ProxyServer(door)
    proxy.start()
    try:
        yield GuardWorld(
            proxy=proxy,
            guard=guard,
            lookup=lookup,
            private_https=private_https,
            public_https=public_https,
            public_http=public_http,
            pass_through_tls=pass_through_tls,
            crane_ca=crane_ca,
            upstream_ca=upstream_ca,
            seen=seen,
        )
    finally:
        for client in (private_client, public_client):
            asyncio.run_coroutine_threadsafe(client.aclose(), proxy.loop).result(5)
        proxy.stop()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_of_our_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # A blind tunnel goes through the user's own proxy when the environment names one.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("path", "project"),
    [
        (f"/packages/ab/{WHEEL}", "private-pkg"),
        (f"/packages/ab/{WHEEL}.metadata", "private-pkg"),
        ("/packages/ab/private-pkg-1.0.tar.gz?sig=abc", "private-pkg"),
        ("/simple/Private_Pkg/", "private-pkg"),
        ("/pypi/private-pkg/json", "private-pkg"),
        ("/packages/broken_pkg-1.0-py3-none-any.whl", "broken-pkg"),
    ],
    ids=["wheel", "metadata", "sdist-with-query", "page", "json", "unknown-name"],
)
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_private_project_elsewhere_gets_403_and_the_upstream_never_sees_it(
    world: GuardWorld, scheme: str, path: str, project: str
) -> None:
    port = world.public_https if scheme == "https" else world.public_http
    url = f"{scheme}://{HOST}:{port}{path}"
    before = len(world.guard.refusals)

    with world.client() as client:
        response = client.get(url, headers={"authorization": CHILD_AUTH})

    assert response.status_code == 403
    text = response.text
    assert project in text
    assert f"https://{HOST}:{world.private_https}/simple/" in text
    assert "sig=abc" not in text
    assert world.requests_for(path) == []
    assert [r.url for r in world.guard.refusals[before:]] == [url]


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_public_project_is_fetched_through_the_interception(
    world: GuardWorld, scheme: str, method: str
) -> None:
    port = world.public_https if scheme == "https" else world.public_http
    path = f"/packages/{scheme}/{method}/{PUBLIC_WHEEL_NAME}"
    name = "public-tls" if scheme == "https" else "public-http"

    # The client trusts crane's guard CA only: a 200 over https proves the interception.
    with world.client() as client:
        response = client.request(method, f"{scheme}://{HOST}:{port}{path}")

    assert response.status_code == 200
    assert response.headers["x-upstream"] == name
    if method == "GET":
        assert response.content == f"{name}:{path}".encode()
    [seen] = world.requests_for(path)
    assert (seen.server, seen.method) == (name, method)
    assert "authorization" not in seen.headers
    assert "proxy-authorization" not in seen.headers


def test_the_intercepted_certificate_is_crane_s(world: GuardWorld) -> None:
    with world.client(trust=world.upstream_ca) as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://{HOST}:{world.public_https}/packages/cert-check/x.txt")
    assert world.requests_for("/packages/cert-check/x.txt") == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_post_to_another_host_is_forwarded_with_its_body_intact(
    world: GuardWorld, chunked: bool
) -> None:
    # git smart HTTP: a binary POST body of several chunks, the child's own credentials.
    body = bytes(range(256)) * 2048 + b"0032want deadbeef\n0000"
    path = f"/org/private-pkg.git/git-upload-pack?chunked={chunked}"
    headers = {
        "content-type": "application/x-git-upload-pack-request",
        "authorization": CHILD_AUTH,
    }

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    with world.client() as client:
        response = client.post(
            f"https://{HOST}:{world.public_https}{path}",
            content=pieces() if chunked else body,
            headers=headers,
        )

    assert response.status_code == 200
    digest = hashlib.sha256(body).hexdigest()
    assert response.text == f"public-tls:POST:{len(body)}:{digest}"
    [seen] = world.requests_for(path)
    assert seen.body == body
    assert seen.headers["content-type"] == "application/x-git-upload-pack-request"
    assert seen.headers["authorization"] == CHILD_AUTH
    if not chunked:
        assert seen.headers["content-length"] == str(len(body))


def test_the_child_s_own_authorization_reaches_another_host_unchanged(
    world: GuardWorld,
) -> None:
    path = "/org/private-pkg.git/info/refs?service=git-upload-pack"

    with world.client() as client:
        response = client.get(
            f"https://{HOST}:{world.public_https}{path}",
            headers={"authorization": CHILD_AUTH, "x-child": "kept"},
        )

    assert response.status_code == 200
    [seen] = world.requests_for(path)
    assert seen.headers["authorization"] == CHILD_AUTH
    assert seen.headers["x-child"] == "kept"
    assert "proxy-authorization" not in seen.headers
    assert "tok-1" not in str(seen.headers)


def test_the_private_origin_serves_a_private_project_with_credentials(
    world: GuardWorld,
) -> None:
    path = f"/files/{WHEEL}"

    with world.client() as client:
        response = client.get(f"https://{HOST}:{world.private_https}{path}")

    assert response.status_code == 200
    assert response.content == f"private:{path}".encode()
    [seen] = world.requests_for(path)
    assert seen.headers["authorization"] == "Bearer tok-1"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_non_get_to_the_private_origin_gets_405(world: GuardWorld, method: str) -> None:
    path = f"/simple/{method.lower()}-target/"

    with world.client() as client:
        response = client.request(
            method, f"https://{HOST}:{world.private_https}{path}", content=b"payload"
        )

    assert response.status_code == 405
    assert world.requests_for(path) == []


def _open_tunnel(world: GuardWorld, authority: str) -> socket.socket:
    """A proxy connection after a successful CONNECT; the 200's head is consumed."""
    sock = socket.create_connection((HOST, world.proxy.port), timeout=5)
    auth = httpx.BasicAuth("crane", PASSWORD)
    credentials = next(auth.auth_flow(httpx.Request("GET", "http://x/"))).headers["authorization"]
    sock.sendall(
        f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        f"Proxy-Authorization: {credentials}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"the proxy closed the connection after {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def _authority_key_id(der: bytes) -> bytes | None:
    certificate = x509.load_der_x509_certificate(der)
    return certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    ).value.key_identifier


def _subject_key_id(ca: InterceptionCA) -> bytes:
    certificate = x509.load_pem_x509_certificate(ca.cert_pem())
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_a_pass_through_host_is_tunnelled_blind(world: GuardWorld) -> None:
    trust_upstream_only = ssl.create_default_context(cadata=world.upstream_ca.cert_pem().decode())
    path = f"/packages/{WHEEL}"
    before = len(world.guard.refusals)

    with (
        _open_tunnel(world, f"{PASS_HOST}:{world.pass_through_tls}") as raw,
        trust_upstream_only.wrap_socket(raw, server_hostname=PASS_HOST) as tls,
        tls.makefile("rb") as stream,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {PASS_HOST}\r\nConnection: close\r\n\r\n".encode()
        )
        status_line = stream.readline()
        rest = stream.read()

    # The upstream's own certificate, not one crane made; and the guard saw nothing,
    # not even a wheel of a private project.
    assert der is not None
    assert _authority_key_id(der) == _subject_key_id(world.upstream_ca)
    assert _authority_key_id(der) != _subject_key_id(world.crane_ca)
    assert status_line.startswith(b"HTTP/1.1 200")
    assert rest.endswith(f"pass-through:{path}".encode())
    [seen] = world.requests_for(path)
    assert seen.server == "pass-through"
    assert world.guard.refusals[before:] == []


def test_an_intercepted_host_shows_crane_s_certificate(world: GuardWorld) -> None:
    trust_crane_only = ssl.create_default_context(cadata=world.crane_ca.cert_pem().decode())

    with (
        _open_tunnel(world, f"{HOST}:{world.public_https}") as raw,
        trust_crane_only.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        der = tls.getpeercert(binary_form=True)

    assert der is not None
    assert _authority_key_id(der) == _subject_key_id(world.crane_ca)


def test_a_private_wheel_under_a_simple_path_elsewhere_is_refused(world: GuardWorld) -> None:
    path = f"/simple/{WHEEL}"

    with world.client() as client:
        response = client.get(f"https://{HOST}:{world.public_https}{path}")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("url", "filename", "page", "expected"),
    [
        ("https://evil.example/cd/7", "decoy_pkg-99.0.tar.gz", None, ("decoy-pkg",)),
        ("https://evil.example/cd/7", "../x/Decoy.Pkg-99.0-py3-none-any.whl", None, ("decoy-pkg",)),
        ("https://evil.example/idx/Decoy_Pkg", None, "Decoy_Pkg", ("decoy-pkg",)),
        ("https://evil.example/idx/", None, "idx", ("idx",)),
        ("https://evil.example/cd/7", "README", None, ()),
    ],
)
def test_what_a_response_says_it_is_is_judged_too(
    url: str, filename: str | None, page: str | None, expected: tuple[str, ...]
) -> None:
    assert requested_projects(url, filename=filename, page=page) == expected
