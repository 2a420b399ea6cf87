"""`plan_uv_tool`: `crane uv tool install|run|upgrade` and `crane uvx` behind the index door.

Every file uv could read goes through `Files`: real files below tmp_path (the tool
directory and its receipts among them), plus fake system files, so nothing on the machine
running the tests is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import ConfigError, RejectedSettingError, UnknownIndexError, UsageError
from crane_launch.launch.plan import IndexDoorMode, Plan, RecordedUrls, Unchanged
from crane_launch.launch.uv_tool import plan_uv_tool, read_tool_command_line, tool_directory
from tests.launch.fakefiles import Files
from tests.launch.registries import registry_of

PRIVATE = "https://private.example/simple/"
OTHER = "https://other.example/simple/"
MIRROR = "https://mirror.example/simple/"

EXTRA_WHY = "projects could come from another index and bypass private-first routing"
NO_INDEX_NOTE = "this uv tool command uses no index"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, PRIVATE, OTHER)


def plan(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    *,
    executable: str = "uv",
) -> Plan:
    return plan_uv_tool(
        list(argv),
        registry=registry,
        environ=dict(environ or {}),
        cwd=files.root / "work",
        home=files.root / "home",
        executable=executable,
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


def tools(files: Files) -> Path:
    """uv's default tool directory under the fake home."""
    return files.root / "home" / ".local" / "share" / "uv" / "tools"


def receipt(files: Files, name: str, options: str) -> Path:
    """Write the receipt of tool `name` with `options` as its `[tool.options]` table."""
    text = f'[tool]\nrequirements = [{{ name = "{name}" }}]\n\n[tool.options]\n{options}'
    return files.write(tools(files) / name / "uv-receipt.toml", text)


def _rejected(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> str:
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, argv, environ)
    return str(caught.value)


# --- where the index comes from -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["tool", "install", "--index-url", PRIVATE, "corp-cli"], ["tool", "install", "corp-cli"]),
        (
            ["tool", "install", f"--index-url={PRIVATE}", "corp-cli"],
            ["tool", "install", "corp-cli"],
        ),
        (["tool", "install", "-i", PRIVATE, "corp-cli"], ["tool", "install", "corp-cli"]),
        (["tool", "install", f"-i{PRIVATE}", "corp-cli"], ["tool", "install", "corp-cli"]),
        (["tool", "install", f"-i={PRIVATE}", "corp-cli"], ["tool", "install", "corp-cli"]),
        (
            ["tool", "install", "--default-index", PRIVATE, "corp-cli"],
            ["tool", "install", "corp-cli"],
        ),
        (
            ["tool", "install", f"--default-index=corp={PRIVATE}", "corp-cli"],
            ["tool", "install", "corp-cli"],
        ),
        (["tool", "install", "--index", PRIVATE, "corp-cli"], ["tool", "install", "corp-cli"]),
        (
            ["tool", "install", f"--index=corp={PRIVATE}", "corp-cli"],
            ["tool", "install", "corp-cli"],
        ),
        (["tool", "install", "corp-cli", "-i", PRIVATE], ["tool", "install", "corp-cli"]),
        (
            ["tool", "install", "--force", "-i", PRIVATE, "--with", "extra", "corp-cli"],
            ["tool", "install", "--force", "--with", "extra", "corp-cli"],
        ),
        (["tool", "run", "-i", PRIVATE, "corp-cli"], ["tool", "run", "corp-cli"]),
        (["tool", "run", "--index", PRIVATE, "corp-cli"], ["tool", "run", "corp-cli"]),
        (
            ["tool", "run", "--from", "corp-cli", "--default-index", PRIVATE, "corp"],
            ["tool", "run", "--from", "corp-cli", "corp"],
        ),
        (["tool", "upgrade", "--index-url", PRIVATE, "corp-cli"], ["tool", "upgrade", "corp-cli"]),
        (["tool", "upgrade", "--index", PRIVATE, "--all"], ["tool", "upgrade", "--all"]),
        (
            ["--no-progress", "tool", "install", "-i", PRIVATE, "corp-cli"],
            ["--no-progress", "tool", "install", "corp-cli"],
        ),
        (
            ["--cache-dir", "cache", "tool", "install", "-i", PRIVATE, "corp-cli"],
            ["--cache-dir", "cache", "tool", "install", "corp-cli"],
        ),
    ],
)
def test_command_line_index_is_taken_out_of_argv(
    files: Files, registry: Registry, argv: list[str], command: list[str]
) -> None:
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == ["uv", *command]
    assert result.tool == "uv"
    assert door(result).public_url == builtin_public_index()
    assert door(result).env_unset == frozenset()


