"""`plan_uv_pip`: where `uv pip` finds its index, and what crane changes for the run.

Every file uv could read goes through `Files`: real files below tmp_path, plus fake
system files, so nothing on the machine running the tests is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import ConfigError, RejectedSettingError, UnknownIndexError
from crane_launch.launch.plan import IndexDoorMode, Plan, Unchanged
from crane_launch.launch.uv import plan_uv_pip
from tests.launch.fakefiles import Files
from tests.launch.registries import registry_of

PRIVATE = "https://private.example/simple/"
OTHER = "https://other.example/simple/"
MIRROR = "https://mirror.example/simple/"

EXTRA_WHY = "projects could come from another index and bypass private-first routing"
FOREIGN_WHY = (
    "under crane uv would ignore it, because crane's proxy is the default index; "
    "register the index or remove the line"
)
EMIT_WHY = "the output file would record crane's one-run proxy address instead of the index"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, PRIVATE, OTHER)


def plan(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> Plan:
    return plan_uv_pip(
        list(argv),
        registry=registry,
        environ=dict(environ or {}),
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
    )


def door(result: Plan) -> IndexDoorMode:
    """The plan's index-door mode; fails when uv would run unchanged."""
    assert isinstance(result.mode, IndexDoorMode)
    return result.mode


def assert_private(result: Plan) -> None:
    assert door(result).private.url == PRIVATE
    assert door(result).index_env_var == "UV_DEFAULT_INDEX"
    assert not any("private.example" in arg for arg in result.command)


# --- where the index comes from -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["pip", "install", "-i", PRIVATE, "pkg"], ["uv", "pip", "install", "pkg"]),
        (["pip", "install", f"-i{PRIVATE}", "pkg"], ["uv", "pip", "install", "pkg"]),
        (["pip", "install", f"-i={PRIVATE}", "pkg"], ["uv", "pip", "install", "pkg"]),
        (["pip", "install", "--index-url", PRIVATE, "pkg"], ["uv", "pip", "install", "pkg"]),
        (["pip", "install", f"--index-url={PRIVATE}", "pkg"], ["uv", "pip", "install", "pkg"]),
        (["pip", "install", "--default-index", PRIVATE, "pkg"], ["uv", "pip", "install", "pkg"]),
        (
            ["pip", "install", f"--default-index=corp={PRIVATE}", "pkg"],
            ["uv", "pip", "install", "pkg"],
        ),
        (["pip", "install", "-Ui", PRIVATE, "pkg"], ["uv", "pip", "install", "-U", "pkg"]),
        (
            ["pip", "compile", "-i", PRIVATE, "in.txt", "-o", "out.txt"],
            ["uv", "pip", "compile", "in.txt", "-o", "out.txt"],
        ),
        (["pip", "sync", "--index-url", PRIVATE, "r.txt"], ["uv", "pip", "sync", "r.txt"]),
        (
            ["--no-progress", "pip", "install", "-i", PRIVATE, "pkg"],
            ["uv", "--no-progress", "pip", "install", "pkg"],
        ),
    ],
)
def test_command_line_index_is_taken_out_of_argv(
    files: Files, registry: Registry, argv: list[str], command: list[str]
) -> None:
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == command
    assert door(result).public_url == builtin_public_index()


@pytest.mark.parametrize("variable", ["UV_INDEX_URL", "UV_DEFAULT_INDEX"])
def test_index_from_environment_is_unset_for_the_child(
    files: Files, registry: Registry, variable: str
) -> None:
    result = plan(files, registry, ["pip", "install", "pkg"], {variable: PRIVATE})
    assert_private(result)
    assert door(result).env_unset == {variable}


PROJECT_CASES = [
    ("uv.toml", f'index-url = "{PRIVATE}"\n'),
    ("uv.toml", f'[pip]\nindex-url = "{PRIVATE}"\n'),
    ("uv.toml", f'[[index]]\nurl = "{PRIVATE}"\ndefault = true\n'),
    ("pyproject.toml", f'[tool.uv]\nindex-url = "{PRIVATE}"\n'),
    ("pyproject.toml", f'[tool.uv.pip]\nindex-url = "{PRIVATE}"\n'),
    ("pyproject.toml", f'[[tool.uv.index]]\nname = "corp"\nurl = "{PRIVATE}"\ndefault = true\n'),
]


