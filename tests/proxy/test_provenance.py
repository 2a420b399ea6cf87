"""Where each project of a run came from (`proxy.provenance.Ledger`), and what the index
door and the transparent door write into it.

The ledger is driven directly for its own rules (sources, fallback proofs, files, the
public index checks, the summary line and the JSON record). The doors are called with
`Request` objects, their upstreams scripted behind an `httpx.MockTransport`, as in
`test_door.py`; nothing opens a socket.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from crane_launch.proxy.door import IndexDoor, IndexSpec
from crane_launch.proxy.guard import Guard, NameStatus
from crane_launch.proxy.provenance import FORMAT, VERSION, Ledger
from crane_launch.proxy.server import Door, Reply, Request
from crane_launch.proxy.transparent import TransparentDoor
from crane_launch.proxy.upstream import Upstream
from tests.proxy.fakes import read_reply

if TYPE_CHECKING:
    from tests.proxy.fakes import FakeTokens, ScriptedOrigins

INDEX = "https://crane.example/pypi/simple/"
PUBLIC = "https://public.example/simple/"
TOKEN = "t0ken-abc"
HTML_TYPE = {"content-type": "text/html; charset=utf-8"}
INDEX_ROOT = b'<!DOCTYPE html><html><body><a href="demo/">demo</a></body></html>'
SECRET_URL = "https://user:secret@crane.example/pypi/simple/demo/?token=abc123#frag"


# =======================================================================================
# 1. The ledger on its own
# =======================================================================================


def _private_page(ledger: Ledger, project: str) -> None:
    ledger.page(project, source="private", index=INDEX, url=f"{INDEX}{project}/")


def _public_page(ledger: Ledger, project: str) -> None:
    ledger.page(project, source="public", index=PUBLIC, url=f"{PUBLIC}{project}/")


def _absent(ledger: Ledger, project: str, *, status: int = 404, proven: bool = True) -> None:
    ledger.private_answer(
        project,
        index=INDEX,
        url=f"{INDEX}{project}/",
        status=status,
        verdict="absent",
        proven=proven,
    )


# -- sources ----------------------------------------------------------------------------


def test_a_project_served_privately_is_private() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")

    record = ledger.projects["demo"]

    assert record.sources == {"private"}
    assert record.source == "private"
    assert record.pages == [("private", INDEX, INDEX + "demo/")]


def test_a_project_from_the_public_index_is_public() -> None:
    ledger = Ledger()
    _absent(ledger, "demo")
    _public_page(ledger, "demo")

    assert ledger.projects["demo"].source == "public"


def test_a_project_with_answers_only_came_from_nowhere() -> None:
    ledger = Ledger()
    ledger.private_answer(
        "demo", index=INDEX, url=INDEX + "demo/", status=500, verdict="error", proven=True
    )

    record = ledger.projects["demo"]

    assert record.sources == set()
    assert record.source == "none"


def test_a_page_from_one_index_and_a_file_from_the_other_is_private_plus_public() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")
    ledger.file(
        ("demo",), source="public", index=PUBLIC, url="https://files.example/demo-1.0.tar.gz"
    )

    assert ledger.projects["demo"].source == "private+public"


def test_a_page_is_recorded_once() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")
    _private_page(ledger, "demo")

    assert len(ledger.projects["demo"].pages) == 1


# -- the fallback proof -----------------------------------------------------------------


def test_the_fallback_proof_is_the_last_absent_answer() -> None:
    ledger = Ledger()
    _absent(ledger, "demo", status=404, proven=True)
    ledger.private_answer(
        "demo", index=INDEX, url=INDEX + "demo/", status=500, verdict="error", proven=True
    )
    _absent(ledger, "demo", status=410, proven=True)
    ledger.private_answer(
        "demo", index=INDEX, url=INDEX + "demo/", status=502, verdict="error", proven=True
    )
    _public_page(ledger, "demo")

    proof = ledger.projects["demo"].fallback_proof

    assert proof is not None
    assert (proof.verdict, proof.status) == ("absent", 410)
    [project] = ledger.as_json()["projects"]
    assert project["fallback"]["status"] == 410
    assert project["fallback"]["credentials_proven"] is True


def test_a_public_project_without_an_absent_answer_has_no_proof() -> None:
    ledger = Ledger()
    _public_page(ledger, "demo")

    assert ledger.projects["demo"].fallback_proof is None
    [project] = ledger.as_json()["projects"]
    assert project["fallback"] is None


# -- files ------------------------------------------------------------------------------


def test_a_metadata_file_is_not_a_distribution() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/demo-1.0-py3-none-any.whl.metadata"

    found = ledger.file(("demo",), source="private", index=INDEX, url=url)

    assert found is None
    assert ledger.projects == {}


def test_a_file_of_no_project_is_not_recorded() -> None:
    ledger = Ledger()

    assert ledger.file((), source="public", index=PUBLIC, url="https://x.example/a.bin") is None
    assert ledger.projects == {}


def test_a_file_records_its_name_source_and_size() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/demo/demo%2Bx-1.0.tar.gz"

    record = ledger.file(
        ("demo-x",), source="private", index=INDEX, url=url, size=12, from_cache=True
    )

    assert record is not None
    assert record.filename == "demo+x-1.0.tar.gz"
    assert (record.source, record.index, record.size, record.from_cache) == (
        "private",
        INDEX,
        12,
        True,
    )
    assert ledger.projects["demo-x"].files == {url: record}


def test_a_file_downloaded_twice_is_recorded_once_and_gets_its_hash_later() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/demo/demo-1.0.tar.gz"

    first = ledger.file(("demo",), source="private", index=INDEX, url=url, from_cache=True)
    again = ledger.file(
        ("demo",),
        source="private",
        index=INDEX,
        url=url,
        sha256="ab" * 32,
        sha256_from="index page",
        from_cache=True,
    )

    assert first is again
    assert again is not None
    assert (again.sha256, again.sha256_from) == ("ab" * 32, "index page")
    assert again.from_cache is True
    assert len(ledger.projects["demo"].files) == 1


def test_a_known_hash_is_not_replaced() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/demo/demo-1.0.tar.gz"
    ledger.file(("demo",), source="private", index=INDEX, url=url, sha256="aa" * 32)

    record = ledger.file(
        ("demo",),
        source="private",
        index=INDEX,
        url=url,
        sha256="bb" * 32,
        sha256_from="served bytes",
    )

    assert record is not None
    assert record.sha256 == "aa" * 32


@pytest.mark.parametrize(
    ("cached", "expected"),
    [
        ((True, True), True),
        ((True, False), False),
        ((False, True), False),
        ((True, True, False), False),
    ],
)
def test_a_file_is_from_the_cache_only_when_every_download_was(
    cached: tuple[bool, ...], expected: bool
) -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/demo/demo-1.0.tar.gz"

    for from_cache in cached:
        record = ledger.file(
            ("demo",), source="private", index=INDEX, url=url, from_cache=from_cache
        )

    assert record is not None
    assert record.from_cache is expected


def test_the_same_file_with_another_query_or_fragment_is_the_same_file() -> None:
    ledger = Ledger()
    base = "https://crane.example/repo/demo/demo-1.0.tar.gz"

    ledger.file(("demo",), source="private", index=INDEX, url=base + "?sig=1")
    ledger.file(("demo",), source="private", index=INDEX, url=base + "?sig=2#sha256=aa")

    assert list(ledger.projects["demo"].files) == [base]


def test_an_ambiguous_sdist_goes_to_the_first_project_the_run_knows() -> None:
    ledger = Ledger()
    _private_page(ledger, "foo-bar")
    url = "https://crane.example/repo/foo-bar-1.0.tar.gz"

    ledger.file(("foo", "foo-bar"), source="private", index=INDEX, url=url)

    assert "foo" not in ledger.projects
    assert list(ledger.projects["foo-bar"].files) == [url]


def test_an_ambiguous_sdist_of_no_known_project_goes_to_the_longest_candidate() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/foo-2-1.0.tar.gz"

    ledger.file(("foo", "foo-2"), source="private", index=INDEX, url=url)

    assert list(ledger.projects) == ["foo-2"]


def test_an_ambiguous_sdist_goes_to_the_candidate_whose_page_came_from_its_source() -> None:
    """foo-2's private sdist is never filed under foo, a public project of the run."""
    ledger = Ledger()
    ledger.page("foo", source="public", index="https://pub/simple/", url="https://pub/simple/foo/")
    ledger.page("foo-2", source="private", index=INDEX, url=INDEX + "foo-2/")
    ledger.file(
        ("foo", "foo-2"),
        source="private",
        index=INDEX,
        url="https://crane.example/foo-2-1.0.tar.gz",
    )
    assert ledger.projects["foo"].source == "public"
    assert ledger.projects["foo-2"].source == "private"
    assert ledger.projects["foo"].files == {}
    summary = ledger.as_json()["summary"]
    assert (summary["private"], summary["public"]) == (["foo-2"], ["foo"])


