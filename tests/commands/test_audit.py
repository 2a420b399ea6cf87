"""`crane audit` (commands/audit): what it reads, what it asks the indexes, how it judges,
what it shows, and the command's wiring.

The indexes are a fake `Lookups`; files are real ones under tmp_path; the command runs
in-process with `run_audit`/`run_private_names` replaced. Nothing opens a socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from crane_launch.commands import audit
from crane_launch.commands.audit import (
    FORMAT,
    VERSION,
    Answer,
    Audit,
    Inputs,
    PrivateNames,
    Row,
    choose_index,
    collect,
    judge,
    private_names,
    survey,
)
from crane_launch.config import PrivateIndex, Registry
from crane_launch.errors import EXIT_CONFUSION, EXIT_UPSTREAM, UnknownIndexError, UsageError
from crane_launch.launch.locks import LockedPackage
from crane_launch.launch.wanted import Installed, Wanted
from crane_launch.proxy.guard import NameStatus
from tests.clirun import Crane, in_process

INDEX = "https://crane.example/pypi/simple/"
PUBLIC = "https://public.example/simple/"
SERVED, ABSENT, UNKNOWN = NameStatus.SERVED, NameStatus.ABSENT, NameStatus.UNKNOWN

Reply = tuple[NameStatus, frozenset[str], str]


def versions(*texts: str) -> frozenset[str]:
    return frozenset(texts)


class FakeLookups:
    """A `Lookups` answering from tables (a name not listed: absent, no versions); records
    every call and how many ran at once. `ticks` lets other lookups run while one waits."""

    def __init__(
        self,
        private: Mapping[str, Reply] | None = None,
        public: Mapping[str, Reply] | None = None,
        *,
        ticks: int = 0,
    ) -> None:
        self.private = dict(private or {})
        self.public = dict(public or {})
        self.ticks = ticks
        self.private_calls: list[str] = []
        self.public_calls: list[str] = []
        self.running = 0
        self.most = 0

    async def _answer(self, table: dict[str, Reply], project: str) -> Reply:
        self.running += 1
        self.most = max(self.most, self.running)
        for _ in range(self.ticks):
            await asyncio.sleep(0)
        self.running -= 1
        return table.get(project, (ABSENT, frozenset(), ""))

    async def private_versions(self, project: str) -> Reply:
        self.private_calls.append(project)
        return await self._answer(self.private, project)

    async def public_versions(self, project: str) -> Reply:
        self.public_calls.append(project)
        return await self._answer(self.public, project)


def locked(
    name: str, version: str | None, source: str, *, place: str = "uv.lock:7"
) -> LockedPackage:
    """A uv.lock-style entry: locked from the registry `source`."""
    return LockedPackage(name, version, (source,), False, place, ("registry",))


def row(
    name: str,
    private: NameStatus | None = None,
    public: NameStatus | None = None,
    *,
    private_versions: frozenset[str] = frozenset(),
    public_versions: frozenset[str] = frozenset(),
    **fields: Any,
) -> Row:
    return Row(
        name,
        private=Answer(private, private_versions),
        public=Answer(public, public_versions),
        **fields,
    )


# =======================================================================================
# survey: what is asked
# =======================================================================================


def test_a_served_name_is_asked_publicly_even_when_only_a_lock_names_it() -> None:
    rows = [Row("corp-lib", locked=[locked("corp-lib", "1.0", INDEX)])]
    lookups = FakeLookups(
        {"corp-lib": (SERVED, versions("1.0"), "")}, {"corp-lib": (SERVED, versions("2.0"), "")}
    )

    asyncio.run(survey(rows, lookups))

    assert lookups.private_calls == ["corp-lib"]
    assert lookups.public_calls == ["corp-lib"]
    assert rows[0].private == Answer(SERVED, versions("1.0"))
    assert rows[0].public == Answer(SERVED, versions("2.0"))


@pytest.mark.parametrize(
    "place",
    [
        "command line",
        "requirements file requirements.txt line 1",
        "pyproject.toml [project] dependencies",
    ],
)
def test_an_absent_name_a_requirement_wants_is_asked_publicly(place: str) -> None:
    rows = [Row("other", wanted=[Wanted("other", place)])]
    lookups = FakeLookups()

    asyncio.run(survey(rows, lookups))

    assert lookups.public_calls == ["other"]
    assert rows[0].presence == "neither"


def test_an_absent_name_only_a_lock_or_the_environment_names_is_not_asked_publicly() -> None:
    rows = [
        Row("from-lock", locked=[locked("from-lock", "1.0", PUBLIC)]),
        Row("from-env", installed=Installed("from-env", "1.0", None, False, "pip")),
    ]
    lookups = FakeLookups()

    asyncio.run(survey(rows, lookups))

    assert sorted(lookups.private_calls) == ["from-env", "from-lock"]
    assert lookups.public_calls == []
    for asked in rows:
        assert asked.public.status is None
        assert asked.presence == "not-private"
        assert asked.verdict() == "not on the private index (public index not asked)"


def test_a_name_the_private_index_cannot_answer_for_is_not_asked_publicly() -> None:
    rows = [Row("shaky", wanted=[Wanted("shaky", "command line")])]
    lookups = FakeLookups({"shaky": (UNKNOWN, frozenset(), "the index answered 503")})

    asyncio.run(survey(rows, lookups))

    assert lookups.public_calls == []
    assert rows[0].presence == "unknown"
    assert rows[0].verdict() == "unknown: the index answered 503"


@pytest.mark.parametrize(
    ("private", "wanted", "expected"),
    [
        (SERVED, False, True),
        (SERVED, True, True),
        (ABSENT, True, True),
        (ABSENT, False, False),
        (UNKNOWN, True, False),
        (UNKNOWN, False, False),
        (None, True, False),
    ],
)
def test_needs_public(private: NameStatus | None, wanted: bool, expected: bool) -> None:
    wants = [Wanted("demo", "command line")] if wanted else []

    assert row("demo", private, wanted=wants).needs_public is expected


def test_at_most_sixteen_lookups_run_at_once() -> None:
    names = [f"p{number:02}" for number in range(40)]
    rows = [Row(name) for name in names]
    lookups = FakeLookups(
        {name: (SERVED, versions("1.0"), "") for name in names},
        {name: (SERVED, versions("1.0"), "") for name in names},
        ticks=5,
    )

    asyncio.run(survey(rows, lookups))

    assert lookups.most == 16
    assert sorted(lookups.private_calls) == names
    assert sorted(lookups.public_calls) == names


def test_private_names_asks_the_public_index_for_each_name_sixteen_at_a_time() -> None:
    names = [f"p{number:02}" for number in range(30)]
    lookups = FakeLookups(public={"p00": (SERVED, versions("1.0"), "")}, ticks=3)

    answers = asyncio.run(private_names(names, lookups))

    assert lookups.most == 16
    assert lookups.private_calls == []
    assert sorted(lookups.public_calls) == names
    assert answers["p00"] == Answer(SERVED, versions("1.0"))
    assert answers["p01"] == Answer(ABSENT, frozenset())


# =======================================================================================
# presence, common versions, verdicts
# =======================================================================================


@pytest.mark.parametrize(
    ("private", "public", "expected"),
    [
        (None, None, "unknown"),
        (None, SERVED, "public"),
        (None, ABSENT, "neither"),
        (None, UNKNOWN, "unknown"),
        (SERVED, None, "private"),
        (SERVED, SERVED, "both"),
        (SERVED, ABSENT, "private"),
        (SERVED, UNKNOWN, "unknown"),
        (ABSENT, None, "not-private"),
        (ABSENT, SERVED, "public"),
        (ABSENT, ABSENT, "neither"),
        (ABSENT, UNKNOWN, "unknown"),
        (UNKNOWN, None, "unknown"),
        (UNKNOWN, SERVED, "unknown"),
        (UNKNOWN, ABSENT, "unknown"),
        (UNKNOWN, UNKNOWN, "unknown"),
    ],
)
def test_presence(private: NameStatus | None, public: NameStatus | None, expected: str) -> None:
    assert row("demo", private, public).presence == expected


def test_common_is_only_for_a_project_on_both() -> None:
    assert row("demo", SERVED, ABSENT, private_versions=versions("1.0")).common is None
    both = row(
        "demo",
        SERVED,
        SERVED,
        private_versions=versions("1.0", "2.0"),
        public_versions=versions("1.0.0", "3.0"),
    )
    assert both.common == versions("1.0")


@pytest.mark.parametrize(
    ("private", "public", "expected"),
    [
        (
            ("1.0", "10.0", "2.0"),
            ("2.0", "10.0", "11.0"),
            "on both; versions in common: 2.0, 10.0; the public index's is higher (11.0)",
        ),
        (("1.0",), ("2.0",), "on both; no version in common; the public index's is higher (2.0)"),
        (("1.0",), ("1.0.0",), "on both; versions in common: 1.0"),
        (("2.0",), ("1.0",), "on both; no version in common"),
        (("1.0", "2.0"), ("2.0",), "on both; versions in common: 2.0"),
        ((), ("1.0",), "on both; no version in common; the public index's is higher (1.0)"),
        (("1.0",), (), "on both; no version in common"),
    ],
    ids=[
        "overlap-public-higher",
        "disjoint",
        "equal-spelled-differently",
        "private-higher",
        "same-top",
        "no-private-files",
        "no-public-files",
    ],
)
def test_the_verdict_of_a_project_on_both(
    private: tuple[str, ...], public: tuple[str, ...], expected: str
) -> None:
    both = row(
        "demo",
        SERVED,
        SERVED,
        private_versions=versions(*private),
        public_versions=versions(*public),
    )

    assert both.verdict() == expected


def test_the_other_verdicts() -> None:
    assert row("demo", SERVED, ABSENT).verdict() == "private only"
    assert row("demo", ABSENT, SERVED).verdict() == "public only"
    assert row("demo", ABSENT, ABSENT).verdict() == (
        "on no index: anybody may claim this name publicly"
    )
    unknown = Row(
        "demo",
        private=Answer(SERVED),
        public=Answer(UNKNOWN, reason="the public index answered 500"),
    )
    assert unknown.verdict() == "unknown: the public index answered 500"
    confused = row(
        "demo",
        SERVED,
        SERVED,
        findings=["uv.lock:7: demo 1.0 is locked from X", "py: demo 2.0 is installed, ..."],
    )
    assert confused.verdict() == "CONFUSION: taken from elsewhere at uv.lock:7, py"


# =======================================================================================
# judge
# =======================================================================================


def judged(*rows: Row, python: str | None = "py") -> list[Row]:
    judge(rows, private_url=INDEX, python=python)
    return list(rows)


def test_a_private_name_locked_from_a_public_registry_is_a_confusion() -> None:
    [found] = judged(row("corp-lib", SERVED, SERVED, locked=[locked("corp-lib", "1.2", PUBLIC)]))

    [finding] = found.findings
    assert finding.startswith("uv.lock:7: corp-lib 1.2 is locked from " + PUBLIC)
    assert INDEX in finding
    assert found.verdict() == "CONFUSION: taken from elsewhere at uv.lock:7"


def test_a_private_name_locked_from_the_private_index_is_fine() -> None:
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            ABSENT,
            locked=[locked("corp-lib", "1.2", "HTTPS://Crane.example/pypi/simple")],
        )
    )

    assert found.findings == []
    assert found.notes == []


def test_a_public_name_locked_from_the_public_index_is_fine() -> None:
    [found] = judged(row("requests", ABSENT, None, locked=[locked("requests", "2.0", PUBLIC)]))

    assert found.findings == []


def test_a_lock_finding_does_not_repeat_credentials_in_the_locked_url() -> None:
    url = "https://user:secret@files.example/corp_lib-1.2.tar.gz"
    package = LockedPackage("corp-lib", "1.2", (url,), False, "pylock.toml:3", ("url",))

    [found] = judged(row("corp-lib", SERVED, ABSENT, locked=[package]))

    assert found.findings
    assert "secret" not in found.findings[0]


def installed(version: str, direct_url: str | None = None) -> Installed:
    return Installed("corp-lib", version, direct_url, False, "pip")


def test_an_installed_version_only_the_public_index_has_is_a_confusion() -> None:
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            SERVED,
            private_versions=versions("1.0"),
            public_versions=versions("9.9"),
            installed=installed("9.9"),
        ),
        python="venv/bin/python",
    )

    assert found.findings == [
        "venv/bin/python: corp-lib 9.9 is installed, a version only the public index has, "
        f"but private index {INDEX} has corp-lib; reinstall it with crane"
    ]
    assert found.notes == []


def test_an_installed_version_both_indexes_have_is_a_note() -> None:
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            SERVED,
            private_versions=versions("1.0"),
            public_versions=versions("1.0.0"),
            installed=installed("1.0"),
        )
    )

    assert found.findings == []
    [note] = found.notes
    assert "a version both indexes have" in note


def test_an_installed_version_the_private_index_does_not_have_is_a_finding() -> None:
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            ABSENT,
            private_versions=versions("1.0"),
            installed=installed("0.5"),
        )
    )

    assert found.notes == []
    [finding] = found.findings
    assert finding.startswith("py: corp-lib 0.5 is installed, a version the private index does not")


def test_an_installed_version_only_the_private_index_has_says_nothing() -> None:
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            SERVED,
            private_versions=versions("1.0"),
            public_versions=versions("2.0"),
            installed=installed("1.0"),
        )
    )

    assert (found.findings, found.notes) == ([], [])


def test_an_installation_from_a_url_off_the_private_origin_is_a_confusion() -> None:
    url = "https://user:tok3n@files.example/corp_lib-1.0-py3-none-any.whl?sig=abc"
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            ABSENT,
            private_versions=versions("1.0"),
            installed=installed("1.0", url),
        )
    )

    [finding] = found.findings
    assert "from https://files.example/corp_lib-1.0-py3-none-any.whl," in finding
    assert "tok3n" not in finding
    assert "sig=abc" not in finding


def test_an_installation_from_the_private_origin_is_fine() -> None:
    url = "https://crane.example/repo/corp_lib-1.0-py3-none-any.whl"
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            SERVED,
            public_versions=versions("1.0"),
            installed=installed("1.0", url),
        )
    )

    assert (found.findings, found.notes) == ([], [])


def test_a_requirement_pinned_to_a_url_off_the_private_origin_is_a_confusion() -> None:
    wanted = [
        Wanted("corp-lib", "requirements file r.txt line 2", "https://files.example/c-1.0.whl"),
        Wanted("corp-lib", "requirements file r.txt line 3", "https://crane.example/r/c-1.0.whl"),
        Wanted("corp-lib", "requirements file r.txt line 4"),
    ]

    [found] = judged(row("corp-lib", SERVED, ABSENT, wanted=wanted))

    assert found.findings == [
        "requirements file r.txt line 2: corp-lib would come from "
        f"https://files.example/c-1.0.whl, but private index {INDEX} has corp-lib; "
        "remove the URL"
    ]


def test_names_the_private_index_does_not_serve_are_not_judged() -> None:
    rows = judged(
        row(
            "public-lib",
            ABSENT,
            SERVED,
            wanted=[Wanted("public-lib", "command line", "https://files.example/p-1.0.whl")],
            installed=Installed("public-lib", "1.0", "https://files.example/p.whl", False, None),
        ),
        row("shaky", UNKNOWN, None, locked=[locked("shaky", "1.0", PUBLIC)]),
    )

    assert all(not (checked.findings or checked.notes) for checked in rows)


# =======================================================================================
# the result: exit code, summary, table, JSON
# =======================================================================================


def test_the_exit_code() -> None:
    fine = row("a", SERVED, ABSENT)
    unknown = row("b", UNKNOWN)
    confused = row("c", SERVED, SERVED, findings=["uv.lock:1: bad"])

    assert Audit(INDEX, PUBLIC, [fine]).exit_code == 0
    assert Audit(INDEX, PUBLIC, []).exit_code == 0
    assert Audit(INDEX, PUBLIC, [fine, unknown]).exit_code == EXIT_UPSTREAM == 5
    assert Audit(INDEX, PUBLIC, [fine, unknown, confused]).exit_code == EXIT_CONFUSION == 6


def test_the_summary() -> None:
    rows = [
        row("a-private", SERVED, ABSENT),
        row("b-public", ABSENT, SERVED),
        row("c-both", SERVED, SERVED, findings=["x"]),
        row("d-both", SERVED, SERVED),
        row("e-nowhere", ABSENT, ABSENT),
        row("f-unknown", UNKNOWN),
    ]

    assert Audit(INDEX, PUBLIC, rows).summary() == (
        "audit of 6 projects: 1 private, 1 public, 2 on both, 1 on no index, 1 unknown; "
        "dependency confusion: c-both"
    )
    assert Audit(INDEX, PUBLIC, rows[:1]).summary() == "audit of 1 project: 1 private"
    assert Audit(INDEX, PUBLIC, []).summary() == "audit of 0 projects: nothing"


def sample_rows() -> list[Row]:
    return [
        row(
            "corp-lib",
            SERVED,
            SERVED,
            private_versions=versions("1.0", "1.1", "2.0"),
            public_versions=versions("9.9"),
            locked=[locked("corp-lib", "1.1", PUBLIC)],
            installed=installed("9.9"),
            findings=["uv.lock:7: corp-lib 1.1 is locked from elsewhere"],
        ),
        row("ok", SERVED, ABSENT, private_versions=versions("1.0")),
        row("shaky-long-name", UNKNOWN, None),
        Row("some", private=Answer(ABSENT), public=Answer(SERVED)),
    ]


def test_the_table_has_a_header_and_aligned_columns() -> None:
    lines = Audit(INDEX, PUBLIC, sample_rows()).table()

    header = lines[0]
    assert header.split() == ["PROJECT", "PRIVATE", "PUBLIC", "IN", "USE", "VERDICT"]
    starts = [header.index(title) for title in ("PRIVATE", "PUBLIC", "IN USE", "VERDICT")]
    cells = {
        "corp-lib": ("1.0 .. 2.0 (3)", "9.9", "1.1 (uv.lock), 9.9 (installed)"),
        "ok": ("1.0", "-", ""),
        "shaky-long-name": ("?", "", ""),
        "some": ("-", "(no files)", ""),
    }
    assert len(lines) == 1 + len(cells)
    for line, (name, (private, public, in_use)) in zip(lines[1:], cells.items(), strict=True):
        assert line.startswith(name + " ")
        assert line[starts[0] :].startswith(private)
        assert line[starts[1] :].startswith(public)
        assert line[starts[2] :].startswith(in_use)
        assert line[starts[3] - 2 : starts[3]] == "  "
    assert lines[1][starts[3] :] == "CONFUSION: taken from elsewhere at uv.lock:7"
    assert lines[3][starts[3] :] == "unknown: no answer"
    assert starts[0] == len("shaky-long-name") + 2


def test_two_versions_are_listed_and_more_are_a_range() -> None:
    rows = [
        row("a", SERVED, None, private_versions=versions("2.0", "10.0")),
        row("b", SERVED, None, private_versions=versions("1.0", "2.0", "10.0")),
    ]

    lines = Audit(INDEX, PUBLIC, rows).table()

    assert lines[1].split()[1:3] == ["2.0,", "10.0"]
    assert "1.0 .. 10.0 (3)" in lines[2]


def test_the_json_record() -> None:
    result = Audit(INDEX, PUBLIC, sample_rows())

    record = json.loads(result.dumps())

    assert record["format"] == FORMAT == "crane-audit"
    assert record["version"] == VERSION == 1
    assert (record["private_index"], record["public_index"]) == (INDEX, PUBLIC)
    assert record["exit_code"] == 6
    assert record["summary"] == result.summary()
    assert [project["name"] for project in record["projects"]] == [
        "corp-lib",
        "ok",
        "shaky-long-name",
        "some",
    ]
    corp = record["projects"][0]
    assert set(corp) == {
        "name",
        "presence",
        "private",
        "public",
        "versions_in_common",
        "wanted_by",
        "locked",
        "installed",
        "findings",
        "notes",
    }
    assert corp["presence"] == "both"
    assert corp["private"] == {"status": "present", "versions": ["1.0", "1.1", "2.0"]}
    assert corp["versions_in_common"] == []
    assert corp["locked"] == [{"place": "uv.lock:7", "version": "1.1", "sources": [PUBLIC]}]
    assert corp["installed"] == {"version": "9.9", "direct_url": None, "installer": "pip"}
    ok, shaky = record["projects"][1], record["projects"][2]
    assert ok["public"] == {"status": "absent", "versions": []}
    assert ok["versions_in_common"] is None
    assert ok["installed"] is None
    assert shaky["private"] == {"status": "unknown", "versions": []}
    assert shaky["public"] == {"status": "not asked", "versions": []}


def test_an_answer_shows_its_reason_in_json() -> None:
    assert Answer(UNKNOWN, frozenset(), "the index answered 503").as_json() == {
        "status": "unknown",
        "versions": [],
        "reason": "the index answered 503",
    }


# =======================================================================================
# collect: the inputs
# =======================================================================================

WHEEL = "https://files.example/corp_lib-1.2-py3-none-any.whl"
WHEEL_HASH = "sha256:" + "a" * 64
UV_LOCK = f"""\
version = 1
requires-python = ">=3.11"