@pytest.mark.parametrize(("name", "text"), PROJECT_CASES)
def test_index_from_project_config_found_walking_up(
    files: Files, registry: Registry, name: str, text: str
) -> None:
    files.write(name, text)
    (files.root / "work" / "src" / "deep").mkdir(parents=True)
    result = plan_uv_pip(
        ["pip", "install", "pkg"],
        registry=registry,
        environ={},
        cwd=files.root / "work" / "src" / "deep",
        home=files.root / "home",
        read_text=files,
    )
    assert_private(result)
    assert result.command == ["uv", "pip", "install", "pkg"]


@pytest.mark.parametrize(
    ("path", "environ"),
    [
        ("home/.config/uv/uv.toml", {}),
        ("xdg/uv/uv.toml", {"XDG_CONFIG_HOME": "@/xdg"}),
        ("sys/uv/uv.toml", {"XDG_CONFIG_DIRS": "@/sys"}),
        ("/etc/xdg/uv/uv.toml", {}),
        ("/etc/uv/uv.toml", {}),
        ("custom.toml", {"UV_CONFIG_FILE": "../custom.toml"}),
    ],
)
def test_index_from_user_system_and_named_config(
    files: Files, registry: Registry, path: str, environ: dict[str, str]
) -> None:
    files.write(path if path.startswith("/") else files.root / path, f'index-url = "{PRIVATE}"\n')
    environ = {k: v.replace("@", str(files.root)) for k, v in environ.items()}
    assert_private(plan(files, registry, ["pip", "install", "pkg"], environ))


def test_config_file_option_replaces_discovered_files(files: Files, registry: Registry) -> None:
    files.write("uv.toml", f'extra-index-url = ["{MIRROR}"]\n')
    files.write(files.root / "own.toml", f'index-url = "{PRIVATE}"\n')
    argv = ["pip", "install", "--config-file", "../own.toml", "pkg"]
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == ["uv", "pip", "install", "--config-file", "../own.toml", "pkg"]


def test_index_from_requirements_file_needs_no_copy(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"--index-url {PRIVATE}\npkg\n")
    result = plan(files, registry, ["pip", "install", "-r", "reqs.txt"])
    assert_private(result)
    assert door(result).file_copies == ()
    assert result.command == ["uv", "pip", "install", "-r", "reqs.txt"]


def test_compile_reads_its_source_files(files: Files, registry: Registry) -> None:
    files.write("in/reqs.in", f"-i {PRIVATE}\npkg\n")
    result = plan(files, registry, ["pip", "compile", "in/reqs.in"])
    assert_private(result)


@pytest.mark.parametrize(
    ("config", "environ", "public"),
    [
        (f'index-url = "{MIRROR}"\n', {"UV_DEFAULT_INDEX": PRIVATE}, MIRROR),
        (f'[[index]]\nurl = "{MIRROR}"\ndefault = true\n', {"UV_INDEX_URL": PRIVATE}, MIRROR),
        ("", {"UV_DEFAULT_INDEX": f"corp={PRIVATE}", "UV_INDEX_URL": MIRROR}, MIRROR),
    ],
)
def test_configured_unregistered_index_becomes_public(
    files: Files, registry: Registry, config: str, environ: dict[str, str], public: str
) -> None:
    files.write("uv.toml", config)
    result = plan(files, registry, ["pip", "install", "pkg"], environ)
    assert_private(result)
    assert door(result).public_url == public


def test_pip_table_beats_top_level(files: Files, registry: Registry) -> None:
    files.write("uv.toml", f'index-url = "{PRIVATE}"\n[pip]\nindex-url = "{MIRROR}"\n')
    assert isinstance(plan(files, registry, ["pip", "install", "pkg"]).mode, Unchanged)


