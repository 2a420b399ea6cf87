"""What `crane audit` reads (`launch.wanted`): the projects a project's requirements files
and pyproject.toml ask for, and what an environment has installed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from crane_launch.errors import UsageError
from crane_launch.launch.references import _pep508_lists
from crane_launch.launch.wanted import (
    Installed,
    Wanted,
    installed_packages,
    pyproject_names,
    requirement_names,
)
from tests.launch.fakefiles import Files

WHEEL = "https://files.example/Decoy_Pkg-2.0-py3-none-any.whl"
SDIST = "https://files.example/named-1.0.tar.gz"
GIT = "git+https://git.example/r.git@v1#egg=From_Egg"


def names(files: Files, *paths: str, environ: dict[str, str] | None = None) -> list[Wanted]:
    return requirement_names(
        list(paths), cwd=files.root / "work", environ=environ or {}, read_text=files
    )


def pairs(found: list[Wanted]) -> list[tuple[str, str]]:
    return [(wanted.name, wanted.place) for wanted in found]


# --- requirements files -------------------------------------------------------------------


def test_requirement_lines_give_their_names_urls_and_places(files: Files) -> None:
    files.write(
        "req.txt",
        "# a comment\n"
        "Requests[socks]>=2 ; python_version >= '3.8'  # why\n"
        "zope.interface==6.0 \\\n"
        "    --hash=sha256:aaaa \\\n"
        "    --hash=sha256:bbbb\n"
        "${PKG}==1.0\n"
        f"named @ {SDIST}\n"
        f"{WHEEL}\n"
        f"{WHEEL}; python_version < '4'\n"
        f"-e {GIT}\n"
        "-e .\n"
        "--editable ./sub[extra]\n"
        "./local/project\n"
        "src/pkg[extra] ; python_version < '3.12'\n"
        "../sibling\n"
        "dist/thing-1.0.tar.gz\n"
        "thing-1.0-py3-none-any.whl\n"
        "https://files.example/nameless.tar.gz\n"
        "file:///srv/wheels/own-1.0-py3-none-any.whl\n"
        "--index-url https://private.example/simple/\n"
        "--only-binary :all:\n"
        "#egg-less comment --hash\n",
    )
    found = names(files, "req.txt", environ={"PKG": "Expanded_Name"})
    at = "requirements file req.txt line"
    assert found == [
        Wanted("requests", f"{at} 2"),
        Wanted("zope-interface", f"{at} 3"),
        Wanted("expanded-name", f"{at} 6"),
        Wanted("named", f"{at} 7", SDIST),
        Wanted("decoy-pkg", f"{at} 8", WHEEL),
        Wanted("decoy-pkg", f"{at} 9", WHEEL),
        Wanted("from-egg", f"{at} 10", GIT),
    ]


def test_includes_are_read_once_relative_to_the_including_file(files: Files) -> None:
    files.write("req.txt", "-r sub/more.txt\n-c sub/constraints.txt\nfirst\n-r req.txt\n")
    files.write("sub/more.txt", "-r ../req.txt\n-r deeper.txt\nsecond\n")
    files.write("sub/deeper.txt", "-c constraints.txt\nthird\n")
    files.write("sub/constraints.txt", "pinned==1.0\n-r also.txt\n")
    files.write("sub/also.txt", "required-by-a-constraints-file\n")
    assert pairs(names(files, "req.txt", "sub/more.txt")) == [
        ("first", "requirements file req.txt line 3"),
        ("second", "requirements file sub/more.txt line 3"),
        ("third", "requirements file sub/deeper.txt line 2"),
        ("pinned", "constraints file sub/constraints.txt line 1"),
        ("required-by-a-constraints-file", "requirements file sub/also.txt line 1"),
    ]


def test_a_file_both_required_and_constraining_counts_as_requirements(files: Files) -> None:
    files.write("req.txt", "-c both.txt\n-r both.txt\n")
    files.write("both.txt", "x\n")
    assert pairs(names(files, "req.txt")) == [("x", "requirements file both.txt line 1")]


def test_absolute_and_outside_paths_are_named_as_given(files: Files) -> None:
    outside = files.write(files.root / "home" / "req.txt", "x\n")
    assert pairs(names(files, str(outside))) == [("x", f"requirements file {outside} line 1")]


def test_an_invalid_line_names_file_and_line_but_not_the_text(files: Files) -> None:
    files.write("req.txt", "-r sub/more.txt\n")
    files.write("sub/more.txt", "fine\n\nnot valid https://user:secret@h.example/x\n")
    with pytest.raises(UsageError) as caught:
        names(files, "req.txt")
    message = str(caught.value)
    assert message.startswith("requirements file sub/more.txt line 3: is not a valid requirement")
    assert "secret" not in message
    assert "\n" not in message


def test_an_unset_variable_is_left_as_it_is_and_fails(files: Files) -> None:
    files.write("req.txt", "${UNSET}==1\n")
    with pytest.raises(UsageError, match=r"^requirements file req\.txt line 1: "):
        names(files, "req.txt")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("missing.txt", "missing.txt: no such file"),
        ("dir.txt", "dir.txt: is a directory, not a requirements file"),
        ("latin.txt", "latin.txt: is not UTF-8 text"),
    ],
)
def test_an_unreadable_requirements_file_is_an_error(
    files: Files, given: str, expected: str
) -> None:
    (files.root / "work" / "dir.txt").mkdir()
    (files.root / "work" / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(UsageError) as caught:
        names(files, given)
    assert str(caught.value) == expected


def test_an_unreadable_include_names_the_including_line(files: Files) -> None:
    files.write("req.txt", "x\n-c gone.txt\n")
    with pytest.raises(UsageError) as caught:
        names(files, "req.txt")
    assert str(caught.value) == "gone.txt: no such file (included by req.txt line 2)"


def test_remote_requirements_files_are_refused(files: Files) -> None:
    with pytest.raises(UsageError, match=r"^--requirement https://h\.example/r\.txt: "):
        names(files, "https://h.example/r.txt")
    files.write("req.txt", "x\n-r https://h.example/more.txt\n")
    with pytest.raises(UsageError, match=r"^requirements file req.txt line 2: -r https://"):
        names(files, "req.txt")


def test_a_lock_file_is_not_a_requirements_file(files: Files) -> None:
    files.write("pylock.toml", "lock-version = '1.0'\n")
    with pytest.raises(UsageError, match=r"^pylock\.toml: is not a requirements file$"):
        names(files, "pylock.toml")


def test_a_byte_order_mark_does_not_spoil_the_first_line(files: Files) -> None:
    files.write("req.txt", "\ufeffFirst\n")
    assert pairs(names(files, "req.txt")) == [("first", "requirements file req.txt line 1")]


# --- pyproject.toml -----------------------------------------------------------------------

PYPROJECT = f"""
[build-system]
requires = ["setuptools>=68", "Wheel"]