def test_a_file_on_the_private_host_of_a_project_whose_pages_are_public_stays_public() -> None:
    ledger = Ledger()
    mirror = "https://crane.example/mirror/simple/"
    ledger.page("pubdep", source="public", index=mirror, url=mirror + "pubdep/")
    record = ledger.file(
        ("pubdep",),
        source="private",
        index=INDEX,
        url="https://crane.example/files/pubdep-1.0.tar.gz",
        by_host=True,
    )
    assert record is not None
    assert record.source == "public"
    assert ledger.projects["pubdep"].source == "public"


# -- URLs as shown ----------------------------------------------------------------------


def test_urls_are_shown_without_userinfo_query_or_fragment() -> None:
    ledger = Ledger()
    ledger.private_answer(
        "demo", index=INDEX, url=SECRET_URL, status=404, verdict="absent", proven=True
    )
    ledger.page("demo", source="public", index=PUBLIC, url=SECRET_URL)
    file_url = "https://user:secret@files.example/demo-1.0.tar.gz?token=abc123#sha256=ff"
    ledger.file(("demo",), source="public", index=PUBLIC, url=file_url)

    text = json.dumps(ledger.as_json()) + ledger.summary()

    for secret in ("secret", "user:", "token", "abc123", "frag", "sha256=ff"):
        assert secret not in text
    [project] = ledger.as_json()["projects"]
    assert project["pages"] == ["https://crane.example/pypi/simple/demo/"]
    assert project["private_index_answers"][0]["url"] == "https://crane.example/pypi/simple/demo/"
    assert [f["url"] for f in project["files"]] == ["https://files.example/demo-1.0.tar.gz"]
    assert project["files"][0]["filename"] == "demo-1.0.tar.gz"