def test_project_config_beats_user_config(files: Files, registry: Registry) -> None:
    files.write("uv.toml", f'index-url = "{MIRROR}"\n')
    files.write(files.root / "home/.config/uv/uv.toml", f'index-url = "{PRIVATE}"\n')
    assert isinstance(plan(files, registry, ["pip", "install", "pkg"]).mode, Unchanged)


def test_workspace_member_config_is_ignored_for_the_root(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml",
        f'[project]\nname = "root"\n[tool.uv.workspace]\nmembers = ["packages/*"]\n'
        f'[tool.uv]\nindex-url = "{PRIVATE}"\n',
    )
    files.write(
        "packages/member/pyproject.toml",
        f'[project]\nname = "member"\n[tool.uv]\nindex-url = "{MIRROR}"\n',
    )
    result = plan_uv_pip(
        ["pip", "install", "pkg"],
        registry=registry,
        environ={},
        cwd=files.root / "work" / "packages" / "member",
        home=files.root / "home",
        read_text=files,
    )
    assert_private(result)


def test_directory_option_moves_discovery_and_file_paths(files: Files, registry: Registry) -> None:
    files.write("proj/uv.toml", f'index-url = "{PRIVATE}"\n')
    files.write("proj/reqs.txt", f"--extra-index-url {MIRROR}\n")
    argv = ["pip", "install", "--directory", "proj", "-r", "reqs.txt"]
    with pytest.raises(RejectedSettingError, match=r"requirements file reqs\.txt line 1"):
        plan(files, registry, argv)


# --- running uv unchanged ---------------------------------------------------------------


def test_no_registered_index_runs_uv_unchanged(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "--extra-index-url", MIRROR, "pkg"]
    result = plan(files, registry, argv, {"UV_INDEX_URL": MIRROR})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", *argv]
    assert result.notes == ["no registered index in play; running uv unchanged"]


@pytest.mark.parametrize(
    "argv",
    [
        ["pip", "list", "--outdated", "-i", "https://unknown.example/simple"],
        ["pip", "freeze"],
        ["pip", "show", "pkg"],
        ["pip", "uninstall", "pkg"],
        ["pip", "tree"],
        ["pip", "check"],
        ["pip", "install", "--help", "--extra-index-url", MIRROR],
        ["pip"],
    ],
)
def test_commands_without_an_index_pass_through(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    result = plan(files, registry, argv, {"UV_EXTRA_INDEX_URL": MIRROR})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", *argv]
    assert result.notes == []


def test_no_index_runs_uv_unchanged(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "--no-index", "-i", PRIVATE, "-f", "wheels", "pkg"]
    result = plan(files, registry, argv)
    assert isinstance(result.mode, Unchanged)
    assert result.notes == [
        "--no-index on the command line: uv uses no index; running uv unchanged"
    ]


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["pip", "install", "--no-config", "pkg"], {}),
        (["--no-config", "pip", "install", "pkg"], {}),
        (["pip", "install", "pkg"], {"UV_NO_CONFIG": "1"}),
        (["pip", "install", "--isolated", "pkg"], {}),
    ],
)
def test_no_config_ignores_config_files(
    files: Files, registry: Registry, argv: list[str], environ: dict[str, str]
) -> None:
    files.write("uv.toml", f'index-url = "{PRIVATE}"\nextra-index-url = ["{MIRROR}"]\n')
    files.write(files.root / "home/.config/uv/uv.toml", f'index-url = "{PRIVATE}"\n')
    result = plan(files, registry, argv, environ)
    assert isinstance(result.mode, Unchanged)


# --- mistakes -------------------------------------------------------------------------


def test_unknown_command_line_index_suggests_the_closest(files: Files, registry: Registry) -> None:
    with pytest.raises(UnknownIndexError) as caught:
        plan(files, registry, ["pip", "install", "--default-index", "https://private.example/"])
    assert str(caught.value) == (
        "https://private.example/ is not a registered index "
        "(did you mean https://private.example/simple/?); register it with "
        "`crane index register https://private.example/ ...`"
    )


def test_two_registered_indexes_in_one_run(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"-i {OTHER}\npkg\n")
    with pytest.raises(ConfigError, match="uv would use two registered indexes"):
        plan(files, registry, ["pip", "install", "-i", PRIVATE, "-r", "reqs.txt"])