[project]
name = "My_Proj"
dependencies = [
    "Click>=8; python_version >= '3.8'",
    "httpx[http2]",
    "named @ {SDIST}",
    "sourced",
    "click<9",
]

[project.optional-dependencies]
fast = ["uvloop"]
all = ["my-proj[fast]"]

[dependency-groups]
dev = ["pytest", {{include-group = "lint"}}]
lint = ["ruff"]

[tool.uv]
dev-dependencies = ["old-dev"]
override-dependencies = ["overridden==1"]
constraint-dependencies = ["constrained<2"]
build-constraint-dependencies = ["build-constrained"]

[tool.uv.sources]
sourced = {{ git = "https://git.example/sourced.git" }}
pytest = {{ index = "private" }}

[tool.poetry]
name = "my-proj"

[tool.poetry.dependencies]
python = "^3.11"
Poetry_Plain = "^1.0"
poetry-url = {{ url = "{WHEEL}" }}
poetry-git = {{ git = "https://git.example/pg.git", rev = "main" }}
poetry-path = {{ path = "../local", develop = true }}
poetry-multi = [
    {{ version = "1.0", python = "<3.12" }},
    {{ url = "https://files.example/m-2.0.tar.gz", python = ">=3.12" }},
]

[tool.poetry.dev-dependencies]
poetry-dev = "*"

