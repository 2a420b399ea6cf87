"""launch.locks: reading uv.lock, poetry.lock and pylock.toml, and judging their entries
against the private index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from crane_launch.errors import ConfigError
from crane_launch.launch.locks import (
    LockedPackage,
    LockViolation,
    find_locks,
    lock_violations,
    read_lock,
)
from tests.launch.fakefiles import Files

PRIVATE = "https://priv.example/simple/"
PRIV_FILE = "https://priv.example/files/corp_shared-1.0-py3-none-any.whl"
PUB = "https://pub.example/simple"
PUB_FILE = "https://files.pub.example/packages/corp_shared-1.0-py3-none-any.whl"
SERVED = {"Corp_Shared"}  # any spelling: judged after PEP 503 normalisation


@dataclass(frozen=True)
class Case:
    id: str
    body: str
    """The lines of the package's table after its name and version."""
    violation: str | None
    """A piece of the reason; None when the package is allowed."""
    name: str = "corp-shared"


def _work(files: Files) -> Path:
    return files.root / "work"


def _judge(files: Files, lock_name: str, key: str, case: Case) -> list[LockViolation]:
    text = f'version = 1\n\n[[{key}]]\nname = "{case.name}"\nversion = "1.0"\n{case.body}\n'
    files.write(lock_name, text)
    packages = read_lock(Path(lock_name), project_dir=_work(files), read_text=files)
    assert [package.name for package in packages] == [case.name]
    return lock_violations(packages, private_url=PRIVATE, private_names=SERVED)


def _check(violations: list[LockViolation], case: Case) -> None:
    if case.violation is None:
        assert violations == []
    else:
        assert len(violations) == 1
        assert case.violation in violations[0].reason


# --- uv.lock ------------------------------------------------------------------------------

UV_CASES = [
    Case(
        "private registry",
        f'source = {{ registry = "https://priv.example/simple" }}\n'
        f'sdist = {{ url = "https://priv.example/files/corp_shared-1.0.tar.gz" }}\n'
        f'wheels = [{{ url = "{PRIV_FILE}" }}]',
        None,
    ),
    Case(
        "private registry spelled differently",
        'source = { registry = "HTTPS://Priv.Example:443/simple" }\n'
        'wheels = [{ url = "HTTPS://PRIV.example:443/files/x.whl" }]',
        None,
    ),
    Case(
        "other registry",
        f'source = {{ registry = "{PUB}" }}\nwheels = [{{ url = "{PUB_FILE}" }}]',
        f"locked from {PUB} (registry)",
    ),
    Case(
        "private host but other path",
        'source = { registry = "https://priv.example/other/simple" }',
        "locked from https://priv.example/other/simple (registry)",
    ),
    Case(
        "private registry, wheel on another host",
        f'source = {{ registry = "{PRIVATE}" }}\n'
        f'wheels = [{{ url = "{PRIV_FILE}" }}, {{ url = "{PUB_FILE}" }}]',
        f"its wheel {PUB_FILE} is not on the private index",
    ),
    Case(
        "private registry, sdist on another port",
        f'source = {{ registry = "{PRIVATE}" }}\n'
        'sdist = { url = "https://priv.example:8443/files/corp_shared-1.0.tar.gz" }',
        "its sdist https://priv.example:8443/",
    ),
    Case(
        "url source",
        'source = { url = "https://priv.example/x.whl" }\n'
        'wheels = [{ url = "https://priv.example/x.whl" }]',
        "locked from the URL https://priv.example/x.whl",
    ),
    Case(
        "git source",
        'source = { git = "https://git.example/corp/shared?rev=main#abc" }',
        "locked from the VCS repository https://git.example/corp/shared",
    ),
    Case("editable", 'source = { editable = "packages/shared" }', None),
    Case("virtual", 'source = { virtual = "." }', None),
    Case("directory", 'source = { directory = "../shared" }', None),
    Case(
        "path archive", 'source = { path = "dist/x.whl" }\nwheels = [{ filename = "x.whl" }]', None
    ),
    Case(
        "local registry directory",
        'source = { registry = "../wheels" }\nwheels = [{ path = "corp_shared-1.0.whl" }]',
        "locked from ../wheels (registry)",
    ),
    Case("no source", "", "locked from the tool's default public index"),
    Case("unknown source", 'source = { mirror = "x" }', "a source crane does not know"),
    Case(
        "public-only project from the public registry",
        f'source = {{ registry = "{PUB}" }}\nwheels = [{{ url = "{PUB_FILE}" }}]',
        None,
        name="requests",
    ),
]


