"""Planning `crane poetry` and `crane uv <project command>`: which registered indexes a
project uses, and the warnings when its configuration lets another index shadow them."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from crane_launch.config import PrivateIndex, Registry
from crane_launch.errors import ConfigError
from crane_launch.launch.project import (
    find_project,
    is_uv_project_command,
    plan_poetry,
    plan_uv_project,
)

PRIVATE = "https://private.example/simple/"
PRIVATE_2 = "https://private2.example:8443/pypi/simple/"
PUBLIC = "https://public.example/simple/"
MIRROR = "https://mirror.example/simple/"


def _index(url: str) -> PrivateIndex:
    return PrivateIndex(
        url=url,
        client_id="crane",
        token_url="https://idp.example/token",
        device_url="https://idp.example/device",
    )


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "crane" / "indexes.json")
    registry.put(_index(PRIVATE))
    registry.put(_index(PRIVATE_2))
    return registry


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _source(name: str, url: str | None = None, priority: str | None = None) -> str:
    lines = ["[[tool.poetry.source]]", f'name = "{name}"']
    if url:
        lines.append(f'url = "{url}"')
    if priority:
        lines.append(f'priority = "{priority}"')
    return "\n".join(lines) + "\n"


def _poetry_project(*sources: str) -> str:
    return '[project]\nname = "app"\nversion = "1.0"\n' + "".join(sources)


def _uv_index(name: str, url: str, **flags: bool) -> str:
    lines = ["[[tool.uv.index]]", f'name = "{name}"', f'url = "{url}"']
    lines += [f"{key} = {str(value).lower()}" for key, value in flags.items()]
    return "\n".join(lines) + "\n"


UV_PROJECT = '[project]\nname = "app"\nversion = "1.0"\n'


# --- poetry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "argv", "cwd", "privates"),
    [
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", "https://private.example/simple"))},
            ["install"],
            ".",
            [PRIVATE],
            id="source-registered-any-spelling",
        ),
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", PUBLIC))},
            ["install"],
            ".",
            [],
            id="source-not-registered",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(
                    _source("one", PRIVATE_2), _source("other", PUBLIC), _source("two", PRIVATE)
                )
            },
            ["lock"],
            ".",
            [PRIVATE_2, PRIVATE],
            id="several-sources",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(),
                "poetry.lock": f"""
                    [[package]]
                    name = "corp-lib"
                    version = "1.0"
                    files = []

                    [package.source]
                    type = "legacy"
                    url = "{PRIVATE}"
                    reference = "corp"

                    [[package]]
                    name = "tool"
                    version = "2.0"
                    files = []

                    [package.source]
                    type = "git"
                    url = "{PRIVATE_2}"
                    reference = "main"
                """,
            },
            ["install"],
            ".",
            [PRIVATE],
            id="lock-file-legacy-source",
        ),
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["install"],
            "src/pkg",
            [PRIVATE],
            id="found-from-a-subdirectory",
        ),
        pytest.param(
            {"app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["-C", "app", "install"],
            ".",
            [PRIVATE],
            id="directory-short",
        ),
        pytest.param(
            {"app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["install", "--directory=app"],
            ".",
            [PRIVATE],
            id="directory-long-after-command",
        ),
        pytest.param(
            {"work/app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["--directory", "work", "-P", "app", "install"],
            ".",
            [PRIVATE],
            id="project-relative-to-directory",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(_source("corp", PRIVATE)),
                "app/pyproject.toml": _poetry_project(),
            },
            ["run", "python", "-C", "app"],
            ".",
            [PRIVATE],
            id="run-arguments-belong-to-the-child",
        ),
    ],
)
def test_poetry_privates(
    tmp_path: Path,
    registry: Registry,
    *,
    files: dict[str, str],
    argv: list[str],
    cwd: str,
    privates: list[str],
) -> None:
    _write(tmp_path, files)
    (tmp_path / cwd).mkdir(parents=True, exist_ok=True)

    plan = plan_poetry(argv, registry=registry, environ={}, cwd=tmp_path / cwd)

    assert plan.command == ["poetry", *argv]
    assert [index.url for index in plan.privates] == privates
    hosts = {PRIVATE: "private.example", PRIVATE_2: "private2.example"}
    assert plan.private_hosts == [hosts[url] for url in privates]
    if not privates:
        assert plan.notes == ["no registered index in this project; running poetry unchanged"]


def test_poetry_without_a_project_runs_unchanged(tmp_path: Path, registry: Registry) -> None:
    plan = plan_poetry(["install"], registry=registry, environ={}, cwd=tmp_path)

    assert plan.privates == []
    assert plan.private_hosts == []
    assert plan.project is None
    assert plan.notes == [
        f"no pyproject.toml in {tmp_path} or its parents; running poetry unchanged"
    ]


@pytest.mark.parametrize(
    ("sources", "warnings"),
    [
        pytest.param(
            [_source("corp", PRIVATE), _source("public", PUBLIC)],
            [
                "poetry source 'public' (priority primary) could provide projects that also "
                f'exist on private index {PRIVATE}; pin them with `source = "corp"` or make '
                "the other source supplemental or explicit"
            ],
            id="two-primary-sources-merge",
        ),
        pytest.param(
            [_source("corp", PRIVATE, "supplemental")],
            [
                "poetry's implicit public index (priority primary, on because no source is "
                f"primary) could provide projects that also exist on private index {PRIVATE}; "
                "pin them with `source = \"corp\"` or make source 'corp' primary"
            ],
            id="implicit-public-index-before-supplemental",
        ),
        pytest.param(
            [_source("PyPI"), _source("corp", PRIVATE, "supplemental")],
            [
                "poetry source 'PyPI' (priority primary) could provide projects that also "
                f'exist on private index {PRIVATE}; pin them with `source = "corp"` or make '
                "the other source explicit"
            ],
            id="named-public-source-primary",
        ),
        pytest.param(
            [
                _source("corp-2", PRIVATE_2),
                _source("mirror", MIRROR, "supplemental"),
                _source("corp", PRIVATE, "supplemental"),
            ],
            [
                "poetry source 'mirror' (priority supplemental) could provide projects that "
                f'also exist on private index {PRIVATE}; pin them with `source = "corp"` or '
                "make the other source explicit"
            ],
            id="supplemental-declared-first",
        ),
        pytest.param(
            [_source("corp", PRIVATE), _source("public", PUBLIC, "supplemental")],
            [],
            id="public-supplemental-after-private-primary",
        ),
        pytest.param(
            [_source("corp", PRIVATE, "explicit"), _source("public", PUBLIC)],
            [],
            id="private-explicit-serves-pinned-only",
        ),
        pytest.param(
            [_source("corp", PRIVATE), _source("corp-2", PRIVATE_2)],
            [],
            id="all-primary-sources-private",
        ),
    ],
)
def test_poetry_shadowing_warnings(
    tmp_path: Path, registry: Registry, sources: list[str], warnings: list[str]
) -> None:
    _write(tmp_path, {"pyproject.toml": _poetry_project(*sources)})

    plan = plan_poetry(["lock"], registry=registry, environ={}, cwd=tmp_path)

    assert plan.warnings == warnings


@pytest.mark.parametrize("name", ["pyproject.toml", "poetry.lock"])
def test_poetry_malformed_toml_is_a_config_error(
    tmp_path: Path, registry: Registry, name: str
) -> None:
    _write(tmp_path, {"pyproject.toml": _poetry_project(), name: "[tool.poetry\nname = 1\n"})

    with pytest.raises(ConfigError) as caught:
        plan_poetry(["install"], registry=registry, environ={}, cwd=tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: is not valid TOML (")
    assert "\n" not in message


# --- uv ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "argv", "environ", "privates"),
    [
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("corp", "https://PRIVATE.example/simple")},
            ["sync"],
            {},
            [PRIVATE],
            id="pyproject-index",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("public", PUBLIC)},
            ["sync"],
            {},
            [],
            id="pyproject-index-not-registered",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT + f'[tool.uv]\nextra-index-url = ["{PRIVATE_2}"]\n',
            },
            ["lock"],
            {},
            [PRIVATE_2],
            id="pyproject-extra-index-url",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "uv.toml": f'[[index]]\nname = "corp"\nurl = "{PRIVATE}"\n',
            },
            ["lock"],
            {},
            [PRIVATE],
            id="uv-toml",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["sync"],
            {"UV_INDEX": f"public={PUBLIC} corp={PRIVATE}"},
            [PRIVATE],
            id="env-index-named",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["sync"],
            {"UV_DEFAULT_INDEX": PRIVATE, "UV_EXTRA_INDEX_URL": PRIVATE_2},
            [PRIVATE, PRIVATE_2],
            id="env-default-and-extra",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["sync"],
            {"UV_INDEX_URL": PRIVATE_2},
            [PRIVATE_2],
            id="env-index-url",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["add", "--index", f"corp={PRIVATE}", "-i", PRIVATE_2, "corp-lib"],
            {},
            [PRIVATE, PRIVATE_2],
            id="argv-index-and-index-url",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["lock", f"--default-index={PRIVATE}"],
            {},
            [PRIVATE],
            id="argv-default-index",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "uv.lock": f"""
                    version = 1
                    requires-python = ">=3.11"

                    [[package]]
                    name = "app"
                    version = "1.0"
                    source = {{ editable = "." }}

                    [[package]]
                    name = "corp-lib"
                    version = "1.0"
                    source = {{ registry = "{PRIVATE}" }}

                    [[package]]
                    name = "six"
                    version = "1.0"
                    source = {{ registry = "{PUBLIC}" }}
                """,
            },
            ["sync", "--frozen"],
            {},
            [PRIVATE],
            id="lock-file-registry-source",
        ),
        pytest.param(
            {"app/pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["--directory", "app", "sync"],
            {},
            [PRIVATE],
            id="directory",
        ),
        pytest.param(
            {"work/app/pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["sync", "--project", "app"],
            {"UV_WORKING_DIR": "work"},
            [PRIVATE],
            id="project-relative-to-working-dir",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + '[tool.uv.workspace]\nmembers = ["packages/*"]\n'
                + _uv_index("corp", PRIVATE),
                "uv.lock": f'version = 1\n[[package]]\nname = "x"\nversion = "1"\n'
                f'source = {{ registry = "{PRIVATE_2}" }}\n',
                "packages/lib/pyproject.toml": '[project]\nname = "lib"\nversion = "1"\n',
            },
            ["--project", "packages/lib", "sync"],
            {},
            [PRIVATE, PRIVATE_2],
            id="workspace-member-uses-root-settings-and-lock",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "home/.config/uv/uv.toml": f'[[index]]\nurl = "{PRIVATE}"\n',
            },
            ["sync"],
            {"HOME": "{tmp}/home"},
            [PRIVATE],
            id="user-uv-toml",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "home/.config/uv/uv.toml": f'[[index]]\nurl = "{PRIVATE}"\n',
            },
            ["sync", "--no-config"],
            {"HOME": "{tmp}/home"},
            [],
            id="no-config-skips-user-uv-toml",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT, "corp.toml": f'index-url = "{PRIVATE}"\n'},
            ["sync", "--config-file", "corp.toml"],
            {},
            [PRIVATE],
            id="config-file",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "app/pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE),
            },
            ["run", "pytest", "--directory", "app"],
            {},
            [],
            id="run-arguments-belong-to-the-child",
        ),
    ],
)
def test_uv_privates(
    tmp_path: Path,
    registry: Registry,
    *,
    files: dict[str, str],
    argv: list[str],
    environ: dict[str, str],
    privates: list[str],
) -> None:
    _write(tmp_path, files)
    environ = {key: value.replace("{tmp}", str(tmp_path)) for key, value in environ.items()}

    plan = plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)

    assert plan.command == ["uv", *argv]
    assert [index.url for index in plan.privates] == privates
    hosts = {PRIVATE: "private.example", PRIVATE_2: "private2.example"}
    assert plan.private_hosts == [hosts[url] for url in privates]
    if not privates:
        assert plan.notes == ["no registered index in this project; running uv unchanged"]


def test_uv_without_a_project_runs_unchanged(tmp_path: Path, registry: Registry) -> None:
    plan = plan_uv_project(["sync"], registry=registry, environ={}, cwd=tmp_path)

    assert plan.privates == []
    assert plan.project is None
    assert plan.notes == [
        f"no uv project found in {tmp_path} or its parents",
        "no registered index in this project; running uv unchanged",
    ]


def _order_warning(other: str, private: str) -> str:
    return (
        f"uv index '{other}' is consulted before private index {private}, so a project it "
        "also has would come from it; list the private index first, make "
        f"'{other}' explicit, or pin the projects in [tool.uv.sources]"
    )


def _strategy_warning(strategy: str, place: str, private: str) -> str:
    return (
        f"uv index-strategy '{strategy}' (set in {place}) lets another index provide "
        f"projects that also exist on private index {private}; remove it to use the "
        "default 'first-index'"
    )


@pytest.mark.parametrize(
    ("files", "argv", "environ", "warnings"),
    [
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + _uv_index("mirror", MIRROR)
                + _uv_index("corp", PRIVATE)
            },
            ["lock"],
            {},
            [_order_warning("mirror", PRIVATE)],
            id="public-index-listed-first",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["lock", "--index", MIRROR],
            {},
            [_order_warning(MIRROR, PRIVATE)],
            id="command-line-index-comes-first",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + _uv_index("corp", PRIVATE, default=True)
                + _uv_index("mirror", MIRROR)
            },
            ["lock"],
            {},
            [_order_warning("mirror", PRIVATE)],
            id="private-default-index-is-consulted-last",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + _uv_index("mirror", MIRROR, explicit=True)
                + _uv_index("corp", PRIVATE)
                + _uv_index("public", PUBLIC, default=True)
            },
            ["lock"],
            {},
            [],
            id="explicit-and-default-public-indexes-are-safe",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + _uv_index("mirror", MIRROR)
                + _uv_index("corp", PRIVATE, explicit=True)
            },
            ["lock"],
            {},
            [],
            id="explicit-private-serves-pinned-only",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["lock", "--extra-index-url", MIRROR],
            {},
            [],
            id="extra-index-url-comes-after-configured-indexes",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT
                + _uv_index("corp", PRIVATE)
                + '[tool.uv]\nindex-strategy = "unsafe-best-match"\n'
            },
            ["sync"],
            {},
            [_strategy_warning("unsafe-best-match", "{tmp}/pyproject.toml", PRIVATE)],
            id="strategy-in-pyproject",
        ),
        pytest.param(
            {
                "pyproject.toml": UV_PROJECT,
                "uv.toml": f'index-strategy = "unsafe-first-match"\n[[index]]\nurl = "{PRIVATE}"\n',
            },
            ["sync"],
            {},
            [_strategy_warning("unsafe-first-match", "{tmp}/uv.toml", PRIVATE)],
            id="strategy-in-uv-toml",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["sync"],
            {"UV_INDEX_STRATEGY": "unsafe-best-match"},
            [_strategy_warning("unsafe-best-match", "UV_INDEX_STRATEGY", PRIVATE)],
            id="strategy-in-environment",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)},
            ["sync", "--index-strategy", "first-index"],
            {"UV_INDEX_STRATEGY": "unsafe-best-match"},
            [],
            id="argv-strategy-overrides-environment",
        ),
    ],
)
def test_uv_shadowing_warnings(
    tmp_path: Path,
    registry: Registry,
    *,
    files: dict[str, str],
    argv: list[str],
    environ: dict[str, str],
    warnings: list[str],
) -> None:
    _write(tmp_path, files)

    plan = plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)

    assert plan.warnings == [w.replace("{tmp}", str(tmp_path)) for w in warnings]


@pytest.mark.parametrize("name", ["pyproject.toml", "uv.toml", "uv.lock"])
def test_uv_malformed_toml_is_a_config_error(tmp_path: Path, registry: Registry, name: str) -> None:
    _write(tmp_path, {"pyproject.toml": UV_PROJECT, name: "[[index]\nurl = \n"})

    with pytest.raises(ConfigError) as caught:
        plan_uv_project(["sync"], registry=registry, environ={}, cwd=tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: is not valid TOML (")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sync"], True),
        (["lock", "--upgrade"], True),
        (["run", "pytest", "--help"], True),
        (["--directory", "app", "add", "corp-lib"], True),
        (["--color", "never", "tree"], True),
        (["export", "--format", "requirements-txt"], True),
        (["remove", "corp-lib"], True),
        (["pip", "install", "corp-lib"], False),
        (["tool", "run", "ruff"], False),
        (["python", "install"], False),
        (["cache", "clean"], False),
        (["self", "update"], False),
        (["help", "sync"], False),
        (["--version"], False),
        (["sync", "--help"], False),
        ([], False),
    ],
)
def test_is_uv_project_command(argv: list[str], expected: bool) -> None:
    assert is_uv_project_command(argv) is expected


def test_find_project(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "poetry-app/pyproject.toml": _poetry_project(),
            "ws/pyproject.toml": UV_PROJECT + '[tool.uv.workspace]\nmembers = ["libs/*"]\n',
            "ws/libs/one/pyproject.toml": UV_PROJECT,
            "ws/tools/two/pyproject.toml": UV_PROJECT,
        },
    )
    (tmp_path / "poetry-app/src").mkdir()

    assert find_project(tmp_path / "poetry-app/src") == tmp_path / "poetry-app"
    assert find_project(tmp_path, argv=["-C", "poetry-app", "install"]) == tmp_path / "poetry-app"
    assert find_project(tmp_path / "ws/libs/one", tool="uv") == tmp_path / "ws"
    assert find_project(tmp_path / "ws/tools/two", tool="uv") == tmp_path / "ws/tools/two"
    assert (
        find_project(tmp_path, tool="uv", environ={"UV_PROJECT": "ws/libs/one"}) == tmp_path / "ws"
    )
    assert find_project(tmp_path, tool="uv") is None