def test_unparsable_uv_toml_is_named(files: Files, registry: Registry) -> None:
    path = files.write("uv.toml", "index-url = \n")
    with pytest.raises(ConfigError, match=f"uv config file {path}: cannot be parsed"):
        plan(files, registry, ["pip", "install", "-i", PRIVATE, "pkg"])


# --- allowed with a single index -------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--index-strategy", "unsafe-best-match"],
        ["--index-strategy=unsafe-first-match"],
        ["-f", "wheels"],
        ["--find-links", "local/dist-1.0-py3-none-any.whl"],
    ],
)
def test_single_index_options_are_allowed(
    files: Files, registry: Registry, extra: list[str]
) -> None:
    result = plan(files, registry, ["pip", "install", "-i", PRIVATE, *extra, "pkg"])
    assert_private(result)
    assert result.command == ["uv", "pip", "install", *extra, "pkg"]


def test_explicit_and_flat_indexes_are_allowed(files: Files, registry: Registry) -> None:
    files.write(
        "uv.toml",
        '[[index]]\nname = "torch"\nurl = "https://torch.example/whl/"\nexplicit = true\n'
        '[[index]]\nurl = "./wheels"\nformat = "flat"\n',
    )
    assert_private(plan(files, registry, ["pip", "install", "-i", PRIVATE, "pkg"]))


FIND_LINKS_WHY = (
    "a find-links page (remote, or a local HTML file) is an index in disguise and could "
    "shadow private projects; use a local directory, or publish the files to the private index"
)
LINKS = "https://files.example/links/"


def test_remote_find_links_on_the_command_line(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "-i", PRIVATE, "-f", LINKS, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"command line: --find-links {LINKS} is not allowed under crane: {FIND_LINKS_WHY}"
    )


def test_remote_find_links_in_the_environment(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv, {"UV_FIND_LINKS": f"./local,{LINKS}"}) == (
        f"environment variable UV_FIND_LINKS: find-links {LINKS} is not allowed under crane: "
        f"{FIND_LINKS_WHY}"
    )


def test_remote_find_links_and_flat_index_in_uv_toml(files: Files, registry: Registry) -> None:
    path = files.write("uv.toml", f'find-links = ["{LINKS}"]\n')
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: find-links {LINKS} is not allowed under crane: {FIND_LINKS_WHY}"
    )
    path.write_text(f'[[index]]\nurl = "{LINKS}"\nformat = "flat"\n')
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: [[index]]: flat index {LINKS} is not allowed under crane: "
        f"{FIND_LINKS_WHY}"
    )


# --- rejections: one per place ---------------------------------------------------------


def _rejected(
    files: Files, registry: Registry, argv: list[str], environ: dict[str, str] | None = None
) -> str:
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, argv, environ)
    return str(caught.value)


