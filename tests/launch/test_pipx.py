"""`plan_pipx`: `crane pipx install|run|upgrade|inject ...` behind the index door.

Every file pip could read goes through `Files`: real files below tmp_path, plus fake
system files (`/etc/pip.conf`), so nothing on the machine running the tests is read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import RejectedSettingError, UnknownIndexError, UsageError
from crane_launch.launch.pipx import plan_pipx, read_pipx_command_line
from crane_launch.launch.plan import IndexDoorMode, Plan, Unchanged
from tests.launch.fakefiles import Files
from tests.launch.registries import registry_of

PRIVATE = "https://private.example/simple/"
OTHER = "https://other.example/simple/"
MIRROR = "https://mirror.example/simple/"

EXTRA_WHY = "projects could come from another index and bypass private-first routing"
PROXY_WHY = (
    "crane's proxy must be the tool's only way to the index; set HTTPS_PROXY for crane instead"
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, PRIVATE, OTHER)


def plan(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> Plan:
    return plan_pipx(
        list(argv),
        registry=registry,
        environ=dict(environ or {}),
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
    )


def door(result: Plan) -> IndexDoorMode:
    """The plan's index-door mode; fails when pipx would run unchanged."""
    assert isinstance(result.mode, IndexDoorMode)
    return result.mode


def assert_private(result: Plan) -> None:
    mode = door(result)
    assert mode.private.url == PRIVATE
    assert mode.index_env_var == "PIP_INDEX_URL"
    assert "UV_DEFAULT_INDEX" in mode.also_env_vars
    assert mode.file_copies == ()
    assert result.tool == "pipx"


def _rejected(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> str:
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, argv, environ)
    return str(caught.value)


INDEX_SPELLINGS = [
    ["-i", PRIVATE],
    [f"-i{PRIVATE}"],
    ["--index-url", PRIVATE],
    [f"--index-url={PRIVATE}"],
    ["--index", PRIVATE],
    [f"--index={PRIVATE}"],
    [f"--pip-args=--index-url {PRIVATE}"],
    ["--pip-args", f"-i {PRIVATE}"],
    [f"--pip-args=--index-url={PRIVATE}"],
    [f"--pip=--index-url {PRIVATE}"],
]
COMMANDS = [
    ["install", "corp-cli"],
    ["run", "corp-cli"],
    ["upgrade", "corp-cli"],
    ["inject", "corp-cli", "corp-plugin"],
    ["reinstall", "corp-cli"],
    ["upgrade-all"],
]


# --- the uv backend (pipx's default): the command line stays ---------------------------


@pytest.mark.parametrize("spelling", INDEX_SPELLINGS)
@pytest.mark.parametrize("words", COMMANDS)
def test_index_options_stay_for_the_uv_backend(
    files: Files, registry: Registry, words: list[str], spelling: list[str]
) -> None:
    argv = [words[0], *spelling, *words[1:]]
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == ["pipx", *argv]
    assert door(result).public_url == builtin_public_index()


