"""`launch.uv_settings`, the one model of uv's settings for `uv pip` and the project
commands: where the former two models disagreed, both planners now follow uv 0.13.9."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from crane_launch.errors import ConfigError
from crane_launch.launch.project_scan import ToolArgs
from crane_launch.launch.uv import plan_uv_pip
from crane_launch.launch.uv_project import plan_uv_project
from crane_launch.launch.uv_settings import (
    is_workspace_member,
    settings_layers,
    split_index_value,
    uv_config_files,
    working_directory,
    workspace_root,
)
from tests.launch.fakefiles import Files
from tests.launch.projecttrees import PRIVATE, private_urls, two_private_indexes, write_tree

UV_PROJECT = '[project]\nname = "app"\nversion = "1.0"\n'


def _files(root: Path, environ: Mapping[str, str] | None = None, **options: str) -> list[Path]:
    """The settings files uv reads running in `options["cwd"]` (default `root`); only files
    below `root` exist."""
    found = uv_config_files(
        dict(environ or {}),
        cwd=root / options.get("cwd", ""),
        home=root / "home",
        config_file=options.get("config_file"),
        no_config=False,
        project=options.get("project"),
        read_text=Files(root),
    )
    return [file.path for file in found]


def test_an_invalid_pyproject_is_skipped_during_discovery(tmp_path: Path) -> None:
    # uv 0.13.9: "warning: Failed to parse `pyproject.toml` during settings discovery".
    write_tree(tmp_path, {"uv.toml": 'index-url = "x"\n', "sub/pyproject.toml": "x = [\n"})
    assert _files(tmp_path, cwd="sub") == [tmp_path / "uv.toml"]


def test_an_invalid_uv_toml_is_an_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"uv.toml": "index-url = \n"})
    with pytest.raises(ConfigError, match=r"uv config file .*uv\.toml: cannot be parsed \("):
        _files(tmp_path)


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    # uv 0.13.9: "error: failed to open file `nope.toml`" for `uv pip` and `uv lock`.
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot be read"):
        _files(tmp_path, config_file="nope.toml")


def test_a_missing_config_file_is_an_error_for_project_commands(tmp_path: Path) -> None:
    write_tree(tmp_path, {"pyproject.toml": UV_PROJECT})
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot be read"):
        plan_uv_project(
            ["sync"],
            registry=two_private_indexes(tmp_path),
            environ={"UV_CONFIG_FILE": "nope.toml"},
            cwd=tmp_path,
        )


@pytest.mark.parametrize(
    ("pattern", "member"),
    [
        ("packages/*", False),
        ("packages/*/b", True),
        ("packages/**/b", True),
        ("**/b", True),
        ("packages/**", True),
        ("packages/a/b/", True),
        ("./packages/a/b", True),
        ("packages/**/c", False),
    ],
)
def test_workspace_members_are_globbed_like_uv(pattern: str, member: bool) -> None:
    workspace = {"members": [pattern]}
    assert is_workspace_member(Path("/ws"), workspace, Path("/ws/packages/a/b")) is member


def test_excluded_members_and_globstar_over_no_segment() -> None:
    workspace = {"members": ["packages/**/b"], "exclude": ["packages/x*/b"]}
    assert is_workspace_member(Path("/ws"), workspace, Path("/ws/packages/b"))
    assert not is_workspace_member(Path("/ws"), workspace, Path("/ws/packages/xa/b"))
    assert not is_workspace_member(Path("/ws"), workspace, Path("/elsewhere/b"))


def test_a_globstar_member_reads_the_root_settings(tmp_path: Path) -> None:
    # uv 0.13.9: with `members = ["packages/**/b"]` the member gets the root's [tool.uv].
    root = UV_PROJECT + '[tool.uv.workspace]\nmembers = ["packages/**/b"]\n[tool.uv]\n'
    member = '[project]\nname = "b"\nversion = "1"\n[tool.uv]\nindex-url = "m"\n'
    write_tree(tmp_path, {"pyproject.toml": root, "packages/a/b/pyproject.toml": member})
    assert workspace_root(tmp_path / "packages/a/b", Files(tmp_path)) == tmp_path
    assert _files(tmp_path, project="packages/a/b") == [tmp_path / "pyproject.toml"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("corp=https://h.example/simple", ("corp", "https://h.example/simple")),
        ("a.b-c_d=https://h.example/simple", ("a.b-c_d", "https://h.example/simple")),
        ("=https://h.example/simple", ("", "https://h.example/simple")),
        ("https://h.example/simple?a=b", (None, "https://h.example/simple?a=b")),
        ("file:///x=y", (None, "file:///x=y")),
        ("https://h.example/simple", (None, "https://h.example/simple")),
    ],
)
def test_index_values_are_split_like_uv(value: str, expected: tuple[str | None, str]) -> None:
    assert split_index_value(value) == expected


@pytest.mark.parametrize(
    ("directory", "environ", "expected"),
    [
        (None, {}, "."),
        (None, {"UV_WORKING_DIRECTORY": "w"}, "w"),
        (None, {"UV_WORKING_DIR": "v", "UV_WORKING_DIRECTORY": "w"}, "v"),
        ("d", {"UV_WORKING_DIR": "v"}, "d"),
    ],
)
def test_the_working_directory(
    directory: str | None, environ: dict[str, str], expected: str
) -> None:
    assert working_directory(Path("/c"), directory, environ) == Path("/c") / expected


def test_uv_working_directory_moves_both_planners(tmp_path: Path) -> None:
    registry = two_private_indexes(tmp_path)
    write_tree(
        tmp_path,
        {"w/pyproject.toml": UV_PROJECT, "w/uv.toml": f'index-url = "{PRIVATE}"\n'},
    )
    environ = {"UV_WORKING_DIRECTORY": "w"}
    project = plan_uv_project(["sync"], registry=registry, environ=environ, cwd=tmp_path)
    assert private_urls(project) == [PRIVATE]
    pip = plan_uv_pip(
        ["pip", "install", "pkg"],
        registry=registry,
        environ=environ,
        cwd=tmp_path,
        home=tmp_path / "home",
        read_text=Files(tmp_path),
    )
    assert PRIVATE in str(pip.mode)


def test_isolated_keeps_the_settings_of_project_commands(tmp_path: Path) -> None:
    # uv 0.13.9: `uv lock --isolated` still reads uv.toml, `uv pip compile --isolated` not.
    write_tree(tmp_path, {"uv.toml": 'index-url = "x"\n'})
    args = ToolArgs("lock", [("--isolated", "")])
    layers = settings_layers(args, {}, working_dir=tmp_path, read_text=Files(tmp_path))
    assert [layer.place for layer in layers] == [str(tmp_path / "uv.toml")]