@pytest.mark.parametrize("command", ["install", "run", "upgrade"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("UV_DEFAULT_INDEX", PRIVATE),
        ("UV_DEFAULT_INDEX", f"corp={PRIVATE}"),
        ("UV_INDEX_URL", PRIVATE),
        ("UV_INDEX", PRIVATE),
        ("UV_INDEX", f"corp={PRIVATE}"),
    ],
)
def test_index_from_environment_is_unset_for_the_child(
    files: Files, registry: Registry, command: str, variable: str, value: str
) -> None:
    result = plan(files, registry, ["tool", command, "corp-cli"], {variable: value})
    assert_private(result)
    assert result.command == ["uv", "tool", command, "corp-cli"]
    assert door(result).env_unset == {variable}


def test_every_index_variable_set_is_unset(files: Files, registry: Registry) -> None:
    environ = {"UV_DEFAULT_INDEX": PRIVATE, "UV_INDEX_URL": PRIVATE, "UV_INDEX": PRIVATE}
    result = plan(files, registry, ["tool", "install", "-i", PRIVATE, "corp-cli"], environ)
    assert_private(result)
    assert door(result).env_unset == {"UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX"}


def test_default_index_variable_beats_the_command_lines_index_url(
    files: Files, registry: Registry
) -> None:
    # uv: --default-index (UV_DEFAULT_INDEX) beats --index-url; the private index would
    # be ignored, which crane refuses to run.
    with pytest.raises(ConfigError, match="uv would not use the private index"):
        plan(files, registry, ["tool", "install", "-i", PRIVATE, "x"], {"UV_DEFAULT_INDEX": MIRROR})


def test_unregistered_default_index_becomes_the_public_index(
    files: Files, registry: Registry
) -> None:
    result = plan(
        files,
        registry,
        ["tool", "install", "corp-cli"],
        {"UV_INDEX": PRIVATE, "UV_DEFAULT_INDEX": MIRROR},
    )
    assert_private(result)
    assert door(result).public_url == MIRROR
    assert door(result).env_unset == {"UV_INDEX", "UV_DEFAULT_INDEX"}


def test_unknown_command_line_index_suggests_the_closest(files: Files, registry: Registry) -> None:
    with pytest.raises(UnknownIndexError, match=r"did you mean https://private\.example/simple/"):
        plan(files, registry, ["tool", "install", "-i", "https://private.example/", "x"])


# --- the tool's receipts ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["install", "upgrade"])
def test_install_and_upgrade_record_the_receipts(
    files: Files, registry: Registry, command: str
) -> None:
    result = plan(files, registry, ["tool", command, "-i", PRIVATE, "corp-cli"])
    assert door(result).recorded == (RecordedUrls(tools(files), "*/uv-receipt.toml"),)


def test_run_records_no_receipt(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["tool", "run", "-i", PRIVATE, "corp-cli"])
    assert_private(result)
    assert door(result).recorded == ()


def test_receipts_are_recorded_in_the_tool_directory_variable(
    files: Files, registry: Registry
) -> None:
    result = plan(
        files, registry, ["tool", "install", "-i", PRIVATE, "corp-cli"], {"UV_TOOL_DIR": "mytools"}
    )
    assert door(result).recorded == (
        RecordedUrls(files.root / "work" / "mytools", "*/uv-receipt.toml"),
    )