[[package]]
name = "Corp_Lib"
version = "1.2"
source = {{ registry = "{PUBLIC}" }}
wheels = [{{ url = "{WHEEL}", hash = "{WHEEL_HASH}" }}]

[[package]]
name = "me"
version = "0.1.0"
source = {{ editable = "." }}

[[package]]
name = "helper"
version = "3.0"
source = {{ registry = "{INDEX}" }}
"""

PYPROJECT = """\
[project]
name = "me"
version = "0.1.0"
dependencies = ["Dep-A>=1", "me[extra]"]
"""


def collected(inputs: Inputs, cwd: Path, **options: Any) -> dict[str, Row]:
    return {found.name: found for found in collect(inputs, cwd=cwd, environ={}, **options)}


def test_names_on_the_command_line_are_normalised_and_wanted(tmp_path: Path) -> None:
    rows = collected(Inputs(names=("Corp_Lib", "corp.lib", "zz")), tmp_path)

    assert list(rows) == ["corp-lib", "zz"]
    assert [wanted.place for wanted in rows["corp-lib"].wanted] == ["command line"] * 2


def test_a_requirements_file_and_the_files_it_includes(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("corp-lib==1.0\n-r more.txt\n")
    (tmp_path / "more.txt").write_text("# more\nOther_Pkg\n")

    rows = collected(Inputs(requirements=(Path("requirements.txt"),)), tmp_path)

    assert list(rows) == ["corp-lib", "other-pkg"]
    assert rows["corp-lib"].wanted == [
        Wanted("corp-lib", "requirements file requirements.txt line 1")
    ]
    assert rows["other-pkg"].wanted == [Wanted("other-pkg", "requirements file more.txt line 2")]


def test_a_missing_requirements_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        collect(Inputs(requirements=(Path("nope.txt"),)), cwd=tmp_path, environ={})


def test_a_pyproject(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text(PYPROJECT)

    rows = collected(Inputs(pyprojects=(Path("sub/pyproject.toml"),)), tmp_path)

    assert list(rows) == ["dep-a"]
    assert rows["dep-a"].wanted == [Wanted("dep-a", "sub/pyproject.toml [project] dependencies")]


def test_a_uv_lock(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(UV_LOCK)

    rows = collected(Inputs(locks=(Path("uv.lock"),)), tmp_path)

    assert list(rows) == ["corp-lib", "helper"]  # the project's own entry is skipped
    [corp] = rows["corp-lib"].locked
    assert (corp.version, corp.place) == ("1.2", "uv.lock:4")
    assert corp.sources == (PUBLIC, WHEEL)
    assert rows["corp-lib"].wanted == []


def test_a_uv_lock_of_a_private_name_from_the_public_registry_is_judged(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(UV_LOCK)
    rows = collect(Inputs(locks=(Path("uv.lock"),)), cwd=tmp_path, environ={})
    lookups = FakeLookups(
        {name: (SERVED, versions("1.2", "3.0"), "") for name in ("corp-lib", "helper")}
    )

    asyncio.run(survey(rows, lookups))
    judge(rows, private_url=INDEX, python=None)

    by_name = {found.name: found for found in rows}
    [finding] = by_name["corp-lib"].findings
    assert finding.startswith(f"uv.lock:4: corp-lib 1.2 is locked from {PUBLIC} (registry)")
    assert by_name["helper"].findings == []
    assert Audit(INDEX, PUBLIC, rows).exit_code == 6


def test_a_missing_lock_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--lock uv\.lock: no such file$"):
        collect(Inputs(locks=(Path("uv.lock"),)), cwd=tmp_path, environ={})


def test_without_inputs_the_working_directory_s_project_and_locks_are_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "uv.lock").write_text(UV_LOCK)

    rows = collected(Inputs(), tmp_path)

    assert list(rows) == ["corp-lib", "dep-a", "helper"]
    assert rows["dep-a"].wanted == [Wanted("dep-a", "pyproject.toml [project] dependencies")]
    assert [package.place for package in rows["corp-lib"].locked] == ["uv.lock:4"]


def test_without_inputs_a_lock_alone_is_enough(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(UV_LOCK)

    assert list(collected(Inputs(), tmp_path)) == ["corp-lib", "helper"]


def test_without_inputs_an_empty_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("corp-lib\n")  # not read by default

    with pytest.raises(UsageError, match="nothing to audit here"):
        collect(Inputs(), cwd=tmp_path, environ={})


def test_an_environment_skips_the_users_own_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, frozenset[str]]] = []

    def fake_installed(
        python: str, environ: Mapping[str, str], *, hidden: frozenset[str] = frozenset()
    ) -> list[Installed]:
        asked.append((python, hidden))
        return [
            Installed("mine", "0.1", "file:///src/mine", True, "pip"),
            Installed("tree", "0.3", "file:///src/tree", False, "pip", directory=True),
            Installed("odd", "99.0", "file:///dl/odd-99.0.tar.zst", False, "uv"),
            Installed("local", "0.2", "file:///wheels/local-0.2.whl", False, "pip"),
            Installed("corp-lib", "1.0", None, False, "uv"),
        ]

    monkeypatch.setattr(audit, "installed_packages", fake_installed)

    rows = collected(Inputs(python="py3"), tmp_path, hidden=frozenset({"SECRET_VAR"}))

    assert asked == [("py3", frozenset({"SECRET_VAR"}))]
    # A downloaded archive came from somewhere: judged by its version like any other.
    assert list(rows) == ["corp-lib", "local", "odd"]
    assert rows["corp-lib"].installed == Installed("corp-lib", "1.0", None, False, "uv")


def test_inputs_are_empty_only_without_anything() -> None:
    assert Inputs().empty
    assert not Inputs(names=("a",)).empty
    assert not Inputs(python="py").empty
    assert not Inputs(locks=(Path("uv.lock"),)).empty


# =======================================================================================
# choosing the index
# =======================================================================================


def registry_with(tmp_path: Path, *urls: str) -> Registry:
    registry = Registry(tmp_path / "indexes.json")
    for url in urls:
        registry.put(PrivateIndex(url=url))
    return registry


def test_no_index_registered_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no index registered"):
        choose_index(registry_with(tmp_path), None)


def test_the_one_index_registered_is_chosen(tmp_path: Path) -> None:
    assert choose_index(registry_with(tmp_path, INDEX), None).url == INDEX


def test_two_indexes_need_a_choice(tmp_path: Path) -> None:
    other = "https://other.example/simple/"
    registry = registry_with(tmp_path, INDEX, other)

    with pytest.raises(UsageError, match="more than one index") as caught:
        choose_index(registry, None)

    assert INDEX in str(caught.value)
    assert other in str(caught.value)
    assert choose_index(registry, "HTTPS://Other.example/simple").url == other


def test_an_unregistered_index_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownIndexError):
        choose_index(registry_with(tmp_path, INDEX), "https://nowhere.example/simple/")


# =======================================================================================
# --private-names
# =======================================================================================


def names_result(answers: dict[str, Answer]) -> PrivateNames:
    return PrivateNames(INDEX, PUBLIC, answers)


def test_private_names_lists() -> None:
    result = names_result(
        {
            "zz": Answer(ABSENT),
            "aa": Answer(ABSENT),
            "both": Answer(SERVED, versions("1.0")),
            "shaky": Answer(UNKNOWN, reason="the public index answered 503"),
        }
    )

    assert result.private_only == ["aa", "zz"]
    assert result.on_both == ["both"]
    assert result.unknown == ["shaky"]
    assert result.exit_code == EXIT_UPSTREAM
    assert result.summary() == (
        f"2 projects of private index {INDEX} are not on the public index {PUBLIC}: "
        "reserve them there; on both already: both; the public index could not say for shaky"
    )
    assert result.as_json() == {
        "format": "crane-audit",
        "version": 1,
        "private_index": INDEX,
        "public_index": PUBLIC,
        "exit_code": 5,
        "private_only": ["aa", "zz"],
        "on_both": ["both"],
        "unknown": {"shaky": "the public index answered 503"},
    }


def test_private_names_summary_of_one() -> None:
    result = names_result({"solo": Answer(ABSENT)})

    assert result.exit_code == 0
    assert result.summary() == (
        f"1 project of private index {INDEX} is not on the public index {PUBLIC}: reserve it there"
    )


# =======================================================================================
# run_audit, with the door replaced
# =======================================================================================


def test_run_audit_reads_asks_and_judges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    registry = Registry(Registry.default_path())
    registry.put(PrivateIndex(url=INDEX, auth="token", token_env="CORP_TOKEN", public_index=PUBLIC))
    registry.save()
    (tmp_path / "uv.lock").write_text(UV_LOCK)
    lookups = FakeLookups(
        {"corp-lib": (SERVED, versions("1.2"), "")}, {"corp-lib": (SERVED, versions("1.2"), "")}
    )
    doors: list[tuple[str, str]] = []

    def with_door(
        index: PrivateIndex,
        public_url: str,
        environ: Mapping[str, str],
        no_input: bool,
        work: Callable[[FakeLookups], Any],
    ) -> Any:
        doors.append((index.url, public_url))
        return asyncio.run(work(lookups))

    monkeypatch.setattr(audit, "_with_door", with_door)

    result = audit.run_audit(Inputs(), index_url=None, environ={}, cwd=tmp_path, no_input=True)

    assert doors == [(INDEX, PUBLIC)]
    assert (result.private_url, result.public_url) == (INDEX, PUBLIC)
    assert [found.name for found in result.rows] == ["corp-lib", "helper"]
    assert sorted(lookups.private_calls) == ["corp-lib", "helper"]
    assert lookups.public_calls == ["corp-lib"]  # helper: absent and only locked
    assert result.exit_code == EXIT_CONFUSION


# =======================================================================================
# the command
# =======================================================================================


@pytest.fixture
def crane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Crane:
    """Run `crane ARGS...` in-process; its exit code and what it printed."""
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    for name in ("CRANE_NO_INPUT", "CI", "CRANE_REPORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("crane_launch.cli.harden", lambda: None)

    return in_process(capsys)


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`run_audit` replaced: records its arguments, answers with `sample_rows()`."""
    calls: list[dict[str, Any]] = []

    def fake(inputs: Inputs, **options: Any) -> Audit:
        calls.append({"inputs": inputs, **options})
        return Audit(INDEX, PUBLIC, sample_rows())

    monkeypatch.setattr(audit, "run_audit", fake)
    return calls


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """`run_private_names` replaced: records its arguments."""
    calls: list[dict[str, Any]] = []

    def fake(**options: Any) -> PrivateNames:
        calls.append(options)
        return names_result({"zz": Answer(ABSENT), "aa": Answer(ABSENT), "b": Answer(SERVED)})

    monkeypatch.setattr(audit, "run_private_names", fake)
    return calls