# -- the summary line -------------------------------------------------------------------


def test_the_summary_of_a_run_that_fetched_nothing() -> None:
    ledger = Ledger()
    ledger.private_answer(
        "demo", index=INDEX, url=INDEX + "demo/", status=500, verdict="error", proven=True
    )

    assert ledger.summary() == "provenance: no project was fetched from an index this run"
    assert Ledger().summary() == "provenance: no project was fetched from an index this run"


def test_the_summary_of_one_private_project_is_singular() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")

    assert ledger.summary() == "provenance: 1 project from the private index"


def test_the_summary_names_a_few_fallbacks() -> None:
    ledger = Ledger()
    _private_page(ledger, "mine")
    _private_page(ledger, "ours")
    for name in ("zeta", "alpha"):
        _public_page(ledger, name)

    assert ledger.summary() == (
        "provenance: 2 projects from the private index, 2 from the public index (alpha, zeta)"
    )


def test_the_summary_of_only_fallbacks_counts_zero_private_projects() -> None:
    ledger = Ledger()
    _public_page(ledger, "demo")

    assert ledger.summary() == (
        "provenance: 0 projects from the private index, 1 from the public index (demo)"
    )


def test_the_summary_names_five_fallbacks_but_not_six() -> None:
    five, six = Ledger(), Ledger()
    for number in range(5):
        _public_page(five, f"p{number}")
        _public_page(six, f"p{number}")
    _public_page(six, "p5")

    assert five.summary().endswith("5 from the public index (p0, p1, p2, p3, p4)")
    assert six.summary() == "provenance: 0 projects from the private index, 6 from the public index"


def test_the_summary_names_the_one_project_on_both_indexes() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")
    _private_page(ledger, "solo")
    ledger.projects["demo"].on_public = True
    ledger.projects["solo"].on_public = False

    assert ledger.summary() == (
        "provenance: 2 projects from the private index; demo is on the public index too, "
        "taken from the private one"
    )


def test_the_summary_names_five_projects_on_both_and_counts_the_rest() -> None:
    ledger = Ledger()
    for number in range(7):
        _private_page(ledger, f"p{number}")
        ledger.projects[f"p{number}"].on_public = True

    assert ledger.summary() == (
        "provenance: 7 projects from the private index; p0, p1, p2, p3, p4 and 2 more are "
        "on the public index too, taken from the private one"
    )


def test_a_private_plus_public_project_counts_as_private_not_as_a_fallback() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")
    _public_page(ledger, "demo")

    assert ledger.summary() == "provenance: 1 project from the private index"
    assert ledger.as_json()["summary"] == {
        "private": ["demo"],
        "public": [],
        "on_both_private_won": [],
    }


# -- the JSON record --------------------------------------------------------------------


def test_the_record_is_versioned_and_passes_the_meta_fields_through() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")

    record = ledger.as_json(tool="pip", exit_code=3, indexes=[INDEX])

    assert record["format"] == FORMAT == "crane-provenance"
    assert record["version"] == VERSION == 1
    assert (record["tool"], record["exit_code"], record["indexes"]) == ("pip", 3, [INDEX])
    for stamp in (record["started"], record["finished"]):
        assert len(stamp) == 20
        assert stamp[4] == "-"
        assert stamp[10] == "T"
        assert stamp.endswith("Z")
    json.dumps(record)  # serialisable as it is


def test_the_record_lists_projects_sorted_with_their_source_specific_fields() -> None:
    ledger = Ledger()
    _absent(ledger, "zz-public")
    _public_page(ledger, "zz-public")
    _private_page(ledger, "mm-private")
    ledger.projects["mm-private"].on_public = True
    ledger.private_answer(
        "aa-none",
        index=INDEX,
        url=INDEX + "aa-none/",
        status=500,
        verdict="error",
        proven=True,
        reason="the index answered 500",
    )

    record = ledger.as_json()
    projects = {project["name"]: project for project in record["projects"]}

    assert [project["name"] for project in record["projects"]] == [
        "aa-none",
        "mm-private",
        "zz-public",
    ]
    private, public, nothing = projects["mm-private"], projects["zz-public"], projects["aa-none"]
    assert private["also_on_public_index"] is True
    assert "fallback" not in private
    assert public["fallback"]["verdict"] == "absent"
    assert "also_on_public_index" not in public
    assert "fallback" not in nothing
    assert "also_on_public_index" not in nothing
    assert nothing["index"] is None
    assert nothing["private_index_answers"][0]["reason"] == "the index answered 500"
    assert "reason" not in public["fallback"]
    assert (private["source"], public["source"], nothing["source"]) == (
        "private",
        "public",
        "none",
    )
    assert private["index"] == INDEX
    assert public["index"] == PUBLIC
    assert record["summary"] == {
        "private": ["mm-private"],
        "public": ["zz-public"],
        "on_both_private_won": ["mm-private"],
    }