[tool.poetry.group.docs.dependencies]
mkdocs = "*"
my-proj = {{ path = ".", develop = true }}
"""


def test_every_list_and_table_of_a_pyproject(files: Files) -> None:
    path = files.write("pyproject.toml", PYPROJECT)
    found = pyproject_names(path, read_text=files)
    poetry = "pyproject.toml [tool.poetry.dependencies]"
    assert found == [
        Wanted("click", "pyproject.toml [project] dependencies"),
        Wanted("httpx", "pyproject.toml [project] dependencies"),
        Wanted("named", "pyproject.toml [project] dependencies", SDIST),
        Wanted(
            "sourced",
            "pyproject.toml [project] dependencies",
            "git+https://git.example/sourced.git",
        ),
        Wanted("setuptools", "pyproject.toml [build-system] requires"),
        Wanted("wheel", "pyproject.toml [build-system] requires"),
        Wanted("uvloop", "pyproject.toml [project.optional-dependencies] fast"),
        Wanted("pytest", "pyproject.toml [dependency-groups] dev"),
        Wanted("ruff", "pyproject.toml [dependency-groups] lint"),
        Wanted("old-dev", "pyproject.toml [tool.uv] dev-dependencies"),
        Wanted("overridden", "pyproject.toml [tool.uv] override-dependencies"),
        Wanted("constrained", "pyproject.toml [tool.uv] constraint-dependencies"),
        Wanted("build-constrained", "pyproject.toml [tool.uv] build-constraint-dependencies"),
        Wanted("poetry-plain", poetry),
        Wanted("poetry-url", poetry, WHEEL),
        Wanted("poetry-git", poetry, "git+https://git.example/pg.git"),
        Wanted("poetry-path", poetry),
        Wanted("poetry-multi", poetry, "https://files.example/m-2.0.tar.gz"),
        Wanted("poetry-dev", "pyproject.toml [tool.poetry.dev-dependencies]"),
        Wanted("mkdocs", "pyproject.toml [tool.poetry.group.docs.dependencies]"),
    ]


def test_places_name_the_file_relative_to_cwd(files: Files) -> None:
    path = files.write("member/pyproject.toml", "[project]\ndependencies = ['x']\n")
    found = pyproject_names(path, read_text=files, cwd=files.root / "work")
    assert found == [Wanted("x", "member/pyproject.toml [project] dependencies")]


def test_every_list_a_reference_check_reads_is_read(files: Files) -> None:
    path = files.write("pyproject.toml", PYPROJECT)
    found = {wanted.place for wanted in pyproject_names(path, read_text=files)}
    checked = {place for place, _ in _pep508_lists(tomllib.loads(PYPROJECT), "pyproject.toml")}
    # `all` lists only the project itself.
    assert checked - found == {"pyproject.toml [project.optional-dependencies] all"}


def test_a_pyproject_without_lists_wants_nothing(files: Files) -> None:
    path = files.write("pyproject.toml", "[project]\nname = 'x'\n")
    assert pyproject_names(path, read_text=files) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("project = 1\n", r"\[project\] is not a table"),
        ("[tool]\npoetry = 'x'\n", r"\[tool.poetry\] is not a table"),
        ("[project]\ndependencies = 'x'\n", r"\[project\] dependencies is not an array"),
        ("[project]\ndependencies = ['x', 1]\n", r"\[project\] dependencies is not an array"),
        ("[project]\noptional-dependencies = 1\n", r"\[project.optional-dependencies\] is not"),
        (
            "[project.optional-dependencies]\nx = 'y'\n",
            r"\[project.optional-dependencies\] x is not",
        ),
        ("[dependency-groups]\ndev = [1]\n", r"\[dependency-groups\] dev is not an array"),
        ("[build-system]\nrequires = {}\n", r"\[build-system\] requires is not an array"),
        ("[tool.uv]\ndev-dependencies = 'x'\n", r"\[tool.uv\] dev-dependencies is not"),
        ("[tool.poetry.dependencies]\nx = 1\n", r"\[tool.poetry.dependencies\] x is neither"),
        ("[tool.poetry.group.g]\ndependencies = []\n", r"\[tool.poetry.group.g.dependencies\]"),
        (
            "[project]\ndependencies = ['ok', 'not ok']\n",
            r"\[project\] dependencies item 2: is not a valid requirement \(",
        ),
    ],
)
def test_a_malformed_pyproject_names_the_file(files: Files, text: str, expected: str) -> None:
    path = files.write("pyproject.toml", text)
    with pytest.raises(UsageError, match=f"^{re.escape(str(path))}: {expected}") as caught:
        pyproject_names(path, read_text=files)
    assert "\n" not in str(caught.value)


def test_a_missing_pyproject_is_an_error(files: Files) -> None:
    path = files.root / "work" / "pyproject.toml"
    with pytest.raises(UsageError, match="no such file"):
        pyproject_names(path, read_text=files)


# --- an environment -----------------------------------------------------------------------


def test_the_running_interpreter_lists_what_importlib_sees() -> None:
    found = installed_packages(sys.executable, os.environ)
    by_name = {installed.name: installed for installed in found}
    assert len(by_name) == len(found)
    assert by_name["click"].version == importlib.metadata.version("click")
    assert by_name["httpx"].version == importlib.metadata.version("httpx")
    assert all(name == name.lower() and "_" not in name for name in by_name)


def _dist_info(site: Path, name: str, version: str, extra: dict[str, str] | None = None) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    for file, text in (extra or {}).items():
        (info / file).write_text(text)


@pytest.fixture(scope="module")
def fake_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A venv with made-up distributions, and a PYTHONPATH directory that shadows one."""
    root = tmp_path_factory.mktemp("env")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    url = {"url": "https://files.example/From_Url-1.0-py3-none-any.whl", "archive_info": {}}
    _dist_info(site, "From_Url", "1.0", {"direct_url.json": json.dumps(url), "INSTALLER": "uv\n"})
    editable = {"url": "file:///src/editable", "dir_info": {"editable": True}}
    _dist_info(site, "editable.one", "0.1", {"direct_url.json": json.dumps(editable)})
    _dist_info(site, "plain", "2.0", {"INSTALLER": "\n", "direct_url.json": "{not json"})
    _dist_info(site, "shadowed", "1.0")
    early = root / "early"
    _dist_info(early, "Shadowed", "9.0", {"INSTALLER": "pip"})
    return venv / "bin" / "python", early