def test_extra_index_url_on_command_line(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "-i", PRIVATE, "--extra-index-url", MIRROR, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"command line: --extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_index_on_command_line(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "-i", PRIVATE, f"--index=mirror={MIRROR}", "pkg"]
    assert _rejected(files, registry, argv) == (
        f"command line: --index is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_url_in_environment(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv, {"UV_EXTRA_INDEX_URL": MIRROR}) == (
        "environment variable UV_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_index_in_environment(files: Files, registry: Registry) -> None:
    argv = ["pip", "install", "pkg"]
    environ = {"UV_DEFAULT_INDEX": PRIVATE, "UV_INDEX": f"mirror={MIRROR}"}
    assert _rejected(files, registry, argv, environ) == (
        f"environment variable UV_INDEX: index is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_url_in_uv_toml(files: Files, registry: Registry) -> None:
    path = files.write("uv.toml", f'extra-index-url = ["{MIRROR}"]\n')
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_url_in_pip_table_of_pyproject(files: Files, registry: Registry) -> None:
    path = files.write("pyproject.toml", f'[tool.uv.pip]\nextra-index-url = ["{MIRROR}"]\n')
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: [tool.uv.pip]: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_non_default_index_entry_in_config(files: Files, registry: Registry) -> None:
    path = files.write(files.root / "home/.config/uv/uv.toml", f'[[index]]\nurl = "{MIRROR}"\n')
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: [[index]]: index {MIRROR} without default = true is not "
        f"allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_in_requirements_file(files: Files, registry: Registry) -> None:
    files.write("reqs/base.txt", f"pkg\n\n--extra-index-url={MIRROR}\n")
    argv = ["pip", "install", "-i", PRIVATE, "-r", "reqs/base.txt"]
    assert _rejected(files, registry, argv) == (
        "requirements file reqs/base.txt line 3: --extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_foreign_index_in_requirements_file(files: Files, registry: Registry) -> None:
    files.write("constraints.txt", f"--index-url {MIRROR}\n")
    argv = ["pip", "install", "-i", PRIVATE, "pkg"]
    assert _rejected(files, registry, argv, {"UV_CONSTRAINT": "constraints.txt"}) == (
        f"requirements file constraints.txt line 1: --index-url {MIRROR} is not allowed under "
        f"crane: {FOREIGN_WHY}"
    )


@pytest.mark.parametrize("option", ["--emit-index-url", "--emit-index-annotation"])
def test_compile_output_that_would_record_the_proxy(
    files: Files, registry: Registry, option: str
) -> None:
    files.write("in.txt", "pkg\n")
    argv = ["pip", "compile", "-i", PRIVATE, option, "in.txt"]
    assert _rejected(files, registry, argv) == (
        f"command line: {option} is not allowed under crane: {EMIT_WHY}"
    )


def test_compile_note_about_the_header(files: Files, registry: Registry) -> None:
    files.write("in.txt", "pkg\n")
    result = plan(files, registry, ["pip", "compile", "-i", PRIVATE, "in.txt"])
    assert result.notes == [
        "the output's header shows the command without its index option; "
        "use --custom-compile-command to record another"
    ]


@pytest.mark.parametrize("spelling", [["-i", PRIVATE], ["--index-url", PRIVATE], [f"-i{PRIVATE}"]])
def test_a_private_index_uv_would_ignore_is_an_error(
    files: Files, registry: Registry, spelling: list[str]
) -> None:
    # uv: --default-index / UV_DEFAULT_INDEX beats -i; crane must not run uv without the
    # private index the user asked for.
    with pytest.raises(ConfigError) as caught:
        plan(files, registry, ["pip", "install", *spelling, "pkg"], {"UV_DEFAULT_INDEX": MIRROR})
    assert str(caught.value) == (
        f"environment variable UV_DEFAULT_INDEX ({MIRROR}) overrides the private index "
        f"{PRIVATE} given on the command line: uv would not use the private index; unset "
        "it, or give the private index there"
    )


def test_the_private_index_as_the_default_index_is_in_play(
    files: Files, registry: Registry
) -> None:
    result = plan(files, registry, ["pip", "install", "pkg"], {"UV_DEFAULT_INDEX": PRIVATE})
    assert isinstance(result.mode, IndexDoorMode)


@pytest.mark.parametrize("page", ["local/links.html", "./index.HTM", "/abs/links.html"])
def test_a_local_find_links_page_is_refused_like_a_remote_one(
    files: Files, registry: Registry, page: str
) -> None:
    # pip parses a local HTML file like a remote page, and follows its links anywhere.
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, ["pip", "install", "-i", PRIVATE, "-f", page, "pkg"])
    assert str(caught.value) == (
        f"command line: --find-links {page} is not allowed under crane: {FIND_LINKS_WHY}"
    )


def test_a_scripts_inline_settings_are_judged_like_a_config_file(
    files: Files, registry: Registry
) -> None:
    files.write(
        "s.py",
        f'# /// script\n# dependencies = ["pkg"]\n# [tool.uv]\n# extra-index-url = ["{MIRROR}"]\n'
        "# ///\n",
    )
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, ["pip", "install", "-i", PRIVATE, "-r", "s.py"])
    assert str(caught.value).endswith(
        "s.py: [tool.uv]: extra-index-url is not allowed under crane: projects could come "
        "from another index and bypass private-first routing"
    )