@pytest.mark.parametrize("case", UV_CASES, ids=lambda case: case.id)
def test_uv_lock(files: Files, case: Case) -> None:
    _check(_judge(files, "uv.lock", "package", case), case)


# --- poetry.lock --------------------------------------------------------------------------

PYPROJECT = f"""
[tool.poetry]
name = "app"

[[tool.poetry.source]]
name = "priv"
url = "https://priv.example/simple"

[[tool.poetry.source]]
name = "priv-spelled"
url = "HTTPS://PRIV.EXAMPLE:443/simple"

[[tool.poetry.source]]
name = "pub"
url = "{PUB}"
priority = "supplemental"

[[tool.poetry.source]]
name = "PyPI"
"""


def _legacy(reference: str, url: str) -> str:
    return f'[package.source]\ntype = "legacy"\nurl = "{url}"\nreference = "{reference}"'


POETRY_CASES = [
    Case("private legacy source", _legacy("priv", "https://priv.example/simple"), None),
    Case("reference in another case", _legacy("PRIV", PRIVATE), None),
    Case("reference spelled differently", _legacy("priv-spelled", PRIVATE), None),
    Case(
        "reference to a public source, url private",
        _legacy("pub", PRIVATE),
        f"locked from {PUB} (the poetry source its `reference` names)",
    ),
    Case("url public, reference private", _legacy("priv", PUB), f"locked from {PUB} (registry)"),
    Case("reference names no source", _legacy("gone", PRIVATE), "reference 'gone' names no"),
    Case("reference names a source without URL", _legacy("pypi", PRIVATE), "reference 'pypi'"),
    Case("no source", "", "locked from the tool's default public index"),
    Case(
        "url source",
        '[package.source]\ntype = "url"\nurl = "https://priv.example/x.tar.gz"\nreference = ""',
        "locked from the URL https://priv.example/x.tar.gz",
    ),
    Case(
        "git source",
        '[package.source]\ntype = "git"\nurl = "https://git.example/shared.git"\n'
        'reference = "main"\nresolved_reference = "abc"',
        "locked from the VCS repository https://git.example/shared.git",
    ),
    Case("directory", '[package.source]\ntype = "directory"\nurl = "../shared"', None),
    Case("file", '[package.source]\ntype = "file"\nurl = "dist/x.whl"', None),
    Case("public-only project without source", "", None, name="requests"),
]


@pytest.mark.parametrize("case", POETRY_CASES, ids=lambda case: case.id)
def test_poetry_lock(files: Files, case: Case) -> None:
    files.write("pyproject.toml", PYPROJECT)
    body = f'optional = false\npython-versions = "*"\nfiles = []\n\n{case.body}'
    _check(
        _judge(files, "poetry.lock", "package", Case(case.id, body, case.violation, case.name)),
        case,
    )


def test_poetry_lock_sources_list_the_resolved_reference_and_the_locked_url(files: Files) -> None:
    files.write("pyproject.toml", PYPROJECT)
    files.write(
        "poetry.lock",
        f'[[package]]\nname = "corp-shared"\nversion = "1"\n{_legacy("pub", PRIVATE)}\n',
    )
    [package] = read_lock(Path("poetry.lock"), project_dir=_work(files), read_text=files)
    assert package.sources == (PUB, PRIVATE)
    assert package.kinds == ("reference", "registry")


def test_a_poetry_lock_alone_is_judged_by_the_urls_it_records(files: Files) -> None:
    """Without a pyproject.toml (a lock audited by itself; poetry cannot install from it)
    there is no source to resolve a reference in: the lock's own URL is judged."""
    files.write(
        "poetry.lock",
        f'[[package]]\nname = "corp-shared"\nversion = "1"\n{_legacy("priv", PRIVATE)}\n'
        f'[[package]]\nname = "corp-lib"\nversion = "9"\n{_legacy("pub", PUB)}\n',
    )
    packages = read_lock(Path("poetry.lock"), project_dir=_work(files), read_text=files)
    served = {*SERVED, "corp-lib"}
    [violation] = lock_violations(packages, private_url=PRIVATE, private_names=served)
    assert violation.package.name == "corp-lib"
    assert f"locked from {PUB} (registry)" in violation.reason


