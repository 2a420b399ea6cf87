"""The run's provenance record as `crane --report FILE` writes it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from crane_launch.commands import tools
from crane_launch.errors import CraneError, RejectedSettingError, UsageError
from crane_launch.launch.report import Report, subcommand
from crane_launch.proxy.provenance import Ledger


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["/usr/bin/pip", "install", "-r", "r.txt", "corp-app"], "pip install"),
        (["/venv/bin/python", "-m", "pip", "download", "x"], "pip download"),
        (["uv", "pip", "install", "--target", "/t", "x"], "uv pip install"),
        (["uv", "sync", "--frozen"], "uv sync"),
        (["poetry", "-C", "/some/dir", "install"], "poetry install"),
        (["pip", "install", "https://user:secret@host/x.whl"], "pip install"),
        (["pip"], "pip"),
        ([], ""),
    ],
)
def test_the_command_is_its_words_never_an_options_value(command: list[str], expected: str) -> None:
    assert subcommand(command) == expected


def _write(report: Report, ledger: Ledger | None = None, **changes: object) -> None:
    options: dict[str, object] = {
        "command": ["pip", "install", "x"],
        "tool": "pip",
        "guarded": True,
        "outcome": 0,
        "child": 0,
        "error": None,
        "indexes": [],
    }
    options.update(changes)
    report.write(ledger or Ledger(), **options)  # type: ignore[arg-type]


def test_the_record_is_written_atomically_with_the_runs_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = Report.at("report.json")
    assert report is not None
    ledger = Ledger()
    ledger.page(
        "corp-app", source="private", index="https://p/simple/", url="https://p/simple/corp-app/"
    )
    old = os.umask(0o027)
    try:
        _write(
            report,
            ledger,
            outcome=3,
            indexes=[{"url": "https://p/simple/", "public_index": "https://q/simple/"}],
            refusals=["refused a", "refused a", "refused b"],
        )
    finally:
        os.umask(old)
    assert report.written
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["format"] == "crane-provenance"
    assert data["version"] == 1
    assert (data["tool"], data["command"], data["guarded"]) == ("pip", "pip install", True)
    assert (data["exit_code"], data["child_exit_code"], data["error"]) == (3, 0, None)
    assert data["refusals"] == ["refused a", "refused b"]
    assert data["summary"]["private"] == ["corp-app"]
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o640  # the umask's
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_report_that_cannot_be_written_fails_only_a_run_that_would_succeed(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    report = Report(tmp_path / "a-file" / "r.json")  # its "directory" is a file: even root fails
    with pytest.raises(CraneError, match="cannot write the report"):
        _write(report, outcome=0)
    _write(report, outcome=2, child=2)  # the tool's own failure stays the one reported
    _write(report, outcome=None, child=None, error=CraneError("x"))


def test_the_report_path_is_checked_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Report.at(None) is None
    assert Report.at("") is None
    report = Report.at("r.json")
    assert report is not None
    assert report.path == tmp_path / "r.json"
    (tmp_path / "old.json").write_text("{}")
    assert Report.at("old.json") is not None  # an old report is replaced
    with pytest.raises(UsageError, match="is a directory"):
        Report.at(str(tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        Report.at(str(tmp_path / "missing" / "r.json"))
    (tmp_path / "link.json").symlink_to(tmp_path / "old.json")
    with pytest.raises(UsageError, match="symbolic link"):
        Report.at("link.json")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="not a regular file"):
        Report.at("fifo")
    with pytest.raises(UsageError, match="not a regular file"):
        Report.at(os.devnull)


def test_a_run_crane_stops_before_the_tool_starts_still_gets_its_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"exit_code": 0}')  # an older run's report

    def refuse(*_args: object, **_kwargs: object) -> object:
        raise RejectedSettingError("command line", "--extra-index-url", "no")

    monkeypatch.setattr("crane_launch.launch.pip.plan_pip", refuse)
    with pytest.raises(RejectedSettingError):
        tools.pip(["install", "x"], no_input=True, report=str(path))
    data = json.loads(path.read_text())
    assert (data["exit_code"], data["guarded"], data["command"]) == (None, False, "pip install")
    assert "--extra-index-url" in data["error"]
    assert data["projects"] == []


def test_a_failure_record_never_holds_a_password_or_query_from_the_error(
    tmp_path: Path,
) -> None:
    report = Report(tmp_path / "r.json")
    error = CraneError("https://bob:SECRETPASS@host/simple/?token=abc is not a registered index")
    report.write_failure("pip", ["pip", "install", "x"], error)
    text = (tmp_path / "r.json").read_text()
    assert "SECRETPASS" not in text
    assert "token=abc" not in text
    assert "https://host/simple/ is not a registered index" in text


def test_an_old_report_is_gone_once_the_run_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"exit_code": 0}')

    def interrupted(*_args: object, **_kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr("crane_launch.launch.pip.plan_pip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tools.pip(["install", "x"], no_input=True, report=str(path))
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "(did you mean http://h:1/simple/?); register",
            "(did you mean http://h:1/simple/?); register",
        ),
        ("https://bob:pw@h/simple/?token=abc#f rest", "https://h/simple/ rest"),
        ("see http://h/x#frag.", "see http://h/x"),
        ("an email a@b.example stays", "an email a@b.example stays"),
    ],
)
def test_urls_in_error_text_lose_userinfo_and_query_but_not_the_prose(
    text: str, shown: str
) -> None:
    from crane_launch.errors import without_secrets

    assert without_secrets(text) == shown