@pytest.mark.parametrize(
    "options",
    [
        f'index = [{{ url = "{PRIVATE}", default = true }}]\n',
        f'index = [{{ name = "corp", url = "{PRIVATE}" }}]\n',
        f'index-url = "{PRIVATE}"\n',
        'index = [{ url = "https://PRIVATE.example/simple", default = true }]\n',
    ],
)
def test_upgrade_reads_the_private_index_from_the_receipt(
    files: Files, registry: Registry, options: str
) -> None:
    receipt(files, "corp-cli", options)
    result = plan(files, registry, ["tool", "upgrade", "corp-cli"])
    assert_private(result)
    assert result.command == ["uv", "tool", "upgrade", "corp-cli"]
    only = frozenset({"corp-cli"})  # the receipt brought the index in: it alone gets it
    assert door(result).recorded == (RecordedUrls(tools(files), "*/uv-receipt.toml", only),)


def test_upgrade_all_gives_the_private_index_only_to_the_tools_that_had_it(
    files: Files, registry: Registry
) -> None:
    """`uv tool upgrade --all` writes the run's default index (the door) into every receipt
    it rewrites; a tool that came from elsewhere must not be left naming the private index."""
    receipt(files, "corp-cli", f'index-url = "{PRIVATE}"\n')
    receipt(files, "ruff", 'index-url = "https://pub.example/simple/"\n')
    result = plan(files, registry, ["tool", "upgrade", "--all"])
    (recorded,) = door(result).recorded
    assert recorded.only == frozenset({"corp-cli"})
    named = plan(files, registry, ["tool", "upgrade", "--all", "-i", PRIVATE])
    assert door(named).recorded[0].only is None  # the user named it: uv records it everywhere


def test_upgrade_finds_the_receipt_under_the_normalised_name(
    files: Files, registry: Registry
) -> None:
    receipt(files, "corp-cli", f'index-url = "{PRIVATE}"\n')
    assert_private(plan(files, registry, ["tool", "upgrade", "Corp_CLI"]))


def test_upgrade_all_reads_every_receipt(files: Files, registry: Registry) -> None:
    receipt(files, "black", "")
    receipt(files, "corp-cli", f'index-url = "{PRIVATE}"\n')
    assert_private(plan(files, registry, ["tool", "upgrade", "--all"]))


def test_upgrade_reads_receipts_in_the_tool_directory_variable(
    files: Files, registry: Registry
) -> None:
    files.write("mytools/corp-cli/uv-receipt.toml", f'[tool.options]\nindex-url = "{PRIVATE}"\n')
    result = plan(files, registry, ["tool", "upgrade", "corp-cli"], {"UV_TOOL_DIR": "mytools"})
    assert_private(result)


def test_upgrade_of_another_tool_ignores_the_receipt(files: Files, registry: Registry) -> None:
    receipt(files, "corp-cli", f'index-url = "{PRIVATE}"\n')
    result = plan(files, registry, ["tool", "upgrade", "black"])
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", "tool", "upgrade", "black"]


@pytest.mark.parametrize("command", ["install", "run"])
def test_only_upgrade_reads_the_receipt(files: Files, registry: Registry, command: str) -> None:
    receipt(files, "corp-cli", f'index-url = "{PRIVATE}"\n')
    assert isinstance(plan(files, registry, ["tool", command, "corp-cli"]).mode, Unchanged)


def test_the_command_line_beats_the_receipt(files: Files, registry: Registry) -> None:
    receipt(files, "corp-cli", f'index-url = "{MIRROR}"\n')
    result = plan(files, registry, ["tool", "upgrade", "-i", PRIVATE, "corp-cli"])
    assert_private(result)
    assert door(result).public_url == MIRROR