def test_the_command_prints_the_table_and_the_findings(
    crane: Crane, audited: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = crane("audit", "Corp_Lib", "-r", "r.txt", "--lock", "uv.lock", "--index", INDEX)

    assert result.code == 6
    assert result.out.splitlines() == Audit(INDEX, PUBLIC, sample_rows()).table()
    assert result.err.splitlines() == [
        "crane: uv.lock:7: corp-lib 1.1 is locked from elsewhere",
        "crane: " + Audit(INDEX, PUBLIC, sample_rows()).summary(),
    ]
    [call] = audited
    assert call["inputs"] == Inputs(
        names=("Corp_Lib",), requirements=(Path("r.txt"),), locks=(Path("uv.lock"),)
    )
    assert call["index_url"] == INDEX
    assert call["no_input"] is False


def test_the_command_prints_json(crane: Crane, audited: list[dict[str, Any]]) -> None:
    result = crane("--no-input", "audit", "--json", "--python", "py3", "--pyproject", "p.toml")

    assert result.code == 6
    assert json.loads(result.out) == Audit(INDEX, PUBLIC, sample_rows()).as_json()
    assert result.err.splitlines() == ["crane: " + Audit(INDEX, PUBLIC, sample_rows()).summary()]
    [call] = audited
    assert call["inputs"] == Inputs(pyprojects=(Path("p.toml"),), python="py3")
    assert call["no_input"] is True


@pytest.mark.parametrize(
    ("rows", "code"),
    [([], 0), ([row("b", UNKNOWN)], 5)],
    ids=["clean", "unknown"],
)
def test_the_command_passes_the_exit_code_through(
    crane: Crane, monkeypatch: pytest.MonkeyPatch, rows: list[Row], code: int
) -> None:
    monkeypatch.setattr(audit, "run_audit", lambda inputs, **options: Audit(INDEX, PUBLIC, rows))

    result = crane("audit", "demo")

    assert result.code == code
    assert all(line.startswith("crane: ") for line in result.err.splitlines())


def test_private_names_takes_no_other_input(
    crane: Crane, audited: list[dict[str, Any]], listed: list[dict[str, Any]]
) -> None:
    result = crane("audit", "--private-names", "corp-lib")

    assert result.code == 2
    assert result.err == "crane: --private-names takes no other input\n"
    assert (audited, listed) == ([], [])


def test_private_names_prints_one_name_per_line(crane: Crane, listed: list[dict[str, Any]]) -> None:
    result = crane("audit", "--private-names", "--index", INDEX)

    assert result.code == 0
    assert result.out == "aa\nzz\n"
    assert result.err.splitlines() == [
        f"crane: 2 projects of private index {INDEX} are not on the public index {PUBLIC}: "
        "reserve them there; on both already: b"
    ]
    assert listed == [{"index_url": INDEX, "environ": listed[0]["environ"], "no_input": False}]


def test_private_names_as_json(crane: Crane, listed: list[dict[str, Any]]) -> None:
    result = crane("audit", "--private-names", "--json")

    assert result.code == 0
    record = json.loads(result.out)
    assert (record["format"], record["private_only"], record["on_both"]) == (
        "crane-audit",
        ["aa", "zz"],
        ["b"],
    )


def test_a_private_project_installed_from_a_downloaded_archive_is_judged_by_version() -> None:
    archive = "file:///tmp/downloads/corp_lib-99.0-py3-none-any.whl"
    [found] = judged(
        row(
            "corp-lib",
            SERVED,
            SERVED,
            private_versions=versions("1.0"),
            public_versions=versions("99.0"),
            installed=Installed("corp-lib", "99.0", archive, False, "pip"),
        )
    )
    [finding] = found.findings
    assert "a version only the public index has" in finding