# --- pylock.toml --------------------------------------------------------------------------

PYLOCK_CASES = [
    Case(
        "private index",
        f'index = "https://priv.example/simple"\n'
        f'sdist = {{ url = "https://priv.example/files/x.tar.gz" }}\n'
        f'wheels = [{{ url = "{PRIV_FILE}" }}]',
        None,
    ),
    Case("private index spelled differently", 'index = "HTTPS://Priv.example:443/simple"', None),
    Case(
        "other index",
        f'index = "{PUB}"\nwheels = [{{ url = "{PUB_FILE}" }}]',
        f"locked from {PUB} (registry)",
    ),
    Case(
        "private index, wheel on another host",
        f'index = "{PRIVATE}"\nwheels = [{{ url = "{PUB_FILE}" }}]',
        f"its wheel {PUB_FILE} is not on the private index",
    ),
    Case("files on the private host", f'wheels = [{{ url = "{PRIV_FILE}" }}]', None),
    Case(
        "archive url",
        'archive = { url = "https://priv.example/x.tar.gz" }',
        "locked from the URL https://priv.example/x.tar.gz",
    ),
    Case(
        "vcs url",
        'vcs = { type = "git", url = "https://git.example/shared.git", commit-id = "abc" }',
        "locked from the VCS repository https://git.example/shared.git",
    ),
    Case("directory", 'directory = { path = "packages/shared", editable = true }', None),
    Case("archive path", 'archive = { path = "dist/x.tar.gz" }', None),
    Case(
        "sdist from a local directory",
        'sdist = { path = "wheels/x.tar.gz" }',
        "its sdist wheels/x.tar.gz is not on the private index",
    ),
    Case("nothing", "", "locked from the tool's default public index"),
    Case(
        "public-only project from the public index",
        f'index = "{PUB}"\nwheels = [{{ url = "{PUB_FILE}" }}]',
        None,
        name="requests",
    ),
]


@pytest.mark.parametrize("lock_name", ["pylock.toml", "pylock.dev.toml"])
@pytest.mark.parametrize("case", PYLOCK_CASES, ids=lambda case: case.id)
def test_pylock(files: Files, case: Case, lock_name: str) -> None:
    _check(_judge(files, lock_name, "packages", case), case)


# --- pdm.lock -----------------------------------------------------------------------------

PDM_CASES = [
    Case(
        "file names only: fetched from the sources, through the guard",
        'files = [{ file = "corp_shared-1.0-py3-none-any.whl", hash = "sha256:0" }]',
        None,
    ),
    Case(
        "static url on the private origin",
        f'files = [{{ url = "{PRIV_FILE}", hash = "sha256:0" }}]',
        None,
    ),
    Case(
        "static url elsewhere",
        f'files = [{{ url = "{PUB_FILE}", hash = "sha256:0" }}]',
        f"its file {PUB_FILE} is not on the private index",
    ),
    Case(
        "static file url",
        'files = [{ url = "file:///tmp/w/corp_shared-99.0-py3-none-any.whl", hash = "sha256:0" }]',
        "is not on the private index",
    ),
    Case("git", 'git = "https://git.example/shared.git"', "locked from the VCS repository"),
    Case("direct url", f'url = "{PUB_FILE}"', "locked from the URL"),
    Case("the user's own path", 'path = "./packages/shared"', None),
]


@pytest.mark.parametrize("case", PDM_CASES, ids=lambda case: case.id)
def test_pdm_lock(files: Files, case: Case) -> None:
    _check(_judge(files, "pdm.lock", "package", case), case)


def test_find_locks_finds_pdm_lock(files: Files) -> None:
    files.write("pdm.lock", "")
    assert find_locks(_work(files), read_text=files, list_dir=lambda _: []) == [
        _work(files) / "pdm.lock"
    ]


# --- places, names and messages -----------------------------------------------------------

