"""`plan_pip`: where pip finds its index, and what crane changes for the run.

Every file pip could read goes through `Files`: real files below tmp_path, plus fake
system files (`/etc/pip.conf`), so nothing on the machine running the tests is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import (
    ConfigError,
    RejectedSettingError,
    UnknownIndexError,
    UsageError,
)
from crane_launch.launch.pip import plan_pip
from crane_launch.launch.plan import IndexDoorMode, Plan, Unchanged
from tests.launch.fakefiles import Files
from tests.launch.registries import device_index, registry_of

PRIVATE = "https://private.example/simple/"
OTHER = "https://other.example/simple/"
WITH_PUBLIC = "https://team.example/simple/"
MIRROR = "https://mirror.example/simple/"

EXTRA_WHY = "projects could come from another index and bypass private-first routing"
PROXY_WHY = (
    "crane's proxy must be the tool's only way to the index; set HTTPS_PROXY for crane instead"
)
NO_PROXY_ENV_WHY = (
    "it makes pip ignore the proxy variables through which every request of the tool "
    "passes crane's guard"
)
FOREIGN_WHY = (
    "pip lets a requirements file's index override the command line and the environment, "
    "so it would bypass crane's proxy; register the index or remove the line"
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return registry_of(tmp_path, PRIVATE, OTHER, device_index(WITH_PUBLIC, public_index=MIRROR))


def plan(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    **kwargs: object,
) -> Plan:
    return plan_pip(
        list(argv),
        registry=registry,
        environ=dict(environ or {}),
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
        copy_token="c0ffee",
        **kwargs,  # type: ignore[arg-type]
    )


def door(result: Plan) -> IndexDoorMode:
    """The plan's index-door mode; fails when pip would run unchanged."""
    assert isinstance(result.mode, IndexDoorMode)
    return result.mode


def private_url(result: Plan) -> str | None:
    return result.mode.private.url if isinstance(result.mode, IndexDoorMode) else None


def public_url(result: Plan) -> str:
    return result.mode.public_url if isinstance(result.mode, IndexDoorMode) else ""


def assert_private(result: Plan, url: str = PRIVATE) -> None:
    assert door(result).private.url == url
    assert not any(url.rstrip("/") in arg for arg in result.command)
    assert not any("private.example" in arg for arg in result.command)


# --- where the index comes from -------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["install", "-i", PRIVATE, "pkg"], ["pip", "install", "pkg"]),
        (["install", f"-i{PRIVATE}", "pkg"], ["pip", "install", "pkg"]),
        (["install", "--index-url", PRIVATE, "pkg"], ["pip", "install", "pkg"]),
        (["install", f"--index-url={PRIVATE}", "pkg"], ["pip", "install", "pkg"]),
        (["install", "--index", PRIVATE, "pkg"], ["pip", "install", "pkg"]),
        (["install", f"--ind={PRIVATE}", "pkg"], ["pip", "install", "pkg"]),
        (["install", "--pypi-url", PRIVATE, "pkg"], ["pip", "install", "pkg"]),
        (["install", "-Ui", PRIVATE, "pkg"], ["pip", "install", "-U", "pkg"]),
        (["install", "pkg", "-i", "https://PRIVATE.example/simple"], ["pip", "install", "pkg"]),
        (["download", "-d", "out", "-i", PRIVATE, "pkg"], ["pip", "download", "-d", "out", "pkg"]),
        (["wheel", "-i", PRIVATE, "pkg"], ["pip", "wheel", "pkg"]),
        (["index", "versions", "-i", PRIVATE, "pkg"], ["pip", "index", "versions", "pkg"]),
        (["lock", "-i", PRIVATE, "pkg"], ["pip", "lock", "pkg"]),
        (
            ["-v", "--require-virtualenv", "install", "-i", PRIVATE, "pkg"],
            ["pip", "-v", "--require-virtualenv", "install", "pkg"],
        ),
    ],
)
def test_command_line_index_is_taken_out_of_argv(
    files: Files, registry: Registry, argv: list[str], command: list[str]
) -> None:
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == command
    assert door(result).index_env_var == "PIP_INDEX_URL"
    assert door(result).public_url == builtin_public_index()