def test_a_project_known_by_its_files_only_takes_its_index_from_them() -> None:
    ledger = Ledger()
    ledger.file(
        ("demo",), source="private", index=INDEX, url="https://crane.example/r/demo-1.0.tar.gz"
    )

    [project] = ledger.as_json()["projects"]

    assert project["index"] == INDEX
    assert project["pages"] == []
    assert project["also_on_public_index"] is None
    assert project["files"][0] == {
        "filename": "demo-1.0.tar.gz",
        "url": "https://crane.example/r/demo-1.0.tar.gz",
        "source": "private",
        "index": INDEX,
        "sha256": None,
        "sha256_from": None,
        "size": None,
        "from_cache": False,
    }


def test_a_private_plus_public_project_has_both_source_specific_fields() -> None:
    ledger = Ledger()
    _private_page(ledger, "demo")
    _public_page(ledger, "demo")

    [project] = ledger.as_json()["projects"]

    assert project["source"] == "private+public"
    assert "fallback" in project
    assert "also_on_public_index" in project


# -- the public index checks ------------------------------------------------------------


class CountingCheck:
    """A `PublicCheck` that records each call; answers from a table (default True)."""

    def __init__(self, answers: dict[str, bool | None] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[str] = []

    async def __call__(self, project: str) -> bool | None:
        self.calls.append(project)
        await asyncio.sleep(0)
        return self.answers.get(project, True)


def test_a_private_project_is_checked_on_the_public_index_once() -> None:
    check = CountingCheck({"demo": True, "solo": False})
    ledger = Ledger(check)

    async def work() -> None:
        _private_page(ledger, "demo")
        _private_page(ledger, "demo")
        ledger.page("demo", source="private", index=INDEX, url=INDEX + "Demo/")
        ledger.file(
            ("demo",), source="private", index=INDEX, url="https://crane.example/demo-1.0.tar.gz"
        )
        ledger.file(
            ("solo",), source="private", index=INDEX, url="https://crane.example/solo-1.0.tar.gz"
        )
        await ledger.settle(5)

    asyncio.run(work())

    assert sorted(check.calls) == ["demo", "solo"]
    assert ledger.projects["demo"].on_public is True
    assert ledger.projects["solo"].on_public is False


def test_a_public_project_is_not_checked() -> None:
    check = CountingCheck()
    ledger = Ledger(check)

    async def work() -> None:
        _absent(ledger, "demo")
        _public_page(ledger, "demo")
        ledger.file(
            ("demo",), source="public", index=PUBLIC, url="https://files.example/demo-1.0.tar.gz"
        )
        await ledger.settle(5)

    asyncio.run(work())

    assert check.calls == []
    assert ledger.projects["demo"].on_public is None


def test_at_most_eight_checks_run_at_once() -> None:
    running = 0
    most = 0
    done: list[str] = []

    async def slow(project: str) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        done.append(project)
        return True

    ledger = Ledger(slow)

    async def work() -> None:
        for number in range(20):
            _private_page(ledger, f"p{number}")
        await asyncio.sleep(0)  # every check has started, or is waiting for a slot
        assert running == 8
        await ledger.settle(5)

    asyncio.run(work())

    assert most == 8
    assert len(done) == 20
    assert all(record.on_public is True for record in ledger.projects.values())


def test_settle_cancels_the_checks_that_are_late() -> None:
    cancelled: list[str] = []

    async def check(project: str) -> bool:
        if project == "slow":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(project)
                raise
        return True

    ledger = Ledger(check)

    async def work() -> None:
        _private_page(ledger, "fast")
        _private_page(ledger, "slow")
        await ledger.settle(0.05)
        assert all(task.done() for task in ledger._checks.values())

    asyncio.run(work())

    assert ledger.projects["fast"].on_public is True
    assert ledger.projects["slow"].on_public is None
    assert cancelled == ["slow"]


def test_settle_without_checks_returns_at_once() -> None:
    ledger = Ledger(CountingCheck())

    asyncio.run(ledger.settle(0))

    assert ledger.projects == {}


def test_a_check_that_fails_leaves_the_answer_unknown() -> None:
    async def broken(project: str) -> bool:
        raise httpx.ConnectError("no route")

    ledger = Ledger(broken)

    async def work() -> None:
        _private_page(ledger, "demo")
        await ledger.settle(5)

    asyncio.run(work())

    assert ledger.projects["demo"].on_public is None
    assert ledger.summary() == (
        "provenance: 1 project from the private index; the public index did not say "
        "whether it has 1 project too"
    )


def test_without_a_public_check_nothing_is_asked() -> None:
    ledger = Ledger(None)

    async def work() -> None:
        _private_page(ledger, "demo")
        await ledger.settle(5)

    asyncio.run(work())

    assert ledger._checks == {}
    assert ledger.projects["demo"].on_public is None


def test_outside_a_running_loop_nothing_is_asked_until_there_is_one() -> None:
    check = CountingCheck()
    ledger = Ledger(check)

    _private_page(ledger, "demo")  # no running loop: no check, and no coroutine left over

    assert check.calls == []
    assert ledger._checks == {}

    async def work() -> None:
        _private_page(ledger, "demo")
        await ledger.settle(5)

    asyncio.run(work())

    assert check.calls == ["demo"]
    assert ledger.projects["demo"].on_public is True


# =======================================================================================
# 2. The index door's records
# =======================================================================================


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def door(origins: ScriptedOrigins, tokens: FakeTokens, ledger: Ledger) -> IndexDoor:
    upstream = Upstream(INDEX, tokens, client=origins.client())
    return IndexDoor(IndexSpec(INDEX, PUBLIC), upstream, token=TOKEN, ledger=ledger)


async def fetch(door: Door, target: str, method: str = "GET") -> tuple[Reply, bytes]:
    """One request to `door`, its body read whole."""
    return await read_reply(door, Request(method, target, (("accept", "text/html"),)))


async def prove(door: IndexDoor, origins: ScriptedOrigins) -> None:
    origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)
    await door.probe()
    assert door.proven