@pytest.mark.parametrize(
    "options",
    [
        f'index-url = "{PRIVATE}"\nextra-index-url = ["{MIRROR}"]\n',
        f'index-url = "{PRIVATE}"\nindex = [{{ name = "mirror", url = "{MIRROR}" }}]\n',
    ],
)
def test_upgrade_refuses_an_unregistered_extra_index_of_the_receipt(
    files: Files, registry: Registry, options: str
) -> None:
    path = receipt(files, "corp-cli", options)
    assert _rejected(files, registry, ["tool", "upgrade", "corp-cli"]) == (
        f"uv tool receipt {path}: index {MIRROR} searched before the default index is not "
        f"allowed under crane: {EXTRA_WHY}"
    )


def test_explicit_and_flat_indexes_of_the_receipt_are_allowed(
    files: Files, registry: Registry
) -> None:
    receipt(
        files,
        "corp-cli",
        f'index-url = "{PRIVATE}"\n'
        f'index = [{{ name = "torch", url = "{MIRROR}", explicit = true }},'
        ' { url = "./wheels", format = "flat" }]\n',
    )
    assert_private(plan(files, registry, ["tool", "upgrade", "corp-cli"]))


def test_a_broken_receipt_is_left_to_uv(files: Files, registry: Registry) -> None:
    files.write(tools(files) / "corp-cli" / "uv-receipt.toml", "[tool\n")
    result = plan(files, registry, ["tool", "upgrade", "corp-cli"])
    assert isinstance(result.mode, Unchanged)


# --- uvx -----------------------------------------------------------------------------


def test_uvx_runs_as_uvx_without_the_index_option(files: Files, registry: Registry) -> None:
    argv = ["tool", "run", "-i", PRIVATE, "--from", "corp-cli", "corp", "check", "."]
    result = plan(files, registry, argv, executable="uvx")
    assert_private(result)
    assert result.command == ["uvx", "--from", "corp-cli", "corp", "check", "."]
    assert door(result).recorded == ()


def test_uvx_with_an_index_from_the_environment(files: Files, registry: Registry) -> None:
    result = plan(
        files, registry, ["tool", "run", "ruff"], {"UV_INDEX_URL": PRIVATE}, executable="uvx"
    )
    assert_private(result)
    assert result.command == ["uvx", "ruff"]
    assert door(result).env_unset == {"UV_INDEX_URL"}