UV_THREE = f"""version = 1
requires-python = ">=3.11"

[[package]]
name = "Corp_Shared"
version = "1.0"
source = {{ registry = "{PUB}" }}
wheels = [
    {{ url = "{PUB_FILE}" }},
]

[package.metadata]
requires-dist = []

[[package]]
name = "app"
version = "0.1"
source = {{ editable = "." }}

  [[ package ]]  # indented, spaced and commented
name = "corp-shared"
version = "2.0"
source = {{ registry = "{PRIVATE}" }}
"""


@pytest.mark.parametrize(
    ("lock_name", "key"),
    [("uv.lock", "package"), ("poetry.lock", "package"), ("pylock.toml", "packages")],
)
def test_place_is_the_line_of_the_entry_header(files: Files, lock_name: str, key: str) -> None:
    text = UV_THREE.replace("[[package]]", f"[[{key}]]").replace("[[ package ]]", f"[[ {key} ]]")
    files.write(lock_name, text)
    packages = read_lock(Path(lock_name), project_dir=_work(files), read_text=files)
    assert [(p.name, p.version, p.place) for p in packages] == [
        ("corp-shared", "1.0", f"{lock_name}:4"),
        ("app", "0.1", f"{lock_name}:15"),
        ("corp-shared", "2.0", f"{lock_name}:20"),
    ]


def test_place_of_a_lock_below_the_project_and_an_absolute_path(files: Files) -> None:
    work = _work(files)
    files.write("sub/uv.lock", UV_THREE)
    [first, *_] = read_lock(Path("sub/uv.lock"), project_dir=work, read_text=files)
    assert first.place == "sub/uv.lock:4"
    [first, *_] = read_lock(work / "sub" / "uv.lock", project_dir=work, read_text=files)
    assert first.place == "sub/uv.lock:4"


def test_place_without_line_when_headers_do_not_match(files: Files) -> None:
    files.write("uv.lock", 'package = [{ name = "a", version = "1" }]\n')
    [package] = read_lock(Path("uv.lock"), project_dir=_work(files), read_text=files)
    assert package.place == "uv.lock"


def test_uv_lock_sources_in_order(files: Files) -> None:
    files.write("uv.lock", UV_THREE)
    [first, app, second] = read_lock(Path("uv.lock"), project_dir=_work(files), read_text=files)
    assert (first.sources, first.kinds, first.local) == (
        (PUB, PUB_FILE),
        ("registry", "wheel"),
        False,
    )
    assert (app.sources, app.local) == ((), True)
    assert (second.sources, second.local) == ((PRIVATE,), False)


def test_message_names_place_version_private_index_and_fix(files: Files) -> None:
    files.write("uv.lock", UV_THREE)
    packages = read_lock(Path("uv.lock"), project_dir=_work(files), read_text=files)
    [violation] = lock_violations(packages, private_url=PRIVATE, private_names=["corp.shared"])
    assert violation.reason == f"locked from {PUB} (registry) (and 1 more)"
    assert violation.message(PRIVATE) == (
        f"uv.lock:4: corp-shared 1.0 is locked from {PUB} (registry) (and 1 more), but "
        f"private index {PRIVATE} serves corp-shared; re-lock with crane (`crane uv lock`) "
        "or remove the entry"
    )


@pytest.mark.parametrize(
    ("place", "reason", "expected"),
    [
        (
            "poetry.lock:7",
            "its wheel x.whl is not on the private index",
            "poetry.lock:7: corp-shared 1.0: its wheel x.whl is not on the private index, but "
            f"private index {PRIVATE} serves corp-shared; re-lock with crane "
            "(`crane poetry lock`) or remove the entry",
        ),
        (
            "locks/pylock.dev.toml:3",
            "locked from the URL https://x/y.whl",
            "locks/pylock.dev.toml:3: corp-shared 1.0 is locked from the URL https://x/y.whl, but "
            f"private index {PRIVATE} serves corp-shared; re-lock with crane "
            "(`crane pip lock -o pylock.dev.toml ...`) or remove the entry",
        ),
    ],
)
def test_message_forms(place: str, reason: str, expected: str) -> None:
    package = LockedPackage("corp-shared", "1.0", (), False, place)
    assert LockViolation(package, reason).message(PRIVATE) == expected