DATA = b"sdist bytes" * 100
DIGEST = hashlib.sha256(DATA).hexdigest()
FILE_URL = "https://crane.example/repo/demo/demo-1.0.tar.gz"
FILE_TARGET = f"/{TOKEN}/files/repo/demo/demo-1.0.tar.gz"
HASHED_PAGE = (
    b'<!DOCTYPE html><html><body><a href="/repo/demo/demo-1.0.tar.gz#sha256='
    + DIGEST.encode()
    + b'">demo-1.0.tar.gz</a></body></html>'
)
PUBLIC_PAGE = (
    b'<!DOCTYPE html><html><body><a href="../../packages/demo-9.0.tar.gz#sha256=cc">'
    b"demo-9.0.tar.gz</a></body></html>"
)


def test_the_door_records_a_served_private_page(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(INDEX + "demo/", 200, HASHED_PAGE, HTML_TYPE)

    async def work() -> Reply:
        await prove(door, origins)
        reply, _body = await fetch(door, f"/{TOKEN}/simple/Demo/")
        return reply

    assert asyncio.run(work()).status == 200
    record = ledger.projects["demo"]
    [answer] = record.answers
    assert (answer.verdict, answer.status, answer.credentials_proven, answer.reason) == (
        "served",
        200,
        True,
        "",
    )
    assert (answer.index, answer.url) == (INDEX, INDEX + "demo/")
    assert record.pages == [("private", INDEX, INDEX + "demo/")]
    assert record.source == "private"
    assert origins.to("public.example") == []


def test_the_door_records_the_proven_404_behind_a_fallback(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(INDEX, 200, INDEX_ROOT, HTML_TYPE)  # proven on demand, by the 404
    origins.answer(INDEX + "demo/", 404)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_PAGE, HTML_TYPE)

    reply, _body = asyncio.run(fetch(door, f"/{TOKEN}/simple/demo/"))

    assert reply.status == 200
    record = ledger.projects["demo"]
    [answer] = record.answers
    assert (answer.verdict, answer.status, answer.credentials_proven) == ("absent", 404, True)
    assert record.pages == [("public", PUBLIC, PUBLIC + "demo/")]
    assert record.source == "public"
    assert record.fallback_proof == answer
    assert ledger.summary() == (
        "provenance: 0 projects from the private index, 1 from the public index (demo)"
    )


def test_a_404_before_the_credentials_are_proven_is_recorded_as_an_error(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(INDEX, 500)  # the probe fails: a 404 proves nothing
    origins.answer(INDEX + "demo/", 404)

    reply, _body = asyncio.run(fetch(door, f"/{TOKEN}/simple/demo/"))

    assert reply.status == 502
    [answer] = ledger.projects["demo"].answers
    assert (answer.verdict, answer.status, answer.credentials_proven) == ("error", 404, False)
    assert "not falling back" in answer.reason
    assert ledger.projects["demo"].fallback_proof is None
    assert origins.to("public.example") == []


def test_the_door_records_an_error_and_nothing_falls_back(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(INDEX + "demo/", 500, b"<html>oops</html>", HTML_TYPE)

    async def work() -> Reply:
        await prove(door, origins)
        reply, _body = await fetch(door, f"/{TOKEN}/simple/demo/")
        return reply

    assert asyncio.run(work()).status == 502
    record = ledger.projects["demo"]
    [answer] = record.answers
    assert (answer.verdict, answer.credentials_proven) == ("error", True)
    assert answer.reason
    assert "500" in answer.reason
    assert record.pages == []
    assert record.source == "none"
    assert origins.to("public.example") == []
    assert ledger.summary() == "provenance: no project was fetched from an index this run"


def test_the_door_records_a_private_file_with_the_hash_its_page_gave(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(INDEX + "demo/", 200, HASHED_PAGE, HTML_TYPE)
    origins.answer(FILE_URL, 200, DATA)

    async def work() -> bytes:
        await prove(door, origins)
        await fetch(door, f"/{TOKEN}/simple/demo/")
        _reply, body = await fetch(door, FILE_TARGET)
        return body

    assert asyncio.run(work()) == DATA
    record = ledger.projects["demo"].files[FILE_URL]
    assert (record.sha256, record.sha256_from) == (DIGEST, "index page")
    assert (record.source, record.index, record.size, record.from_cache) == (
        "private",
        INDEX,
        len(DATA),
        False,
    )
    assert record.filename == "demo-1.0.tar.gz"


def test_a_private_file_without_a_page_has_no_hash(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(FILE_URL, 200, DATA)

    asyncio.run(fetch(door, FILE_TARGET))

    record = ledger.projects["demo"].files[FILE_URL]
    assert (record.sha256, record.sha256_from) == (None, None)


def test_a_head_request_for_a_file_is_no_download(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    origins.answer(FILE_URL, 200, headers={"content-length": str(len(DATA))})

    reply, _body = asyncio.run(fetch(door, FILE_TARGET, "HEAD"))

    assert reply.status == 200
    assert ledger.projects == {}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, PUBLIC_PAGE, HTML_TYPE), True),
        ((404, b"", {}), False),
        ((410, b"", {}), False),
        ((500, b"<html>oops</html>", HTML_TYPE), None),
        ((200, b"<html><body><form>log in</form></body></html>", HTML_TYPE), None),
    ],
    ids=["200", "404", "410", "500", "200-not-an-index-page"],
)
def test_public_has(
    door: IndexDoor,
    origins: ScriptedOrigins,
    answer: tuple[int, bytes, dict[str, str]],
    expected: bool | None,
) -> None:
    origins.answer(PUBLIC + "demo/", *answer)

    assert asyncio.run(door.public_has("demo")) is expected
    [request] = origins.requests
    assert "authorization" not in request.headers


def test_public_has_cannot_tell_when_the_public_index_is_unreachable(
    door: IndexDoor, origins: ScriptedOrigins
) -> None:
    origins.answers[PUBLIC + "demo/"] = httpx.ConnectError

    assert asyncio.run(door.public_has("demo")) is None


def test_public_has_cannot_tell_without_a_public_index(
    origins: ScriptedOrigins, tokens: FakeTokens
) -> None:
    upstream = Upstream(INDEX, tokens, client=origins.client())
    door = IndexDoor(IndexSpec(INDEX, ""), upstream, token=TOKEN)

    assert asyncio.run(door.public_has("demo")) is None
    assert origins.requests == []


def test_a_served_page_is_checked_on_the_public_index_by_the_door(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    ledger.public_check = door.public_has
    origins.answer(INDEX + "demo/", 200, HASHED_PAGE, HTML_TYPE)
    origins.answer(PUBLIC + "demo/", 200, PUBLIC_PAGE, HTML_TYPE)

    async def work() -> None:
        await prove(door, origins)
        await fetch(door, f"/{TOKEN}/simple/demo/")
        await ledger.settle(5)

    asyncio.run(work())

    assert ledger.projects["demo"].on_public is True
    assert ledger.summary() == (
        "provenance: 1 project from the private index; demo is on the public index too, "
        "taken from the private one"
    )
    assert len(origins.to("public.example")) == 1


# =======================================================================================
# 3. The transparent door's records
# =======================================================================================

PASSWORD = "s3cret-pw"
PROXY_AUTH = (
    "proxy-authorization",
    "Basic " + base64.b64encode(b"crane:" + PASSWORD.encode()).decode(),
)
PUBLIC_FILE = "http://files.example/packages/demo-1.0.tar.gz"


class NotPrivate:
    """A `ProjectLookup` for which no name is private: the guard lets everything pass."""

    @property
    def private_url(self) -> str:
        return INDEX

    async def project_status(self, project: str) -> tuple[NameStatus, str]:
        return NameStatus.ABSENT, ""


class Chunks(httpx.AsyncByteStream):
    """A response body in chunks; with `fail_after`, the connection breaks after that many."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self._chunks = chunks
        self._fail_after = fail_after

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for number, chunk in enumerate(self._chunks):
            if number == self._fail_after:
                raise httpx.ReadError("connection reset")
            yield chunk


Handler = Callable[[httpx.Request], httpx.Response]


def _no_interception(host: str) -> ssl.SSLContext:
    raise AssertionError(f"nothing here is intercepted ({host})")


def transparent(handler: Handler, ledger: Ledger) -> TransparentDoor:
    return TransparentDoor(
        {},
        _no_interception,
        guard=Guard([NotPrivate()], []),
        password=PASSWORD,
        public_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        ledger=ledger,
    )


async def through(
    door: TransparentDoor, url: str, method: str = "GET", *, whole: bool = True
) -> tuple[Reply, bytes]:
    """One absolute-form request through the door; its body read (`whole`: to the end)."""
    reply = await door(Request(method, url, (PROXY_AUTH,)))
    chunks: list[bytes] = []
    try:
        if isinstance(reply.body, bytes):
            chunks.append(reply.body)
        else:
            async for chunk in reply.body:
                chunks.append(chunk)
    finally:
        if reply.close is not None:
            await reply.close()
        await door.aclose()
    return reply, b"".join(chunks)


def test_a_public_file_is_hashed_as_it_streams(ledger: Ledger) -> None:
    data = [b"first part " * 100, b"second part " * 100]

    def handler(request: httpx.Request) -> httpx.Response:
        length = sum(len(chunk) for chunk in data)
        return httpx.Response(200, headers={"content-length": str(length)}, stream=Chunks(data))

    reply, body = asyncio.run(through(transparent(handler, ledger), PUBLIC_FILE))

    assert (reply.status, body) == (200, b"".join(data))
    record = ledger.projects["demo"].files[PUBLIC_FILE]
    assert record.sha256 == hashlib.sha256(body).hexdigest()
    assert record.sha256_from == "served bytes"
    assert (record.source, record.size, record.from_cache) == ("public", len(body), False)
    assert record.index.startswith("http://files.example")


def test_a_public_file_is_recorded_with_no_hash_until_its_body_went_out(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunks([b"a", b"b"]))

    async def work() -> None:
        door = transparent(handler, ledger)
        reply = await door(Request("GET", PUBLIC_FILE, (PROXY_AUTH,)))
        assert ledger.projects["demo"].files[PUBLIC_FILE].sha256 is None
        assert not isinstance(reply.body, bytes)
        assert b"".join([chunk async for chunk in reply.body]) == b"ab"
        if reply.close is not None:
            await reply.close()
        await door.aclose()

    asyncio.run(work())

    assert ledger.projects["demo"].files[PUBLIC_FILE].sha256 == hashlib.sha256(b"ab").hexdigest()


def test_a_partial_answer_is_no_download(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-range": "bytes 0-3/100", "content-length": "4"}
        return httpx.Response(206, headers=headers, stream=Chunks([b"abcd"]))

    reply, _body = asyncio.run(through(transparent(handler, ledger), PUBLIC_FILE))

    assert reply.status == 206
    assert ledger.projects == {}


def test_a_head_request_records_nothing(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "HEAD"
        return httpx.Response(200, headers={"content-length": "100"}, stream=Chunks([]))

    reply, _body = asyncio.run(through(transparent(handler, ledger), PUBLIC_FILE, "HEAD"))

    assert reply.status == 200
    assert ledger.projects == {}


def test_a_content_encoded_body_is_not_hashed(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-encoding": "gzip", "content-length": "5"}
        return httpx.Response(200, headers=headers, stream=Chunks([b"gzzzz"]))

    reply, body = asyncio.run(through(transparent(handler, ledger), PUBLIC_FILE))

    assert (reply.status, body) == (200, b"gzzzz")
    record = ledger.projects["demo"].files[PUBLIC_FILE]
    assert (record.sha256, record.sha256_from) == (None, None)


def test_a_download_cut_midway_leaves_no_hash(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-length": "300"}, stream=Chunks([b"x" * 100] * 3, fail_after=1)
        )

    with pytest.raises(httpx.ReadError):
        asyncio.run(through(transparent(handler, ledger), PUBLIC_FILE))

    record = ledger.projects["demo"].files[PUBLIC_FILE]
    assert (record.sha256, record.sha256_from, record.size) == (None, None, 300)


def test_a_public_page_through_the_door_is_recorded_with_its_index(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=HTML_TYPE, stream=Chunks([PUBLIC_PAGE]))

    reply, _body = asyncio.run(
        through(transparent(handler, ledger), "http://mirror.example/simple/demo/?x=1")
    )

    assert reply.status == 200
    record = ledger.projects["demo"]
    assert record.pages == [
        ("public", "http://mirror.example/simple/", "http://mirror.example/simple/demo/")
    ]
    assert record.files == {}


def test_a_refused_request_records_nothing() -> None:
    ledger = Ledger()

    class Private(NotPrivate):
        async def project_status(self, project: str) -> tuple[NameStatus, str]:
            return NameStatus.SERVED, ""

    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("a refused request never leaves the door")

    door = TransparentDoor(
        {},
        _no_interception,
        guard=Guard([Private()], []),
        password=PASSWORD,
        public_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        ledger=ledger,
    )

    reply, _body = asyncio.run(through(door, PUBLIC_FILE))

    assert reply.status == 403
    assert ledger.projects == {}


def test_a_public_page_index_is_recorded_without_userinfo(ledger: Ledger) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=HTML_TYPE, stream=Chunks([PUBLIC_PAGE]))

    url = "http://user:secret@mirror.example/simple/demo/"
    reply, _body = asyncio.run(through(transparent(handler, ledger), url))

    assert reply.status == 200
    assert "secret" not in json.dumps(ledger.as_json())


def test_the_same_answer_asked_twice_is_recorded_once() -> None:
    ledger = Ledger()
    for status, verdict in ((404, "absent"), (404, "absent"), (200, "served")):
        ledger.private_answer(
            "demo",
            index="https://p/simple/",
            url="https://p/simple/demo/",
            status=status,
            verdict=verdict,  # type: ignore[arg-type]
            proven=True,
        )
    assert [a.status for a in ledger.projects["demo"].answers] == [404, 200]


def test_the_door_files_a_private_file_under_the_project_whose_page_linked_it(
    door: IndexDoor, origins: ScriptedOrigins, ledger: Ledger
) -> None:
    """foo-2's sdist `foo-2-1.0.tar.gz` could be foo's 2-1.0 by its name: the private page
    of foo-2 linked it, so it is foo-2's, and foo (public) gets nothing of it; a range
    request for it is no download."""
    origins.answer(INDEX + "foo/", 404, b"", HTML_TYPE)
    origins.answer(PUBLIC + "foo/", 200, b'<a href="/f/foo-1.0.tar.gz">foo</a>', HTML_TYPE)
    page = b'<a href="/repo/foo-2-1.0.tar.gz">foo-2-1.0.tar.gz</a>'
    origins.answer(INDEX + "foo-2/", 200, page, HTML_TYPE)
    origins.answer("https://crane.example/repo/foo-2-1.0.tar.gz", 200, DATA)

    async def work() -> None:
        await prove(door, origins)
        await fetch(door, f"/{TOKEN}/simple/foo/")
        await fetch(door, f"/{TOKEN}/simple/foo-2/")
        await fetch(door, f"/{TOKEN}/files/repo/foo-2-1.0.tar.gz")

    asyncio.run(work())
    assert ledger.projects["foo"].source == "public"
    assert ledger.projects["foo"].files == {}
    assert list(ledger.projects["foo-2"].files) == ["https://crane.example/repo/foo-2-1.0.tar.gz"]
    assert ledger.as_json()["summary"]["on_both_private_won"] == []


def test_the_summary_says_when_the_public_index_did_not_answer_in_time() -> None:
    async def slow(project: str) -> bool | None:
        await asyncio.sleep(10)
        return True

    async def work() -> str:
        ledger = Ledger(public_check=slow)
        ledger.page("corp-app", source="private", index=INDEX, url=INDEX + "corp-app/")
        await ledger.settle(0.01)
        return ledger.summary()

    assert asyncio.run(work()) == (
        "provenance: 1 project from the private index; the public index did not say whether "
        "it has 1 project too"
    )


def test_a_public_page_past_the_limit_is_no_answer(
    door: IndexDoor, origins: ScriptedOrigins, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("crane_launch.proxy.door._PAGE_LIMIT", 1000)
    page = b'<a href="/f/demo-1.0.tar.gz">x</a>' * 100
    origins.answer(PUBLIC + "demo/", 200, page, HTML_TYPE)

    status, found, why = asyncio.run(door.public_versions("demo"))
    assert (status, found) == (NameStatus.UNKNOWN, frozenset())
    assert "larger than" in why
    assert asyncio.run(door.public_has("demo")) is None
    monkeypatch.setattr("crane_launch.proxy.door._PAGE_LIMIT", 10_000)
    assert asyncio.run(door.public_versions("demo"))[:2] == (NameStatus.SERVED, frozenset({"1.0"}))


def test_a_locked_file_keeps_the_index_its_lock_names() -> None:
    """`uv sync` fetches no pages: a file on the private host that the lock takes from a
    mirror beside the private index is the mirror's, and a private one stays private."""
    ledger = Ledger()
    mirror = "https://crane.example/mirror/simple/"
    mirrored = "https://crane.example/mirror/files/pubdep-1.0.tar.gz"
    own = "https://crane.example/repo/corp_lib-1.0-py3-none-any.whl"
    ledger.locked_file(mirrored, project="pubdep", source="public", index=mirror)
    ledger.locked_file(own, project="corp-lib", source="private", index=INDEX)
    for url, projects in ((mirrored, ("pubdep",)), (own, ("corp-lib",))):
        ledger.file(projects, source="private", index=INDEX, url=url + "?sig=1", by_host=True)
    assert ledger.projects["pubdep"].source == "public"
    assert ledger.projects["pubdep"].files[mirrored].index == mirror
    assert ledger.projects["corp-lib"].source == "private"


def test_a_lock_entry_never_renames_a_file_its_name_does_not_allow() -> None:
    ledger = Ledger()
    url = "https://crane.example/repo/corp_lib-1.0-py3-none-any.whl"
    ledger.locked_file(url, project="other", source="public", index=PUBLIC)
    ledger.file(("corp-lib",), source="private", index=INDEX, url=url, by_host=True)
    assert list(ledger.projects) == ["corp-lib"]
    assert ledger.projects["corp-lib"].source == "private"


def test_a_public_files_index_is_the_one_its_page_came_from() -> None:
    ledger = Ledger()
    ledger.page("helper", source="public", index=PUBLIC, url=PUBLIC + "helper/")
    record = ledger.file(
        ("helper",), source="public", index=None, url="https://files.example/p/helper-1.0.tar.gz"
    )
    assert record is not None
    assert record.index == PUBLIC
    stray = ledger.file(
        ("stray",), source="public", index=None, url="https://files.example/p/stray-1.0.tar.gz"
    )
    assert stray is not None
    assert stray.index == "https://files.example"