def test_a_venv_lists_direct_urls_editables_installers_and_the_first_of_twins(
    fake_venv: tuple[Path, Path],
) -> None:
    python, early = fake_venv
    found = installed_packages(str(python), {"PATH": os.defpath, "PYTHONPATH": str(early)})
    assert sorted(found, key=lambda installed: installed.name) == [
        Installed("editable-one", "0.1", "file:///src/editable", True, None, directory=True),
        Installed(
            "from-url", "1.0", "https://files.example/From_Url-1.0-py3-none-any.whl", False, "uv"
        ),
        Installed("plain", "2.0", None, False, None),
        Installed("shadowed", "9.0", None, False, "pip"),
    ]


def test_an_interpreter_is_looked_up_on_the_given_path(fake_venv: tuple[Path, Path]) -> None:
    python, _ = fake_venv
    found = installed_packages("python", {"PATH": str(python.parent)})
    assert "from-url" in {installed.name for installed in found}


def test_a_module_in_the_current_directory_cannot_stand_in_for_the_stdlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_venv: tuple[Path, Path]
) -> None:
    python, _ = fake_venv
    (tmp_path / "json.py").write_text("raise SystemExit('shadowed')\n")
    monkeypatch.chdir(tmp_path)
    assert installed_packages(str(python), {}) != []


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fakepython"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script as interpreter")
def test_the_interpreter_runs_without_secrets_input_or_the_current_directory(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "seen"
    python = _fake_python(
        tmp_path,
        f'env > "{seen}.env"; pwd > "{seen}.pwd"; ls -A > "{seen}.ls"; cat > "{seen}.stdin"\n'
        'echo \'[{"name": "x", "version": "1"}]\' > "$3"',
    )
    environ = {
        "PATH": os.defpath,
        "CRANE_TOKEN": "t0ken",
        "CRANE_CLIENT_SECRET": "s3cret",
        "MY_INDEX_PASSWORD": "pa55",
        "PYTHONPATH": "/kept",
    }
    found = installed_packages(str(python), environ, hidden={"MY_INDEX_PASSWORD"})
    assert found == [Installed("x", "1", None, False, None)]
    child = seen.with_suffix(".env").read_text()
    assert "PYTHONPATH=/kept" in child
    assert "PYTHONNOUSERSITE" not in child
    assert not any(word in child for word in ("t0ken", "s3cret", "pa55"))
    assert Path(seen.with_suffix(".pwd").read_text().strip()) != Path.cwd()
    assert seen.with_suffix(".ls").read_text() == ""
    assert seen.with_suffix(".stdin").read_text() == ""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "echo 'Traceback (most recent call last):' >&2; echo 'RuntimeError: boom' >&2; exit 1",
            "exited with status 1: RuntimeError: boom$",
        ),
        ("exit 3", "exited with status 3$"),
        ("echo 'not json' > \"$3\"", "did not list its installed packages"),
        ("true", "did not list its installed packages"),
        ("echo '{}' > \"$3\"", "did not list its installed packages"),
    ],
)
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script as interpreter")
def test_a_failing_interpreter_is_one_line_naming_it(
    tmp_path: Path, body: str, expected: str
) -> None:
    python = _fake_python(tmp_path, body)
    with pytest.raises(UsageError, match=f"^{re.escape(str(python))}: {expected}") as caught:
        installed_packages(str(python), {"PATH": os.defpath})
    assert "\n" not in str(caught.value)
    assert "Traceback" not in str(caught.value)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script as interpreter")
