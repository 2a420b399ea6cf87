"""The argv scanner and the requirements-file reader shared by the pip and uv planners."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.launch.argv import OptionTable, apply_edits, scan_options
from crane_launch.launch.reqfiles import Root, plan_copies, walk_requirements

PRIVATE = "https://private.example/simple/"

OPTPARSE = OptionTable(
    value_longs=frozenset({"--index-url", "--requirement", "--log"}),
    flag_longs=frozenset({"--upgrade", "--user", "--isolated"}),
    value_shorts=frozenset({"-i", "-r"}),
    flag_shorts=frozenset({"-U", "-q"}),
    aliases={"-i": "--index-url", "-r": "--requirement", "-U": "--upgrade"},
    abbreviations=True,
)
CLAP = OptionTable(
    value_longs=OPTPARSE.value_longs,
    flag_longs=OPTPARSE.flag_longs,
    value_shorts=OPTPARSE.value_shorts,
    flag_shorts=OPTPARSE.flag_shorts,
    aliases=OPTPARSE.aliases,
    short_equals_strips=True,
)


@pytest.mark.parametrize(
    ("table", "argv", "value", "without"),
    [
        (OPTPARSE, ["-i", "X", "pkg"], "X", ["pkg"]),
        (OPTPARSE, ["-iX", "pkg"], "X", ["pkg"]),
        (OPTPARSE, ["-i=X", "pkg"], "=X", ["pkg"]),
        (CLAP, ["-i=X", "pkg"], "X", ["pkg"]),
        (OPTPARSE, ["-qUi", "X", "pkg"], "X", ["-qU", "pkg"]),
        (OPTPARSE, ["-qUiX", "pkg"], "X", ["-qU", "pkg"]),
        (OPTPARSE, ["--index-url=X", "pkg"], "X", ["pkg"]),
        (OPTPARSE, ["--ind", "X", "pkg"], "X", ["pkg"]),
        (OPTPARSE, ["--in=X", "pkg"], "X", ["pkg"]),
        (CLAP, ["--ind", "X", "pkg"], None, ["--ind", "X", "pkg"]),
        (OPTPARSE, ["--log", "-i", "-r", "f"], None, ["--log", "-i", "-r", "f"]),
        (OPTPARSE, ["--", "-i", "X"], None, ["--", "-i", "X"]),
    ],
)
def test_index_option_spellings(
    table: OptionTable, argv: list[str], value: str | None, without: list[str]
) -> None:
    found, _ = scan_options(argv, table)
    index = [o for o in found if o.name == "--index-url"]
    assert [o.value for o in index] == ([value] if value is not None else [])
    assert apply_edits(argv, remove=index) == without


@pytest.mark.parametrize(
    ("argv", "swapped"),
    [
        (["-r", "a.txt"], ["-r", "B"]),
        (["-ra.txt"], ["-rB"]),
        (["-Ura.txt"], ["-UrB"]),
        (["--requirement=a.txt"], ["--requirement=B"]),
        (["--req=a.txt"], ["--req=B"]),
    ],
)
def test_requirement_values_are_swapped_in_the_users_spelling(
    argv: list[str], swapped: list[str]
) -> None:
    found, _ = scan_options(argv, OPTPARSE)
    requirement = [o for o in found if o.name == "--requirement"]
    assert apply_edits(argv, replace=[(requirement[0], "B")]) == swapped


def test_scan_stops_at_the_command_when_asked() -> None:
    found, positionals = scan_options(
        ["-q", "--log", "x", "install", "-i", "X"], OPTPARSE, stop_at_positional=True
    )
    assert positionals == [(3, "install")]
    assert [o.name for o in found] == ["-q", "--log"]


def _walk(tmp_path: Path, text: str, dialect: str = "pip") -> list[tuple[int, str]]:
    (tmp_path / "r.txt").write_text(text)
    walk = walk_requirements(
        [Root("--requirement", "r.txt", "command line")],
        dialect="pip" if dialect == "pip" else "uv",
        cwd=tmp_path,
        environ={"HOST": "private.example"},
        read_text=Path.read_text,
    )
    return [(int(line.place.rsplit(" ", 1)[1]), line.url) for line in walk.index_lines]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (f"-i {PRIVATE}\n", [(1, PRIVATE)]),
        (f"\ufeff--index-url {PRIVATE}\n", [(1, PRIVATE)]),
        (f"pkg\n--index \\\n  {PRIVATE}\n", [(2, PRIVATE)]),
        (f"# -i {PRIVATE}\n", []),
        (f"pkg # -i {PRIVATE}\n", []),
        (f"--pre  # -i {PRIVATE}\n", []),
        ("--index-url https://${HOST}/simple/\n", [(1, PRIVATE)]),
        (f"-e . -i {PRIVATE}\n", []),
        (f"a \\\n# comment \\\n-i {PRIVATE}\n", [(3, PRIVATE)]),
        (f"--pre --index-url={PRIVATE} --prefer-binary\n", [(1, PRIVATE)]),
    ],
)
def test_index_lines_are_found_as_pip_reads_them(
    tmp_path: Path, text: str, lines: list[tuple[int, str]]
) -> None:
    assert _walk(tmp_path, text) == lines


def test_uv_files_take_no_abbreviations(tmp_path: Path) -> None:
    assert _walk(tmp_path, f"--index {PRIVATE}\n-i={PRIVATE}\n", "uv") == [(2, PRIVATE)]


def test_copy_keeps_other_options_and_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text(
        f"--pre --index-url={PRIVATE} --trusted-host 'a b' \\\n  --prefer-binary\npkg\n"
    )
    walk = walk_requirements(
        [Root("--requirement", "r.txt", "command line")],
        dialect="pip",
        cwd=tmp_path,
        environ={},
        read_text=Path.read_text,
    )
    copies = plan_copies(walk, strip=lambda url: url == PRIVATE, token="t")
    assert [c.text for c in copies.values()] == [
        "--pre --trusted-host 'a b' --prefer-binary\n# crane: continued\npkg\n"
    ]