@pytest.mark.parametrize(
    "argv",
    [
        ["tool", "run", "ruff", "check"],
        ["tool", "run", "--help"],
        ["tool", "run", "-V"],
    ],
)
def test_uvx_without_an_index_runs_unchanged_without_a_note(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    result = plan(files, registry, argv, executable="uvx")
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uvx", *argv[2:]]


# --- the command's own arguments (`run`) --------------------------------------------------


@pytest.mark.parametrize("executable", ["uv", "uvx"])
def test_options_after_the_command_belong_to_it(
    files: Files, registry: Registry, executable: str
) -> None:
    after = ["--index-url", MIRROR, "--extra-index-url", MIRROR, f"--index={MIRROR}", "-i", OTHER]
    argv = ["tool", "run", "-i", PRIVATE, "corp", *after]
    result = plan(files, registry, argv, executable=executable)
    assert_private(result)
    shown = ["uv", "tool", "run"] if executable == "uv" else ["uvx"]
    assert result.command == [*shown, "corp", *after]


def test_an_index_given_only_to_the_command_is_not_uvs(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["tool", "run", "corp", "--index-url", PRIVATE])
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", "tool", "run", "corp", "--index-url", PRIVATE]


WHEEL = "x @ https://files.example/x-1.0-py3-none-any.whl"


def test_the_commands_arguments_are_not_requirements(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"--extra-index-url {MIRROR}\npkg\n")
    argv = ["tool", "run", "-i", PRIVATE, "corp", "--with-requirements", "reqs.txt", WHEEL]
    result = plan(files, registry, argv)
    assert_private(result)
    assert [r.project for r in door(result).direct_references if r.project] == []


def test_requirements_before_the_command_are_read(files: Files, registry: Registry) -> None:
    argv = ["tool", "run", "-i", PRIVATE, "--with", WHEEL, "corp"]
    result = plan(files, registry, argv)
    assert [r.project for r in door(result).direct_references if r.project] == ["x"]


def test_with_requirements_before_the_command_are_read(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"--extra-index-url {MIRROR}\npkg\n")
    argv = ["tool", "run", "-i", PRIVATE, "--with-requirements", "reqs.txt", "corp"]
    assert _rejected(files, registry, argv) == (
        f"requirements file reqs.txt line 1: --extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_read_tool_command_line_stops_at_the_command_of_run() -> None:
    command_line = read_tool_command_line(
        ["tool", "run", "--from", "corp-cli", "corp", "--index-url", MIRROR, "arg"]
    )
    assert command_line is not None
    assert command_line.command == "run"
    assert command_line.last("--from") == "corp-cli"
    assert command_line.last("--index-url") is None
    assert command_line.targets == ("corp",)


def test_read_tool_command_line_of_install_reads_every_argument() -> None:
    command_line = read_tool_command_line(["tool", "install", "corp-cli", "-i", PRIVATE, "x"])
    assert command_line is not None
    assert command_line.command == "install"
    assert command_line.last("--index-url") == PRIVATE
    assert command_line.targets == ("corp-cli", "x")


@pytest.mark.parametrize(
    "argv",
    [
        ["tool", "list"],
        ["tool", "dir"],
        ["tool", "--help"],
        ["tool", "install", "--help", "corp-cli"],
        ["pip", "install", "pkg"],
        ["--version"],
    ],
)
def test_read_tool_command_line_is_none_without_an_index(argv: list[str]) -> None:
    assert read_tool_command_line(argv) is None


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["install", "run", "upgrade"])
def test_extra_index_url_on_the_command_line(
    files: Files, registry: Registry, command: str
) -> None:
    argv = ["tool", command, "-i", PRIVATE, "--extra-index-url", MIRROR, "corp-cli"]
    assert _rejected(files, registry, argv) == (
        f"command line: --extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


@pytest.mark.parametrize("spelling", [["--index", MIRROR], [f"--index=mirror={MIRROR}"]])
def test_unregistered_index_on_the_command_line(
    files: Files, registry: Registry, spelling: list[str]
) -> None:
    argv = ["tool", "install", "-i", PRIVATE, *spelling, "corp-cli"]
    assert _rejected(files, registry, argv) == (
        f"command line: --index {MIRROR} is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_url_in_the_environment(files: Files, registry: Registry) -> None:
    argv = ["tool", "install", "-i", PRIVATE, "corp-cli"]
    assert _rejected(files, registry, argv, {"UV_EXTRA_INDEX_URL": MIRROR}) == (
        "environment variable UV_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_unregistered_index_in_the_environment(files: Files, registry: Registry) -> None:
    argv = ["tool", "install", "-i", PRIVATE, "corp-cli"]
    assert _rejected(files, registry, argv, {"UV_INDEX": f"mirror={MIRROR}"}) == (
        f"environment variable UV_INDEX: index {MIRROR} is not allowed under crane: {EXTRA_WHY}"
    )


def test_remote_find_links_on_the_command_line(files: Files, registry: Registry) -> None:
    links = "https://files.example/links/"
    argv = ["tool", "install", "-i", PRIVATE, "-f", links, "corp-cli"]
    with pytest.raises(RejectedSettingError, match=f"command line: --find-links {links} is not"):
        plan(files, registry, argv)


# --- settings files: the user's, never the project's -------------------------------------


USER_UV_TOML = "home/.config/uv/uv.toml"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("uv.toml", f'index-url = "{PRIVATE}"\nextra-index-url = ["{MIRROR}"]\n'),
        ("pyproject.toml", f'[tool.uv]\nindex-url = "{PRIVATE}"\nextra-index-url = ["{MIRROR}"]\n'),
    ],
)
def test_the_projects_settings_are_ignored(
    files: Files, registry: Registry, name: str, text: str
) -> None:
    files.write(name, text)
    assert isinstance(plan(files, registry, ["tool", "install", "corp-cli"]).mode, Unchanged)
    assert_private(plan(files, registry, ["tool", "install", "-i", PRIVATE, "corp-cli"]))


@pytest.mark.parametrize(
    "text",
    [
        f'index-url = "{PRIVATE}"\n',
        f'[[index]]\nurl = "{PRIVATE}"\ndefault = true\n',
        f'[[index]]\nname = "corp"\nurl = "{PRIVATE}"\n',
    ],
)
def test_the_user_settings_bring_the_private_index_in(
    files: Files, registry: Registry, text: str
) -> None:
    files.write(files.root / USER_UV_TOML, text)
    result = plan(files, registry, ["tool", "install", "corp-cli"])
    assert_private(result)
    assert result.command == ["uv", "tool", "install", "corp-cli"]


def test_the_user_settings_under_xdg_config_home(files: Files, registry: Registry) -> None:
    files.write(files.root / "xdg/uv/uv.toml", f'index-url = "{PRIVATE}"\n')
    environ = {"XDG_CONFIG_HOME": str(files.root / "xdg")}
    assert_private(plan(files, registry, ["tool", "install", "corp-cli"], environ))


def test_the_system_settings_bring_the_private_index_in(files: Files, registry: Registry) -> None:
    files.write("/etc/uv/uv.toml", f'index-url = "{PRIVATE}"\n')
    assert_private(plan(files, registry, ["tool", "install", "corp-cli"]))


def test_the_pip_table_of_the_user_settings_is_ignored(files: Files, registry: Registry) -> None:
    files.write(files.root / USER_UV_TOML, f'[pip]\nindex-url = "{PRIVATE}"\n')
    assert isinstance(plan(files, registry, ["tool", "install", "corp-cli"]).mode, Unchanged)


def test_config_file_option_replaces_the_user_settings(files: Files, registry: Registry) -> None:
    files.write(files.root / USER_UV_TOML, f'extra-index-url = ["{MIRROR}"]\n')
    files.write("own.toml", f'index-url = "{PRIVATE}"\n')
    argv = ["tool", "install", "--config-file", "own.toml", "corp-cli"]
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == ["uv", *argv]


@pytest.mark.parametrize(
    ("argv", "environ"),
    [
        (["tool", "install", "--no-config", "corp-cli"], {}),
        (["tool", "install", "corp-cli"], {"UV_NO_CONFIG": "1"}),
    ],
)
def test_no_config_ignores_the_user_settings(
    files: Files, registry: Registry, argv: list[str], environ: dict[str, str]
) -> None:
    files.write(files.root / USER_UV_TOML, f'index-url = "{PRIVATE}"\n')
    assert isinstance(plan(files, registry, argv, environ).mode, Unchanged)


def test_extra_index_url_in_the_user_settings(files: Files, registry: Registry) -> None:
    path = files.write(
        files.root / USER_UV_TOML, f'index-url = "{PRIVATE}"\nextra-index-url = ["{MIRROR}"]\n'
    )
    assert _rejected(files, registry, ["tool", "install", "corp-cli"]) == (
        f"uv config file {path}: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_unregistered_index_entry_in_the_user_settings(files: Files, registry: Registry) -> None:
    path = files.write(files.root / USER_UV_TOML, f'[[index]]\nurl = "{MIRROR}"\n')
    argv = ["tool", "install", "-i", PRIVATE, "corp-cli"]
    assert _rejected(files, registry, argv) == (
        f"uv config file {path}: [[index]]: index {MIRROR} is not allowed under crane: {EXTRA_WHY}"
    )


# --- running uv unchanged ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["tool", "list"],
        ["tool", "dir"],
        ["tool", "uninstall", "corp-cli"],
        ["tool", "update-shell"],
        ["tool", "install", "--help", "-i", PRIVATE, "corp-cli"],
        ["tool", "install", "-h", "corp-cli"],
        ["tool", "run", "--version"],
        ["--help", "tool", "upgrade", "corp-cli"],
        ["tool"],
    ],
)
def test_commands_without_an_index_run_unchanged(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    environ = {"UV_EXTRA_INDEX_URL": MIRROR, "UV_DEFAULT_INDEX": PRIVATE}
    result = plan(files, registry, argv, environ)
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", *argv]
    assert result.notes == [NO_INDEX_NOTE]


def test_no_registered_index_runs_uv_unchanged(files: Files, registry: Registry) -> None:
    argv = ["tool", "install", "--extra-index-url", MIRROR, "corp-cli"]
    result = plan(files, registry, argv, {"UV_INDEX_URL": MIRROR, "UV_EXTRA_INDEX_URL": MIRROR})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", *argv]
    assert result.notes == ["no registered index in play; running uv unchanged"]


@pytest.mark.parametrize(
    ("argv", "environ", "where"),
    [
        (
            ["tool", "install", "--no-index", "-i", PRIVATE, "corp-cli"],
            {},
            "--no-index on the command line",
        ),
        (
            ["tool", "install", "-i", PRIVATE, "corp-cli"],
            {"UV_NO_INDEX": "1"},
            "UV_NO_INDEX is set",
        ),
    ],
)
def test_no_index_runs_uv_unchanged(
    files: Files, registry: Registry, argv: list[str], environ: dict[str, str], where: str
) -> None:
    result = plan(files, registry, argv, environ)
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["uv", *argv]
    assert result.notes == [f"{where}: uv uses no index; running uv unchanged"]


# --- the tool directory -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"UV_TOOL_DIR": "/opt/tools"}, "/opt/tools"),
        ({"UV_TOOL_DIR": "rel/tools", "XDG_DATA_HOME": "/data"}, "/proj/rel/tools"),
        ({"XDG_DATA_HOME": "/data"}, "/data/uv/tools"),
        ({"XDG_DATA_HOME": "relative"}, "/home/me/.local/share/uv/tools"),
        ({"UV_TOOL_DIR": ""}, "/home/me/.local/share/uv/tools"),
        ({}, "/home/me/.local/share/uv/tools"),
    ],
)
def test_tool_directory(environ: dict[str, str], expected: str) -> None:
    assert tool_directory(environ, Path("/proj"), Path("/home/me")) == Path(expected)


