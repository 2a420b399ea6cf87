"""The run's provenance record as `crane --report FILE` writes it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from crane_launch.commands.tools import report_path
from crane_launch.errors import CraneError, UsageError
from crane_launch.launch.plan import Plan, Unchanged
from crane_launch.launch.report import subcommand, write_report
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
    ],
)
def test_the_command_is_its_words_never_an_options_value(command: list[str], expected: str) -> None:
    assert subcommand(command) == expected


def _plan() -> Plan:
    return Plan("pip", ["pip", "install", "x"], Unchanged())


def test_the_record_is_written_atomically_with_the_runs_facts(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.symlink_to(tmp_path / "elsewhere.json")
    ledger = Ledger()
    ledger.page(
        "corp-app", source="private", index="https://p/simple/", url="https://p/simple/corp-app/"
    )
    write_report(
        path,
        ledger,
        _plan(),
        outcome=3,
        child=0,
        error=None,
        indexes=[{"url": "https://p/simple/", "public_index": "https://q/simple/"}],
        refusals=["refused a", "refused a", "refused b"],
    )
    assert not path.is_symlink()  # replaced, never written through
    assert not (tmp_path / "elsewhere.json").exists()
    data = json.loads(path.read_text())
    assert data["format"] == "crane-provenance"
    assert data["version"] == 1
    assert data["tool"] == "pip"
    assert data["command"] == "pip install"
    assert (data["exit_code"], data["child_exit_code"], data["error"]) == (3, 0, None)
    assert data["refusals"] == ["refused a", "refused b"]
    assert data["summary"]["private"] == ["corp-app"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_report_that_cannot_be_written_fails_a_good_run_only(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "r.json"  # its "directory" is a file: even root fails
    with pytest.raises(CraneError, match="cannot write the report"):
        write_report(
            target, Ledger(), _plan(), outcome=0, child=0, error=None, indexes=[], refusals=[]
        )
    # After an error that ended the run, that error stays the one reported.
    write_report(
        target,
        Ledger(),
        _plan(),
        outcome=None,
        child=None,
        error=CraneError("x"),
        indexes=[],
        refusals=[],
    )


def test_the_report_path_is_checked_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert report_path(None) is None
    assert report_path("") is None
    assert report_path("r.json") == tmp_path / "r.json"
    with pytest.raises(UsageError, match="is a directory"):
        report_path(str(tmp_path))
    with pytest.raises(UsageError, match="does not exist"):
        report_path(str(tmp_path / "missing" / "r.json"))