def test_python_option_runs_that_interpreters_pip(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install", "-i", PRIVATE, "pkg"], python="py3")
    assert result.command == ["py3", "-m", "pip", "install", "pkg"]


@pytest.mark.parametrize(
    ("config_path", "text", "environ"),
    [
        ("home/.config/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {}),
        ("home/.config/pip/pip.conf", f"[install]\nindex_url = {PRIVATE}\n", {}),
        ("home/.pip/pip.conf", f"[global]\nINDEX-URL = {PRIVATE}\n", {}),
        ("xdg/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {"XDG_CONFIG_HOME": "@/xdg"}),
        ("sys/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {"XDG_CONFIG_DIRS": "@/sys"}),
        ("/etc/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {}),
        ("/etc/xdg/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {}),
        ("venv/pip.conf", f"[global]\nindex-url = {PRIVATE}\n", {"VIRTUAL_ENV": "@/venv"}),
        ("own.conf", f"[global]\nindex-url = {PRIVATE}\n", {"PIP_CONFIG_FILE": "@/own.conf"}),
        ("home/.config/pip/pip.conf", f"[DEFAULT]\nindex-url = {PRIVATE}\n[global]\n", {}),
    ],
)
def test_index_from_pip_config_files(
    files: Files, registry: Registry, config_path: str, text: str, environ: dict[str, str]
) -> None:
    target = config_path if config_path.startswith("/") else files.root / config_path
    files.write(target, text)
    environ = {k: v.replace("@", str(files.root)) for k, v in environ.items()}
    result = plan(files, registry, ["install", "pkg"], environ)
    assert_private(result)
    assert result.command == ["pip", "install", "pkg"]
    assert door(result).env_unset == set()


@pytest.mark.parametrize(
    ("support_dir", "config"),
    [
        (True, "home/Library/Application Support/pip/pip.conf"),
        (False, "home/.config/pip/pip.conf"),
    ],
)
def test_macos_user_config(
    files: Files, registry: Registry, support_dir: bool, config: str
) -> None:
    if support_dir:
        (files.root / "home/Library/Application Support/pip").mkdir(parents=True)
    files.write(files.root / config, f"[global]\nindex-url = {PRIVATE}\n")
    assert_private(plan(files, registry, ["install", "pkg"], platform="darwin"))


def test_site_config_of_the_given_python(files: Files, registry: Registry) -> None:
    files.write(files.root / "env/pyvenv.cfg", "home = /usr\n")
    files.write(files.root / "env/pip.conf", f"[install]\nindex-url = {PRIVATE}\n")
    result = plan(files, registry, ["install", "pkg"], python="../env/bin/python")
    assert_private(result)
    assert result.command == ["../env/bin/python", "-m", "pip", "install", "pkg"]


@pytest.mark.parametrize("variable", ["PIP_INDEX_URL", "PIP_PYPI_URL", "PIP_index_url"])
def test_index_from_environment_is_unset_for_the_child(
    files: Files, registry: Registry, variable: str
) -> None:
    result = plan(files, registry, ["install", "pkg"], {variable: PRIVATE})
    assert_private(result)
    assert door(result).env_unset == {variable}


def test_index_from_requirements_file(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"--index-url {PRIVATE}\npkg\n")
    result = plan(files, registry, ["install", "-r", "reqs.txt"])
    assert_private(result)
    assert result.command == ["pip", "install", "-r", ".crane-c0ffee-reqs.txt"]


@pytest.mark.parametrize(
    ("config", "environ", "expected_private", "expected_public"),
    [
        # the environment beats config files: the config's index is the public one
        (f"[global]\nindex-url = {MIRROR}\n", {"PIP_INDEX_URL": PRIVATE}, PRIVATE, MIRROR),
        # a config index that is not registered, and none elsewhere: unchanged run
        (f"[global]\nindex-url = {MIRROR}\n", {}, None, ""),
        # the command's section beats [global]
        (f"[global]\nindex-url = {PRIVATE}\n[install]\nindex-url = {MIRROR}\n", {}, None, ""),
        (
            f"[global]\nindex-url = {MIRROR}\n[install]\nindex-url = {PRIVATE}\n",
            {},
            PRIVATE,
            MIRROR,
        ),
        # another command's section does not apply
        (f"[download]\nindex-url = {PRIVATE}\n", {}, None, ""),
        # an empty value is ignored, as pip ignores it
        (f"[global]\nindex-url = {PRIVATE}\n", {"PIP_INDEX_URL": ""}, PRIVATE, None),
        # a registered index keeps the public index it was registered with
        ("", {"PIP_INDEX_URL": WITH_PUBLIC}, WITH_PUBLIC, MIRROR),
    ],
)
def test_precedence_of_index_settings(
    *,
    files: Files,
    registry: Registry,
    config: str,
    environ: dict[str, str],
    expected_private: str | None,
    expected_public: str | None,
) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", config)
    result = plan(files, registry, ["install", "pkg"], environ)
    assert private_url(result) == expected_private
    if expected_public is None:
        assert public_url(result) == builtin_public_index()
    else:
        assert public_url(result) == expected_public


def test_command_line_beats_environment_which_becomes_public(
    files: Files, registry: Registry
) -> None:
    result = plan(files, registry, ["install", "-i", PRIVATE, "pkg"], {"PIP_INDEX_URL": MIRROR})
    assert_private(result)
    assert door(result).public_url == MIRROR
    assert door(result).env_unset == {"PIP_INDEX_URL"}


def test_later_config_file_beats_earlier(files: Files, registry: Registry) -> None:
    files.write("/etc/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nindex-url = {MIRROR}\n")
    result = plan(files, registry, ["install", "pkg"])
    assert isinstance(result.mode, Unchanged)


# --- running pip unchanged --------------------------------------------------------------


def test_no_registered_index_runs_pip_unchanged(files: Files, registry: Registry) -> None:
    argv = ["install", "--extra-index-url", MIRROR, "pkg"]
    result = plan(files, registry, argv, {"PIP_INDEX_URL": MIRROR})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pip", *argv]
    assert result.notes == ["no registered index in play; running pip unchanged"]
    assert result.mode == Unchanged()  # no environment changes, no file copies


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--outdated", "-i", "https://unknown.example/simple"],
        ["show", "pkg"],
        ["uninstall", "-y", "pkg"],
        ["freeze", "--extra-index-url", MIRROR],
        ["config", "list"],
        ["cache", "purge"],
        ["help", "install"],
        ["--version"],
        [],
        ["install", "--help", "--extra-index-url", MIRROR],
    ],
)
def test_commands_without_an_index_pass_through_unchecked(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    result = plan(files, registry, argv, {"PIP_PROXY": "http://proxy.example:3128"})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pip", *argv]
    assert result.notes == []


@pytest.mark.parametrize(
    ("argv", "environ", "config", "note"),
    [
        (
            ["install", "--no-index", "-i", PRIVATE, "-f", "wheels", "pkg"],
            {},
            "",
            "--no-index on the command line: pip uses no index; running pip unchanged",
        ),
        (
            ["install", "-i", PRIVATE, "pkg"],
            {"PIP_NO_INDEX": "yes"},
            "",
            "no-index is set (environment variable PIP_NO_INDEX): pip uses no index; "
            "running pip unchanged",
        ),
        (
            ["install", "-i", PRIVATE, "pkg"],
            {},
            "[install]\nno-index = true\n",
            "no-index is set (pip config file @/home/.config/pip/pip.conf: [install]): "
            "pip uses no index; running pip unchanged",
        ),
    ],
)
def test_no_index_runs_pip_unchanged(
    *,
    files: Files,
    registry: Registry,
    argv: list[str],
    environ: dict[str, str],
    config: str,
    note: str,
) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", config)
    result = plan(files, registry, argv, environ)
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pip", *argv]
    assert result.notes == [note.replace("@", str(files.root))]


def test_no_index_line_in_requirements_file_runs_pip_unchanged(
    files: Files, registry: Registry
) -> None:
    files.write("reqs.txt", f"--no-index\n--find-links wheels\n-i {PRIVATE}\npkg\n")
    result = plan(files, registry, ["install", "-r", "reqs.txt"])
    assert isinstance(result.mode, Unchanged)
    assert result.notes == [
        "--no-index in requirements file reqs.txt line 1: pip uses no index; running pip unchanged"
    ]


def test_no_index_false_is_not_no_index(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install", "-i", PRIVATE, "pkg"], {"PIP_NO_INDEX": "off"})
    assert_private(result)


# --- isolation and PIP_CONFIG_FILE ------------------------------------------------------


def test_isolated_ignores_environment_and_user_config(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    environ = {"PIP_INDEX_URL": PRIVATE, "PIP_EXTRA_INDEX_URL": MIRROR}
    result = plan(files, registry, ["install", "--isolated", "pkg"], environ)
    assert isinstance(result.mode, Unchanged)
    assert result.notes == ["no registered index in play; running pip unchanged"]


def test_isolated_still_reads_global_config_and_is_refused_then(
    files: Files, registry: Registry
) -> None:
    files.write("/etc/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, ["--isolated", "install", "pkg"])
    assert str(caught.value) == (
        "command line: --isolated is not allowed under crane: it makes pip ignore "
        "PIP_INDEX_URL, the variable through which crane hands pip its proxy"
    )


def test_pip_config_file_devnull_loads_no_config_file(files: Files, registry: Registry) -> None:
    files.write("/etc/pip.conf", f"[global]\nindex-url = {PRIVATE}\nproxy = http://p.example\n")
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nindex-url = {PRIVATE}\n")
    result = plan(files, registry, ["install", "pkg"], {"PIP_CONFIG_FILE": os.devnull})
    assert isinstance(result.mode, Unchanged)


def test_existing_pip_config_file_replaces_user_files(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nextra-index-url = {MIRROR}\n")
    own = files.write(files.root / "own.conf", f"[global]\nindex-url = {PRIVATE}\n")
    result = plan(files, registry, ["install", "pkg"], {"PIP_CONFIG_FILE": str(own)})
    assert_private(result)


def test_unparsable_config_file_is_named(files: Files, registry: Registry) -> None:
    path = files.write(files.root / "home/.config/pip/pip.conf", "index-url = nowhere\n")
    with pytest.raises(ConfigError, match=re.escape(f"pip config file {path}: cannot be parsed")):
        plan(files, registry, ["install", "-i", PRIVATE, "pkg"])


# --- mistakes -------------------------------------------------------------------------


def test_unknown_command_line_index_suggests_the_closest(files: Files, registry: Registry) -> None:
    with pytest.raises(UnknownIndexError) as caught:
        plan(files, registry, ["install", "-i", "https://private.example/simpel/", "pkg"])
    assert str(caught.value) == (
        "https://private.example/simpel/ is not a registered index "
        "(did you mean https://private.example/simple/?); register it with "
        "`crane index register https://private.example/simpel/ ...`"
    )


def test_two_registered_indexes_in_one_run(files: Files, registry: Registry) -> None:
    files.write("reqs.txt", f"-i {OTHER}\npkg\n")
    with pytest.raises(ConfigError) as caught:
        plan(files, registry, ["install", "-i", PRIVATE, "-r", "reqs.txt"])
    assert str(caught.value) == (
        f"pip would use two registered indexes, {PRIVATE} (command line) and {OTHER} "
        "(requirements file reqs.txt line 1); crane runs one private index per run"
    )


def test_ambiguous_abbreviation_of_an_index_option_is_refused(
    files: Files, registry: Registry
) -> None:
    with pytest.raises(UsageError, match="--no-i is ambiguous"):
        plan(files, registry, ["install", "--no-i", "-i", PRIVATE, "pkg"])


# --- rejections: one per place ---------------------------------------------------------


def _rejected(files: Files, registry: Registry, argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, argv, env)
    return str(caught.value)


def test_extra_index_on_command_line(files: Files, registry: Registry) -> None:
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "--extra", MIRROR, "pkg"], {})
    assert message == f"command line: --extra-index-url is not allowed under crane: {EXTRA_WHY}"


def test_proxy_on_command_line(files: Files, registry: Registry) -> None:
    argv = ["--proxy=http://proxy.example:3128", "install", "-i", PRIVATE, "pkg"]
    message = _rejected(files, registry, argv, {})
    assert message == f"command line: --proxy is not allowed under crane: {PROXY_WHY}"


@pytest.mark.parametrize("spelling", ["--no-proxy-env", "--no-proxy-e"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_ignoring_the_proxy_variables_is_refused(
    files: Files, registry: Registry, spelling: str, where: str
) -> None:
    # pip 26 `--no-proxy-env` would take every request of pip past crane's guard.
    argv = ["install", "-i", PRIVATE, "pkg"]
    argv = [spelling, *argv] if where == "before" else [*argv, spelling]
    message = _rejected(files, registry, argv, {})
    assert message == (
        f"command line: --no-proxy-env is not allowed under crane: {NO_PROXY_ENV_WHY}"
    )


@pytest.mark.parametrize(
    ("env", "config", "place"),
    [
        ({"PIP_NO_PROXY_ENV": "1"}, "", "environment variable PIP_NO_PROXY_ENV"),
        ({"PIP_NO_PROXY_ENV": "yes"}, "", "environment variable PIP_NO_PROXY_ENV"),
        ({}, "[global]\nno-proxy-env = true\n", "pip config file /etc/pip.conf: [global]"),
        ({}, "[install]\nno_proxy_env = on\n", "pip config file /etc/pip.conf: [install]"),
    ],
)
def test_ignoring_the_proxy_variables_in_settings_is_refused(
    files: Files, registry: Registry, env: dict[str, str], config: str, place: str
) -> None:
    if config:
        files.write("/etc/pip.conf", config)
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "pkg"], env)
    assert message == f"{place}: no-proxy-env is not allowed under crane: {NO_PROXY_ENV_WHY}"


def test_a_false_no_proxy_env_setting_is_harmless(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install", "-i", PRIVATE, "pkg"], {"PIP_NO_PROXY_ENV": "0"})
    assert isinstance(result.mode, IndexDoorMode)


def test_extra_index_in_environment(files: Files, registry: Registry) -> None:
    env = {"PIP_EXTRA_INDEX_URL": MIRROR}
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "pkg"], env)
    assert message == (
        "environment variable PIP_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_proxy_in_environment(files: Files, registry: Registry) -> None:
    env = {"PIP_INDEX_URL": PRIVATE, "PIP_PROXY": "http://proxy.example:3128"}
    message = _rejected(files, registry, ["install", "pkg"], env)
    assert message == (
        f"environment variable PIP_PROXY: proxy is not allowed under crane: {PROXY_WHY}"
    )


def test_extra_index_in_global_config_file(files: Files, registry: Registry) -> None:
    files.write("/etc/pip.conf", f"[global]\nextra-index-url =\n    {MIRROR}\n")
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "pkg"], {})
    assert message == (
        "pip config file /etc/pip.conf: [global]: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_proxy_in_command_section_of_config_file(files: Files, registry: Registry) -> None:
    path = files.write(files.root / "home/.config/pip/pip.conf", "[download]\nproxy = p:3128\n")
    message = _rejected(files, registry, ["download", "-i", PRIVATE, "pkg"], {})
    assert message == (
        f"pip config file {path}: [download]: proxy is not allowed under crane: {PROXY_WHY}"
    )


def test_settings_of_other_commands_do_not_apply(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[freeze]\nextra-index-url = {MIRROR}\n")
    assert_private(plan(files, registry, ["install", "-i", PRIVATE, "pkg"]))


def test_extra_index_in_requirements_file(files: Files, registry: Registry) -> None:
    files.write("reqs/base.txt", f"# base\npkg\n--extra-index-url {MIRROR}\n")
    argv = ["install", "-i", PRIVATE, "-r", "reqs/base.txt"]
    message = _rejected(files, registry, argv, {})
    assert message == (
        "requirements file reqs/base.txt line 3: --extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_foreign_index_in_requirements_file(files: Files, registry: Registry) -> None:
    files.write("reqs/base.txt", f"pkg\n\n-i {MIRROR}\n")
    argv = ["install", "-i", PRIVATE, "-r", "reqs/base.txt"]
    message = _rejected(files, registry, argv, {})
    assert message == (
        f"requirements file reqs/base.txt line 3: --index-url {MIRROR} is not allowed under "
        f"crane: {FOREIGN_WHY}"
    )


def test_remote_requirements_file(files: Files, registry: Registry) -> None:
    argv = ["install", "-i", PRIVATE, "-r", "https://files.example/reqs.txt"]
    message = _rejected(files, registry, argv, {})
    assert message == (
        "command line: --requirement https://files.example/reqs.txt is not allowed under crane: "
        "crane cannot check a requirements file fetched over the network for index lines; "
        "download it and pass the local copy"
    )


def test_empty_extra_index_and_proxy_are_harmless(files: Files, registry: Registry) -> None:
    env = {"PIP_EXTRA_INDEX_URL": "", "PIP_PROXY": ""}
    assert_private(plan(files, registry, ["install", "-i", PRIVATE, "pkg"], env))


# --- requirements-file copies ----------------------------------------------------------


def test_nested_private_index_line_gets_copies_up_the_include_chain(
    files: Files, registry: Registry
) -> None:
    work = files.root / "work"
    files.write("reqs/top.txt", "-r sub/mid.txt\nflask\n")
    files.write("reqs/sub/mid.txt", "# mid\n-c ../../constraints.txt\nrequests\n")
    files.write(
        "constraints.txt",
        f"urllib3<3\n--index-url {PRIVATE} \\\n    --trusted-host private.example\n# end\n",
    )
    files.write("reqs/untouched.txt", "click\n")
    argv = ["install", "-r", "reqs/top.txt", "--requirement=reqs/untouched.txt"]
    result = plan(files, registry, argv)
    assert_private(result)
    assert result.command == [
        "pip",
        "install",
        "-r",
        "reqs/.crane-c0ffee-top.txt",
        "--requirement=reqs/untouched.txt",
    ]
    copies = {c.original: c for c in door(result).file_copies}
    assert set(copies) == {
        work / "reqs/top.txt",
        work / "reqs/sub/mid.txt",
        work / "constraints.txt",
    }
    for copy in copies.values():
        assert copy.copy == copy.original.parent / f".crane-c0ffee-{copy.original.name}"
    assert copies[work / "reqs/top.txt"].text == "-r sub/.crane-c0ffee-mid.txt\nflask\n"
    assert copies[work / "reqs/sub/mid.txt"].text == (
        "# mid\n-c ../../.crane-c0ffee-constraints.txt\nrequests\n"
    )
    assert copies[work / "constraints.txt"].text == (
        "urllib3<3\n--trusted-host private.example\n# crane: continued\n# end\n"
    )


def test_copies_read_by_pip_itself_have_no_index_line(files: Files, registry: Registry) -> None:
    from pip._internal.network.session import PipSession
    from pip._internal.req.req_file import RequirementsFileParser, get_line_parser

    files.write("reqs.txt", "-r inner.txt\nflask\n")
    files.write("inner.txt", f"requests\n--index-url={PRIVATE}\nclick\n")
    result = plan(files, registry, ["install", "-rreqs.txt"])
    for copy in door(result).file_copies:
        copy.copy.write_text(copy.text)
    assert result.command == ["pip", "install", "-r.crane-c0ffee-reqs.txt"]
    parser = RequirementsFileParser(PipSession(), get_line_parser(None))
    lines = list(parser.parse(str(files.root / "work" / ".crane-c0ffee-reqs.txt"), False))
    assert [line.requirement for line in lines if line.requirement] == [
        "requests",
        "click",
        "flask",
    ]
    assert not any(line.opts.index_url for line in lines)
    assert {(Path(line.filename).name, line.lineno) for line in lines} == {
        (".crane-c0ffee-inner.txt", 1),
        (".crane-c0ffee-inner.txt", 3),
        (".crane-c0ffee-reqs.txt", 2),
    }


def test_constraint_file_from_environment_is_swapped_through_environment(
    files: Files, registry: Registry
) -> None:
    constraints = files.write("c.txt", f"-i {PRIVATE}\nurllib3<3\n")
    result = plan(files, registry, ["install", "pkg"], {"PIP_CONSTRAINT": str(constraints)})
    assert_private(result)
    assert door(result).env_set == {
        "PIP_CONSTRAINT": str(constraints.parent / ".crane-c0ffee-c.txt")
    }
    assert result.command == ["pip", "install", "pkg"]


def test_include_cycle_terminates(files: Files, registry: Registry) -> None:
    files.write("a.txt", f"-r b.txt\n-i {PRIVATE}\n")
    files.write("b.txt", "-r a.txt\npkg\n")
    result = plan(files, registry, ["install", "-r", "a.txt"])
    copies = {c.original.name: c.text for c in door(result).file_copies}
    assert copies == {
        "a.txt": "-r .crane-c0ffee-b.txt\n# crane: index option removed\n",
        "b.txt": "-r .crane-c0ffee-a.txt\npkg\n",
    }


def test_index_line_on_requirement_line_is_ignored_like_pip(
    files: Files, registry: Registry
) -> None:
    files.write("reqs.txt", f"pkg --index-url {MIRROR}\n")
    result = plan(files, registry, ["install", "-i", PRIVATE, "-r", "reqs.txt"])
    assert_private(result)
    assert door(result).file_copies == ()


def test_environment_variables_in_index_lines_are_expanded(
    files: Files, registry: Registry
) -> None:
    files.write("reqs.txt", "--index-url ${INDEX}\npkg\n")
    result = plan(files, registry, ["install", "-r", "reqs.txt"], {"INDEX": PRIVATE})
    assert_private(result)
    assert [c.text for c in door(result).file_copies] == ["# crane: index option removed\npkg\n"]


@pytest.mark.parametrize(
    ("args", "output"),
    [
        ([], "pylock.toml"),
        (["-o", "locks/app.toml"], "locks/app.toml"),
        (["--output=app.toml"], "app.toml"),
        (["--output", "a.toml", "-o", "b.toml"], "b.toml"),
    ],
)
def test_pip_lock_names_the_file_whose_urls_are_restored(
    files: Files, registry: Registry, args: list[str], output: str
) -> None:
    result = plan(files, registry, ["lock", "-i", PRIVATE, *args, "pkg"])
    assert door(result).lock_output == files.root / "work" / output


def test_pip_lock_to_standard_output_is_left_alone_with_a_note(
    files: Files, registry: Registry
) -> None:
    result = plan(files, registry, ["lock", "-i", PRIVATE, "-o", "-", "pkg"])
    assert door(result).lock_output is None
    assert any("standard output" in note for note in result.notes)


FIND_LINKS_WHY = (
    "a find-links page (remote, or a local HTML file) is an index in disguise and could "
    "shadow private projects; use a local directory, or publish the files to the private index"
)
LINKS = "https://files.example/links/"


def test_remote_find_links_on_the_command_line(files: Files, registry: Registry) -> None:
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "-f", LINKS, "pkg"], {})
    assert message == (
        f"command line: --find-links {LINKS} is not allowed under crane: {FIND_LINKS_WHY}"
    )


def test_remote_find_links_in_the_environment(files: Files, registry: Registry) -> None:
    env = {"PIP_FIND_LINKS": f"/opt/local-wheels {LINKS}"}
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "pkg"], env)
    assert message == (
        f"environment variable PIP_FIND_LINKS: find-links {LINKS} is not allowed under crane: "
        f"{FIND_LINKS_WHY}"
    )


def test_remote_find_links_in_a_config_file(files: Files, registry: Registry) -> None:
    files.write("/etc/pip.conf", f"[install]\nfind-links = {LINKS}\n")
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "pkg"], {})
    assert message == (
        f"pip config file /etc/pip.conf: [install]: find-links {LINKS} is not allowed under "
        f"crane: {FIND_LINKS_WHY}"
    )


def test_local_find_links_stay_allowed(files: Files, registry: Registry) -> None:
    result = plan(
        files, registry, ["install", "-i", PRIVATE, "-f", "./wheels", "pkg"],
        {"PIP_FIND_LINKS": "/opt/local-wheels"},
    )  # fmt: skip
    assert_private(result)


@pytest.mark.parametrize("page", ["links.html", "./wheels/index.htm"])
def test_a_local_find_links_page_is_refused_like_a_remote_one(
    files: Files, registry: Registry, page: str
) -> None:
    message = _rejected(files, registry, ["install", "-i", PRIVATE, "-f", page, "pkg"], {})
    assert (
        message == f"command line: --find-links {page} is not allowed under crane: {FIND_LINKS_WHY}"
    )


@pytest.mark.parametrize(
    ("argv", "env", "place"),
    [
        (["install", "-i", PRIVATE, "--no-use-pep517", "pkg"], {}, "command line: --no-use-pep517"),
        (
            ["install", "-i", PRIVATE, "pkg"],
            {"PIP_NO_USE_PEP517": "1"},
            "environment variable PIP_NO_USE_PEP517: no-use-pep517",
        ),
    ],
)
def test_the_legacy_setuptools_build_is_refused(
    files: Files, registry: Registry, argv: list[str], env: dict[str, str], place: str
) -> None:
    message = _rejected(files, registry, argv, env)
    assert message.startswith(f"{place} is not allowed under crane: setuptools' legacy build")