@pytest.mark.parametrize(
    "argv",
    [
        ["install", "corp-cli", "-i", PRIVATE],
        ["--verbose", "install", "-i", PRIVATE, "corp-cli"],
        ["install", "--backend", "uv", "-i", PRIVATE, "corp-cli"],
    ],
)
def test_index_options_anywhere_before_or_after_the_package(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    result = plan(files, registry, argv, {"PIPX_DEFAULT_BACKEND": "uv"})
    assert_private(result)
    assert result.command == ["pipx", *argv]


def test_the_uv_backend_beats_the_pip_default_backend(files: Files, registry: Registry) -> None:
    argv = ["install", "--backend", "uv", "-i", PRIVATE, "corp-cli"]
    result = plan(files, registry, argv, {"PIPX_DEFAULT_BACKEND": "pip"})
    assert result.command == ["pipx", *argv]


# --- the pip backend: the index options come out ---------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["install", "-i", PRIVATE, "corp-cli"], ["install", "corp-cli"]),
        (["install", f"-i{PRIVATE}", "corp-cli"], ["install", "corp-cli"]),
        (["install", "--index-url", PRIVATE, "corp-cli"], ["install", "corp-cli"]),
        (["install", f"--index={PRIVATE}", "corp-cli"], ["install", "corp-cli"]),
        (["run", "-i", PRIVATE, "corp-cli", "--flag"], ["run", "corp-cli", "--flag"]),
        (["upgrade", "corp-cli", "--index-url", PRIVATE], ["upgrade", "corp-cli"]),
        (
            ["inject", "-i", PRIVATE, "corp-cli", "corp-plugin"],
            ["inject", "corp-cli", "corp-plugin"],
        ),
        (
            ["install", "--pip-args", f"--index-url {PRIVATE} --pre", "corp-cli"],
            ["install", "--pip-args", "--pre", "corp-cli"],
        ),
        (
            ["install", f"--pip-args=--no-cache-dir -i {PRIVATE}", "corp-cli"],
            ["install", "--pip-args=--no-cache-dir", "corp-cli"],
        ),
        (
            ["install", f"--pip-args=--index-url={PRIVATE} --pre", "-i", PRIVATE, "corp-cli"],
            ["install", "--pip-args=--pre", "corp-cli"],
        ),
        (
            ["install", "--pip-args", "--pre", "-i", PRIVATE, "corp-cli"],
            ["install", "--pip-args", "--pre", "corp-cli"],
        ),
    ],
)
@pytest.mark.parametrize(
    ("backend_option", "environ"),
    [
        (["--backend", "pip"], {}),
        (["--backend=pip"], {}),
        ([], {"PIPX_DEFAULT_BACKEND": "pip"}),
        ([], {"PIPX_DEFAULT_BACKEND": " PIP "}),
    ],
)
def test_index_options_are_taken_out_for_the_pip_backend(
    files: Files,
    registry: Registry,
    argv: list[str],
    command: list[str],
    backend_option: list[str],
    environ: dict[str, str],
) -> None:
    given = [argv[0], *backend_option, *argv[1:]]
    result = plan(files, registry, given, environ)
    assert_private(result)
    assert result.command == ["pipx", command[0], *backend_option, *command[1:]]
    assert not any("private.example" in arg for arg in result.command)


# --- the index from pip's settings -------------------------------------------------------