# -- review: options crane does not know ---------------------------------------------------


@pytest.mark.parametrize("unknown", ["--some-new-option", "--another"])
def test_an_unknown_option_before_the_run_target_is_refused(
    files: Files, registry: Registry, unknown: str
) -> None:
    """It might take the next word: crane could not tell the command from uv's options."""
    with pytest.raises(UsageError, match="does not know uv's option"):
        plan(files, registry, ["tool", "run", unknown, "x", "--index-url", PRIVATE, "corp-cli"])
    with pytest.raises(UsageError, match="does not know uv's option"):
        plan(files, registry, ["tool", "run", unknown, "x", "corp-cli"], executable="uvx")


def test_an_unknown_option_with_its_value_attached_is_fine(
    files: Files, registry: Registry
) -> None:
    result = plan(files, registry, ["tool", "run", "--some-new=1", "--index-url", PRIVATE, "c"])
    assert door(result).private.url == PRIVATE


@pytest.mark.parametrize(
    "option", ["--trusted-host", "--prerelease-package", "--config-setting-package", "--excludes"]
)
def test_value_options_the_review_named_are_known(
    files: Files, registry: Registry, option: str
) -> None:
    with pytest.raises(RejectedSettingError):
        plan(
            files,
            registry,
            ["tool", "run", option, "v", "--index-url", PRIVATE, "--extra-index-url", OTHER, "c"],
        )


def test_an_unknown_global_option_before_tool_is_refused(files: Files, registry: Registry) -> None:
    with pytest.raises(UsageError, match="does not know uv's option"):
        plan(files, registry, ["--some-global", "x", "tool", "run", "corp-cli"])