def test_hand_made_package_without_kinds_is_judged_by_origin() -> None:
    on_private = LockedPackage("corp-shared", None, (PRIV_FILE,), False, "x")
    elsewhere = LockedPackage("corp-shared", None, (PUB_FILE,), False, "y")
    assert on_private.kinds == ("file",)
    violations = lock_violations([on_private, elsewhere], private_url=PRIVATE, private_names=SERVED)
    assert [v.package.place for v in violations] == ["y"]
    with pytest.raises(ValueError, match="differ in length"):
        LockedPackage("a", None, ("u",), False, "x", kinds=("file", "file"))


# --- errors and missing files -------------------------------------------------------------


@pytest.mark.parametrize("lock_name", ["uv.lock", "poetry.lock", "pylock.toml", "pylock.ci.toml"])
def test_missing_lock_is_empty(files: Files, lock_name: str) -> None:
    assert read_lock(Path(lock_name), project_dir=_work(files), read_text=files) == []


@pytest.mark.parametrize(
    ("lock_name", "text", "problem"),
    [
        ("uv.lock", "[[package]\nname = 1", "is not valid TOML"),
        ("poetry.lock", "[[package]]\nname = ", "is not valid TOML"),
        ("pylock.toml", 'packages = "corp-shared"', "`packages` is not an array of tables"),
        ("uv.lock", "package = [1, 2]", "`package` is not an array of tables"),
        ("uv.lock", '[[package]]\nversion = "1"', "has no name"),
        ("uv.lock", '[[package]]\nname = "a"\nversion = 1', "version of a is not a string"),
        ("uv.lock", '[[package]]\nname = "a"\nsource = "pypi"', "`source` of a is not a table"),
        ("uv.lock", '[[package]]\nname = "a"\nwheels = {}', "`wheels` is not an array"),
        ("pylock.toml", '[[packages]]\nname = "a"\nindex = 3', "`index` of a is not a string"),
        ("poetry.lock", '[[package]]\nname = "a"\nsource = 1', "`source` of a is not a table"),
    ],
)
def test_broken_lock_is_a_config_error_naming_the_file(
    files: Files, lock_name: str, text: str, problem: str
) -> None:
    path = files.write(lock_name, text)
    with pytest.raises(ConfigError) as caught:
        read_lock(Path(lock_name), project_dir=_work(files), read_text=files)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_unknown_lock_name_is_a_config_error(files: Files) -> None:
    with pytest.raises(ConfigError, match=r"requirements\.lock: not a lock file"):
        read_lock(Path("requirements.lock"), project_dir=_work(files), read_text=files)


def test_undecodable_lock_is_a_config_error(files: Files) -> None:
    path = _work(files) / "uv.lock"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_lock(path, project_dir=_work(files), read_text=files)


def test_find_locks(files: Files) -> None:
    work = _work(files)
    for name in ["uv.lock", "pylock.toml", "pylock.b.toml", "pylock.a.toml", "pylock.x.y.toml"]:
        files.write(name, "")
    files.write("poetry.lock/inside", "")  # a directory, not a lock file
    assert find_locks(work, read_text=files) == [
        work / "uv.lock",
        work / "pylock.toml",
        work / "pylock.a.toml",
        work / "pylock.b.toml",
    ]


def test_find_locks_in_a_missing_directory(files: Files) -> None:
    assert find_locks(files.root / "nowhere", read_text=files) == []


def test_find_locks_uses_the_directory_listing_given(files: Files) -> None:
    files.fake[Path("/p/pylock.ci.toml")] = ""
    files.fake[Path("/p/poetry.lock")] = ""
    found = find_locks(Path("/p"), read_text=files, list_dir=lambda _: ["pylock.ci.toml", "x"])
    assert found == [Path("/p/poetry.lock"), Path("/p/pylock.ci.toml")]


def test_a_pdm_lock_violation_says_to_relock_with_crane_pdm(files: Files) -> None:
    case = Case("elsewhere", f'files = [{{ url = "{PUB_FILE}", hash = "sha256:0" }}]', "x")
    (violation,) = _judge(files, "pdm.lock", "package", case)
    assert "`crane pdm lock`" in violation.message(PRIVATE)
