"""Planning `crane uv <project command> ...`: which registered indexes a uv project uses,
and the warnings when uv could take a private project from another index."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.config import Registry
from crane_launch.errors import ConfigError
from crane_launch.launch.plan import Unchanged
from crane_launch.launch.uv_project import is_uv_project_command, plan_uv_project
from tests.launch.fakefiles import Files
from tests.launch.projecttrees import (
    HOSTS,
    MIRROR,
    PRIVATE,
    PRIVATE_2,
    PUBLIC,
    private_hosts,
    private_urls,
    two_private_indexes,
    write_tree,
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return two_private_indexes(tmp_path)


def _uv_index(name: str, url: str, **flags: bool) -> str:
    lines = ["[[tool.uv.index]]", f'name = "{name}"', f'url = "{url}"']
    lines += [f"{key} = {str(value).lower()}" for key, value in flags.items()]
    return "\n".join(lines) + "\n"


UV_PROJECT = '[project]\nname = "app"\nversion = "1.0"\n'


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
                "pyproject.toml": UV_PROJECT + f'[tool.uv]\nindex-url = "{PRIVATE_2}"\n',
            },
            ["lock"],
            {},
            [PRIVATE_2],
            id="pyproject-index-url",
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
            {"UV_INDEX": f"corp={PRIVATE} public={PUBLIC}"},
            [PRIVATE],
            id="env-index-named",
        ),
        pytest.param(
            {"pyproject.toml": UV_PROJECT},
            ["sync"],
            {"UV_DEFAULT_INDEX": PRIVATE, "UV_INDEX": PRIVATE_2},
            [PRIVATE, PRIVATE_2],
            id="env-default-and-index",
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
    write_tree(tmp_path, files)
    environ = {key: value.replace("{tmp}", str(tmp_path)) for key, value in environ.items()}

    plan = plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)

    assert plan.command == ["uv", *argv]
    assert private_urls(plan) == privates
    assert private_hosts(plan) == sorted({HOSTS[url] for url in privates})
    if not privates:
        assert plan.notes == ["no registered index in this project; running uv unchanged"]


def test_uv_without_a_project_runs_unchanged(tmp_path: Path, registry: Registry) -> None:
    plan = plan_uv_project(["sync"], registry=registry, environ={}, cwd=tmp_path)

    assert plan.command == ["uv", "sync"]
    assert plan.mode == Unchanged()
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
            [
                "command line: --extra-index-url is not allowed under crane: projects could "
                "come from another index and bypass private-first routing"
            ],
            id="extra-index-url-is-refused-wherever-it-is-set",
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
def test_uv_shadowing_settings_are_refused(
    tmp_path: Path,
    registry: Registry,
    *,
    files: dict[str, str],
    argv: list[str],
    environ: dict[str, str],
    warnings: list[str],
) -> None:
    write_tree(tmp_path, files)
    expected = [w.replace("{tmp}", str(tmp_path)) for w in warnings]

    # A setting that lets another index provide a private project is refused, not warned
    # about: crane reaches only the private host, so private-first rests on uv's settings.
    if not expected:
        plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)
        return
    with pytest.raises(ConfigError) as caught:
        plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)
    assert str(caught.value) == expected[0]


@pytest.mark.parametrize("name", ["pyproject.toml", "uv.toml", "uv.lock"])
def test_uv_malformed_toml_is_a_config_error(tmp_path: Path, registry: Registry, name: str) -> None:
    write_tree(tmp_path, {"pyproject.toml": UV_PROJECT, name: "[[index]\nurl = \n"})

    with pytest.raises(ConfigError) as caught:
        plan_uv_project(["sync"], registry=registry, environ={}, cwd=tmp_path)

    message = str(caught.value)
    # A settings file is named as `uv pip` names it: one error policy (`uv_settings`).
    if name == "uv.toml":
        assert message.startswith(f"uv config file {tmp_path / name}: cannot be parsed (")
    else:
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


_WORKSPACE = {
    "ws/pyproject.toml": UV_PROJECT + '[tool.uv.workspace]\nmembers = ["libs/*"]\n',
    "ws/uv.lock": f'version = 1\n[[package]]\nname = "x"\nversion = "1"\n'
    f'source = {{ registry = "{PRIVATE_2}" }}\n',
    "ws/libs/one/pyproject.toml": UV_PROJECT,
    "ws/tools/two/pyproject.toml": UV_PROJECT,
}


@pytest.mark.parametrize(
    ("cwd", "environ", "privates"),
    [
        pytest.param("ws/libs/one", {}, [PRIVATE_2], id="member-uses-the-workspace-lock"),
        pytest.param("ws/tools/two", {}, [], id="non-member-is-its-own-root"),
        pytest.param(".", {"UV_PROJECT": "ws/libs/one"}, [PRIVATE_2], id="uv-project-variable"),
    ],
)
def test_uv_lock_file_is_read_at_the_workspace_root(
    tmp_path: Path, registry: Registry, cwd: str, environ: dict[str, str], privates: list[str]
) -> None:
    write_tree(tmp_path, _WORKSPACE)

    plan = plan_uv_project(["sync"], registry=registry, environ=environ, cwd=tmp_path / cwd)

    assert private_urls(plan) == privates


@pytest.mark.parametrize(
    ("environ", "privates"),
    [
        pytest.param({"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/me"}, [PRIVATE], id="xdg"),
        pytest.param(
            {"XDG_CONFIG_HOME": "xdg", "HOME": "/home/me"}, [PRIVATE_2], id="relative-xdg-ignored"
        ),
    ],
)
def test_uv_user_settings_file(
    files: Files, registry: Registry, environ: dict[str, str], privates: list[str]
) -> None:
    files.write("/xdg/uv/uv.toml", f'[[index]]\nurl = "{PRIVATE}"\n')
    files.write("/home/me/.config/uv/uv.toml", f'[[index]]\nurl = "{PRIVATE_2}"\n')
    project = files.write("pyproject.toml", UV_PROJECT)

    plan = plan_uv_project(
        ["sync"], registry=registry, environ=environ, cwd=project.parent, read_text=files
    )

    assert private_urls(plan) == privates


def test_uv_directory_named_pyproject_toml_is_no_project_file(
    tmp_path: Path, registry: Registry
) -> None:
    write_tree(tmp_path, {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE)})
    (tmp_path / "app" / "pyproject.toml").mkdir(parents=True)

    plan = plan_uv_project(["sync"], registry=registry, environ={}, cwd=tmp_path / "app")

    assert private_urls(plan) == [PRIVATE]


def test_the_system_settings_file_is_read_too(tmp_path: Path, registry: Registry) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE),
            "xdg-dirs/uv/uv.toml": 'index-strategy = "unsafe-best-match"\n',
        },
    )
    environ = {"XDG_CONFIG_DIRS": str(tmp_path / "xdg-dirs"), "HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError) as caught:
        plan_uv_project(["lock"], registry=registry, environ=environ, cwd=tmp_path)
    assert str(caught.value).startswith(
        f"uv index-strategy 'unsafe-best-match' (set in {tmp_path / 'xdg-dirs/uv/uv.toml'})"
    )


SCRIPT = f"""\
# /// script
# dependencies = ["pkg"]
# [tool.uv]
# extra-index-url = ["{MIRROR}"]
# [[tool.uv.index]]
# name = "corp"
# url = "{PRIVATE}"
# ///
print("hello")
"""


@pytest.mark.parametrize("argv", [["run", "s.py"], ["run", "--script", "s.py"]])
def test_a_scripts_inline_settings_are_judged(
    tmp_path: Path, registry: Registry, argv: list[str]
) -> None:
    write_tree(tmp_path, {"s.py": SCRIPT})
    with pytest.raises(ConfigError) as caught:
        plan_uv_project(argv, registry=registry, environ={}, cwd=tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 's.py'} script metadata [tool.uv]: extra-index-url is not allowed under "
        "crane: projects could come from another index and bypass private-first routing"
    )


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["lock", f"--default-index={MIRROR}"], {}),
        (["lock"], {"UV_DEFAULT_INDEX": MIRROR}),
    ],
)
def test_a_private_default_index_replaced_by_another_is_refused(
    tmp_path: Path, registry: Registry, argv: list[str], environ: dict[str, str]
) -> None:
    write_tree(tmp_path, {"pyproject.toml": UV_PROJECT + _uv_index("corp", PRIVATE, default=True)})
    with pytest.raises(ConfigError) as caught:
        plan_uv_project(argv, registry=registry, environ=environ, cwd=tmp_path)
    assert str(caught.value) == (
        f"uv index '{MIRROR}' replaces private index {PRIVATE} as the default index, so its "
        "projects would come from elsewhere; drop the other default index or make the "
        "private one the default there"
    )