def test_index_from_pip_index_url_variable(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install", "corp-cli"], {"PIP_INDEX_URL": PRIVATE})
    assert_private(result)
    assert result.command == ["pipx", "install", "corp-cli"]
    assert "PIP_INDEX_URL" in door(result).env_unset


def test_index_from_the_user_pip_conf(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    assert_private(plan(files, registry, ["install", "corp-cli"]))


def test_pip_config_file_null_ignores_the_user_pip_conf(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    result = plan(files, registry, ["install", "corp-cli"], {"PIP_CONFIG_FILE": "/dev/null"})
    assert isinstance(result.mode, Unchanged)


def test_the_callers_virtual_environment_is_not_pipxs(files: Files, registry: Registry) -> None:
    venv = files.root / "venv"
    files.write(venv / "pip.conf", f"[global]\nextra-index-url = {MIRROR}\n")
    result = plan(files, registry, ["install", "-i", PRIVATE, "x"], {"VIRTUAL_ENV": str(venv)})
    assert_private(result)


@pytest.mark.parametrize("variable", ["UV_INDEX_URL", "UV_DEFAULT_INDEX"])
def test_uvs_index_variables_are_unset(files: Files, registry: Registry, variable: str) -> None:
    result = plan(files, registry, ["install", "-i", PRIVATE, "corp-cli"], {variable: MIRROR})
    assert_private(result)
    assert variable in door(result).env_unset


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pip_args", "setting", "why"),
    [
        (f"--extra-index-url {MIRROR}", "--extra-index-url", EXTRA_WHY),
        (f"--extra-index-url={MIRROR} --pre", "--extra-index-url", EXTRA_WHY),
        ("--proxy http://proxy.example:3128", "--proxy", PROXY_WHY),
    ],
)
def test_pip_args_that_bypass_the_proxy(
    files: Files, registry: Registry, pip_args: str, setting: str, why: str
) -> None:
    argv = ["install", "-i", PRIVATE, "--pip-args", pip_args, "corp-cli"]
    assert _rejected(files, registry, argv) == (
        f"command line: {setting} is not allowed under crane: {why}"
    )


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
        ("UV_EXTRA_INDEX_URL", "extra-index-url"),
        ("UV_INDEX", "index"),
    ],
)
def test_extra_index_variables(files: Files, registry: Registry, variable: str, what: str) -> None:
    argv = ["install", "-i", PRIVATE, "corp-cli"]
    assert _rejected(files, registry, argv, {variable: MIRROR}) == (
        f"environment variable {variable}: {what} is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_in_the_user_uv_toml_for_the_uv_backend(
    files: Files, registry: Registry
) -> None:
    path = files.write(files.root / "home/.config/uv/uv.toml", f'extra-index-url = ["{MIRROR}"]\n')
    assert _rejected(files, registry, ["install", "-i", PRIVATE, "corp-cli"]) == (
        f"uv config file {path}: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_in_the_user_pip_conf(files: Files, registry: Registry) -> None:
    path = files.write(
        files.root / "home/.pip/pip.conf", f"[install]\nextra-index-url = {MIRROR}\n"
    )
    assert _rejected(files, registry, ["install", "-i", PRIVATE, "corp-cli"]) == (
        f"pip config file {path}: [install]: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


@pytest.mark.parametrize("spelling", [["-i", MIRROR], [f"--pip-args=--index-url {MIRROR}"]])
def test_unregistered_index_on_the_command_line(
    files: Files, registry: Registry, spelling: list[str]
) -> None:
    with pytest.raises(UnknownIndexError) as caught:
        plan(files, registry, ["install", *spelling, "corp-cli"])
    assert str(caught.value).startswith(f"{MIRROR} is not a registered index")


def test_ambiguous_abbreviation_is_refused(files: Files, registry: Registry) -> None:
    # --in could be --index-url, --include-deps, --install ...: argparse refuses it, and
    # crane must not guess whether an index was given.
    with pytest.raises(UsageError, match="--in is ambiguous"):
        plan(files, registry, ["install", "--in", PRIVATE, "corp-cli"])


def test_pip_args_that_cannot_be_split(files: Files, registry: Registry) -> None:
    with pytest.raises(UsageError, match="cannot be split like a shell"):
        plan(files, registry, ["install", "--pip-args", "--pre 'unclosed", "corp-cli"])


# --- running pipx unchanged ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["list", "--include-injected"],
        ["uninstall", "corp-cli"],
        ["ensurepath"],
        ["--version"],
        ["install", "--help", "-i", PRIVATE, "corp-cli"],
        ["install", "-h"],
        [],
    ],
)
def test_commands_without_an_index_run_unchanged(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    result = plan(files, registry, argv, {"PIP_EXTRA_INDEX_URL": MIRROR, "PIP_INDEX_URL": PRIVATE})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pipx", *argv]


def test_no_registered_index_runs_pipx_unchanged(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install", "corp-cli"], {"PIP_INDEX_URL": MIRROR})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pipx", "install", "corp-cli"]
    assert result.notes == ["no registered index in play; running pipx unchanged"]


# --- `pipx run` stops at the application ------------------------------------------------


def test_options_after_the_app_are_the_apps(files: Files, registry: Registry) -> None:
    argv = ["run", "corp-cli", "--index-url", MIRROR, "--pip-args", f"--extra-index-url {MIRROR}"]
    result = plan(files, registry, argv)
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pipx", *argv]


APP_ARGS = ["corp-cli", "--index-url", OTHER, "-i", "x"]


@pytest.mark.parametrize(
    ("backend", "command"),
    [
        ("uv", ["run", "--backend", "uv", "-i", PRIVATE, *APP_ARGS]),
        ("pip", ["run", "--backend", "pip", *APP_ARGS]),
    ],
)
def test_the_apps_options_stay_behind_the_door(
    files: Files, registry: Registry, backend: str, command: list[str]
) -> None:
    argv = ["run", "--backend", backend, "-i", PRIVATE, *APP_ARGS]
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == ["pipx", *command]


def test_read_pipx_command_line_of_run() -> None:
    command_line = read_pipx_command_line(["run", "-i", PRIVATE, "corp", "--index-url", MIRROR])
    assert command_line is not None
    assert command_line.command == "run"
    assert command_line.values("--index-url") == [PRIVATE]


@pytest.mark.parametrize("argv", [["list"], ["install", "--help"], ["--version"], []])
def test_read_pipx_command_line_is_none_without_an_index(argv: list[str]) -> None:
    assert read_pipx_command_line(argv) is None


# -- review: what pipx reads that crane first read otherwise --------------------------------


def test_pip_args_in_enclosing_quotes_are_split_as_pipx_splits_them(
    files: Files, registry: Registry
) -> None:
    """pipx takes one pair of enclosing quotes off first; the extra index inside is seen."""
    argv = ["install", f"--pip-args='--index-url {PRIVATE} --extra-index-url {MIRROR}'", "x"]
    assert "extra-index-url" in _rejected(files, registry, argv)


def test_editable_is_a_flag(files: Files, registry: Registry) -> None:
    argv = ["install", "--editable", f"--index-url={PRIVATE}", f"--pip-args=-i {PRIVATE}", "."]
    assert_private(plan(files, registry, argv))


def test_reinstall_all_reuses_what_every_environment_recorded(
    files: Files, registry: Registry
) -> None:
    metadata = json.dumps(
        {
            "main_package": {"pip_args": ["--index-url", PRIVATE]},
            "injected_packages": {"extra": {"pip_args": ["--extra-index-url", MIRROR]}},
        }
    )
    files.write(files.root / "home/.local/share/pipx/venvs/corp-cli/pipx_metadata.json", metadata)
    assert "extra-index-url" in _rejected(files, registry, ["reinstall-all"])


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-i", PRIVATE, "--spec", "corp-shared @ https://pub.example/p/x-1.0.tar.gz", "c"],
        ["install", "-i", PRIVATE, "--preinstall", "corp-shared @ https://pub.example/x.whl", "a"],
        ["install", "-i", PRIVATE, "corp-shared @ https://pub.example/x.whl"],
        ["inject", "-i", PRIVATE, "venv", "corp-shared @ https://pub.example/x.whl"],
    ],
)
def test_what_pipx_installs_is_judged_like_a_command_line(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    """A named URL reaches the runner's check (a private project from elsewhere is refused)."""
    (named,) = [arg for arg in argv if " @ " in arg]
    references = door(plan(files, registry, argv)).direct_references
    assert [(r.project, r.url) for r in references if r.project] == [
        ("corp-shared", named.split(" @ ")[1])
    ]


def _metadata(files: Files, name: str, pip_args: list[str]) -> None:
    path = files.root / f"home/.local/share/pipx/venvs/{name}/pipx_metadata.json"
    files.write(path, json.dumps({"main_package": {"pip_args": pip_args}}))


def test_the_pip_backend_records_the_index_where_pipx_would_have(
    files: Files, registry: Registry
) -> None:
    """With pip, crane takes the index off pipx's command line; the runner records it in
    the metadata the run wrote: any for an index the user gave, only the environments that
    named it for `upgrade-all`, the injected packages only for `inject`."""
    pip = {"PIPX_DEFAULT_BACKEND": "pip"}
    record = door(plan(files, registry, ["install", "-i", PRIVATE, "x"], pip)).pipx_record
    assert record is not None
    assert record.only is None
    assert record.main_package
    assert (
        door(plan(files, registry, ["install", "-i", PRIVATE, "x"], pip)).env_set["PIP_QUIET"]
        == "1"
    )
    inject = door(plan(files, registry, ["inject", "-i", PRIVATE, "v", "y"], pip)).pipx_record
    assert inject is not None
    assert not inject.main_package
    _metadata(files, "corp-cli", ["--index-url", PRIVATE])
    _metadata(files, "ruff", [])
    every = door(plan(files, registry, ["upgrade-all"], pip)).pipx_record
    assert every is not None
    assert every.only == frozenset({"corp-cli"})
    assert door(plan(files, registry, ["install", "-i", PRIVATE, "x"])).pipx_record is None