def test_a_hanging_interpreter_times_out(tmp_path: Path) -> None:
    python = _fake_python(tmp_path, "exec sleep 10")
    with pytest.raises(UsageError, match=r"gave no answer within 0\.2 s"):
        installed_packages(str(python), {"PATH": os.defpath}, timeout=0.2)


def test_a_missing_interpreter_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"/nope/python: no such interpreter$"):
        installed_packages(str(tmp_path / "nope" / "python"), {})
    with pytest.raises(UsageError, match=r"^no-such-python: no such interpreter on PATH$"):
        installed_packages("no-such-python", {"PATH": str(tmp_path)})


def test_a_file_that_cannot_run_is_an_error(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("not a program\n")
    with pytest.raises(UsageError, match="cannot be run"):
        installed_packages(str(python), {})


def test_a_direct_url_json_that_nests_too_deep_says_nothing() -> None:
    from crane_launch.launch.wanted import _direct_url

    assert _direct_url("[" * 100_000 + "]" * 100_000) == (None, False, False)
    assert _direct_url('{"url": "file:///d", "dir_info": {}}') == ("file:///d", False, True)
    assert _direct_url('{"url": "file:///x.tbz", "archive_info": {}}') == (
        "file:///x.tbz",
        False,
        False,
    )


def test_a_pyproject_that_is_not_toml_is_a_config_error_as_a_lock_is(files: Files) -> None:
    from crane_launch.errors import ConfigError

    path = files.write("pyproject.toml", "[project\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: is not valid TOML"):
        pyproject_names(path, read_text=files)
