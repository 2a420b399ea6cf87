"""Requirements that say where their project comes from (`launch.reqfiles`,
`launch.project_scan`): what the runner judges before the tool starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.launch.plan import DirectReference
from crane_launch.launch.references import pyproject_references
from crane_launch.launch.references import requirement_reference as direct_reference
from crane_launch.launch.reqfiles import Root, direct_references
from crane_launch.launch.reqfiles import walk_requirements as walk
from tests.launch.fakefiles import Files

URL = "https://files.example/decoy_pkg-99.0-py3-none-any.whl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"decoy-pkg @ {URL}", ("decoy-pkg", URL)),
        (f"Decoy_Pkg@{URL}", ("decoy-pkg", URL)),
        (f"decoy.pkg[extra] @ {URL} ; python_version >= '3'", ("decoy-pkg", URL)),
        (
            "decoy-pkg @ git+https://git.example/r.git@v1",
            ("decoy-pkg", "git+https://git.example/r.git@v1"),
        ),
        ("decoy-pkg @ git+git://127.0.0.1:9/r.git", ("decoy-pkg", "git+git://127.0.0.1:9/r.git")),
        ("decoy-pkg @ file:///tmp/decoy.whl", None),  # the user's own file
        ("decoy-pkg >= 1", None),
        ("decoy-pkg", None),
        (URL, ("decoy-pkg", URL)),  # a wheel names its project
        ("https://h.example/helper-1.0.tar.gz", ("", "https://h.example/helper-1.0.tar.gz")),
        (
            "git+https://g.example/r.git#egg=Decoy_Pkg",
            ("decoy-pkg", "git+https://g.example/r.git#egg=Decoy_Pkg"),
        ),
        ("-e git+https://g.example/r.git#egg=x", ("x", "git+https://g.example/r.git#egg=x")),
        ("git+https://g.example/r.git", ("", "git+https://g.example/r.git")),
        ("./local/project", None),
        ("-e .", None),
    ],
)
def test_direct_reference(text: str, expected: tuple[str, str] | None) -> None:
    found = direct_reference(text, "command line")
    assert (None if found is None else (found.project, found.url)) == expected


def test_direct_references_in_requirements_files_name_file_and_line(files: Files) -> None:
    files.write("req.txt", f"# top\nother\n-r more.txt\ndecoy-pkg @ \\\n  {URL}\n")
    files.write("more.txt", "x @ https://h.example/x-1.0.tar.gz # c\nplain\n")
    walked = walk(
        [Root("--requirement", "req.txt", "command line")],
        dialect="pip",
        cwd=files.root / "work",
        environ={},
        read_text=files,
    )
    found = direct_references(walked, cwd=files.root / "work", environ={})
    assert found == [
        DirectReference("decoy-pkg", URL, "requirements file req.txt line 4"),
        DirectReference("x", "https://h.example/x-1.0.tar.gz", "requirements file more.txt line 1"),
    ]


def test_pyproject_references() -> None:
    data = {
        "project": {
            "dependencies": [f"decoy-pkg @ {URL}", "plain"],
            "optional-dependencies": {"x": ["opt @ https://h.example/o.tar.gz"]},
        },
        "dependency-groups": {"dev": ["grp @ https://h.example/g.tar.gz"]},
        "tool": {
            "uv": {
                "sources": {
                    "a": {"url": "https://h.example/a.whl"},
                    "b": [
                        {"git": "https://git.example/b.git", "marker": "sys_platform == 'linux'"}
                    ],
                    "c": {"index": "public"},
                    "d": {"path": "../d"},
                    "e": {"workspace": True},
                }
            },
            "poetry": {
                "dependencies": {"f": {"git": "https://git.example/f.git"}, "g": "^1"},
                "group": {"dev": {"dependencies": {"h": {"version": "*", "source": "pub"}}}},
            },
        },
    }
    found = pyproject_references(
        data, "p.toml", {"public": "https://pub.example/simple/", "pub": "https://p.example/"}
    )
    assert [(r.project, r.url, r.place, r.kind) for r in found] == [
        ("decoy-pkg", URL, "p.toml [project] dependencies", "url"),
        ("opt", "https://h.example/o.tar.gz", "p.toml [project.optional-dependencies] x", "url"),
        ("grp", "https://h.example/g.tar.gz", "p.toml [dependency-groups] dev", "url"),
        ("a", "https://h.example/a.whl", "p.toml [tool.uv.sources]", "url"),
        ("b", "git+https://git.example/b.git", "p.toml [tool.uv.sources]", "url"),
        ("c", "https://pub.example/simple/", "p.toml [tool.uv.sources]", "index"),
        ("f", "git+https://git.example/f.git", "p.toml [tool.poetry.dependencies]", "url"),
        ("h", "https://p.example/", "p.toml [tool.poetry.group.dev.dependencies]", "index"),
    ]


def test_an_unknown_index_name_stays_a_name(tmp_path: Path) -> None:
    data = {"tool": {"uv": {"sources": {"a": {"index": "nowhere"}}}}}
    [found] = pyproject_references(data, "p.toml", {})
    assert (found.url, found.kind) == ("nowhere", "index")
