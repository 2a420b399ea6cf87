"""`plan_command`: `crane run [-i URL] -- COMMAND ...`, any command with the index door in
every tool's index variable, and `public_index_for`.

Every file pip or uv could read goes through `Files`: real files below tmp_path, plus fake
system files, so nothing on the machine running the tests is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import PrivateIndex, Registry, builtin_public_index
from crane_launch.errors import ConfigError, RejectedSettingError, UnknownIndexError, UsageError
from crane_launch.launch.command import plan_command, public_index_for
from crane_launch.launch.plan import IndexDoorMode, Plan
from tests.launch.fakefiles import Files
from tests.launch.registries import device_index, registry_of

PRIVATE = "https://private.example/simple/"
OTHER = "https://other.example/simple/"
WITH_PUBLIC = "https://team.example/simple/"
MIRROR = "https://mirror.example/simple/"
MIRROR_2 = "https://mirror2.example/simple/"

EXTRA_WHY = "projects could come from another index and bypass private-first routing"
PROXY_WHY = (
    "crane's proxy must be the tool's only way to the index; set HTTPS_PROXY for crane instead"
)
FIND_LINKS_WHY = (
    "a find-links page (remote, or a local HTML file) is an index in disguise and could "
    "shadow private projects; use a local directory, or publish the files to the private index"
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    """One registered index."""
    return registry_of(tmp_path, device_index(PRIVATE))


@pytest.fixture
def several(tmp_path: Path) -> Registry:
    return registry_of(
        tmp_path,
        device_index(PRIVATE),
        device_index(OTHER),
        device_index(WITH_PUBLIC, public_index=MIRROR),
    )


def plan(
    files: Files,
    registry: Registry,
    index_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    command: Sequence[str] = ("tox", "-e", "py312"),
) -> Plan:
    return plan_command(
        list(command),
        index_url=index_url,
        registry=registry,
        environ=dict(environ or {}),
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
    )


def door(result: Plan) -> IndexDoorMode:
    assert isinstance(result.mode, IndexDoorMode)
    return result.mode


def _rejected(files: Files, registry: Registry, environ: Mapping[str, str]) -> str:
    with pytest.raises(RejectedSettingError) as caught:
        plan(files, registry, environ=environ)
    return str(caught.value)


# --- the index ----------------------------------------------------------------------------


def test_every_tools_index_variable_carries_the_door(files: Files, registry: Registry) -> None:
    result = plan(files, registry, PRIVATE)
    mode = door(result)
    assert mode.private.url == PRIVATE
    assert mode.index_env_var == "PIP_INDEX_URL"
    assert mode.also_env_vars == ("UV_DEFAULT_INDEX", "PDM_PYPI_URL")
    assert mode.public_url == builtin_public_index()
    assert mode.env_unset == frozenset()
    assert result.command == ["tox", "-e", "py312"]
    assert result.tool == "tox"


def test_the_tool_is_the_commands_name(files: Files, registry: Registry) -> None:
    result = plan(files, registry, command=["/usr/bin/make", "test"])
    assert result.tool == "make"
    assert result.command == ["/usr/bin/make", "test"]


def test_uv_index_url_is_unset(files: Files, registry: Registry) -> None:
    result = plan(files, registry, environ={"UV_INDEX_URL": MIRROR})
    assert door(result).env_unset == {"UV_INDEX_URL"}


@pytest.mark.parametrize(
    "spelling", [PRIVATE, "https://PRIVATE.example/simple", "https://private.example:443/simple"]
)
def test_the_index_option_names_a_registered_index(
    files: Files, several: Registry, spelling: str
) -> None:
    assert door(plan(files, several, spelling)).private.url == PRIVATE


def test_an_unregistered_index_option(files: Files, several: Registry) -> None:
    with pytest.raises(UnknownIndexError) as caught:
        plan(files, several, "https://private.example/")
    assert str(caught.value) == (
        "https://private.example/ is not a registered index "
        "(did you mean https://private.example/simple/?); register it with "
        "`crane index register https://private.example/ ...`"
    )


def test_an_index_option_that_is_not_a_url(files: Files, several: Registry) -> None:
    with pytest.raises(UnknownIndexError, match="not-a-url is not a registered index"):
        plan(files, several, "not-a-url")


def test_the_only_registered_index(files: Files, registry: Registry) -> None:
    assert door(plan(files, registry)).private.url == PRIVATE


def test_several_registered_indexes_need_a_choice(files: Files, several: Registry) -> None:
    with pytest.raises(UsageError) as caught:
        plan(files, several)
    message = str(caught.value)
    assert PRIVATE in message
    assert OTHER in message
    assert WITH_PUBLIC in message
    assert "crane run -i URL" in message


def test_no_registered_index(files: Files, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no private index is registered"):
        plan(files, registry_of(tmp_path))


def test_the_index_crane_index_url_describes_wins(files: Files, tmp_path: Path) -> None:
    registry = registry_of(tmp_path, device_index(PRIVATE), device_index(OTHER, described=True))
    assert door(plan(files, registry)).private.url == OTHER


def test_the_index_option_beats_crane_index_url(files: Files, tmp_path: Path) -> None:
    registry = registry_of(tmp_path, device_index(PRIVATE), device_index(OTHER, described=True))
    assert door(plan(files, registry, PRIVATE)).private.url == PRIVATE


def test_a_command_is_needed(files: Files, registry: Registry) -> None:
    with pytest.raises(UsageError, match="crane run needs a command"):
        plan(files, registry, command=[])


# --- refusals: pip's settings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "setting", "why"),
    [
        ("PIP_EXTRA_INDEX_URL", MIRROR, "extra-index-url", EXTRA_WHY),
        ("PIP_PROXY", "http://proxy.example:3128", "proxy", PROXY_WHY),
        (
            "PIP_FIND_LINKS",
            "https://files.example/links/",
            "find-links https://files.example/links/",
            FIND_LINKS_WHY,
        ),
    ],
)
def test_pip_variables_that_bypass_the_door(
    files: Files, registry: Registry, variable: str, value: str, setting: str, why: str
) -> None:
    assert _rejected(files, registry, {variable: value}) == (
        f"environment variable {variable}: {setting} is not allowed under crane: {why}"
    )


@pytest.mark.parametrize(
    "path", ["home/.config/pip/pip.conf", "home/.pip/pip.conf", "xdg/pip/pip.conf"]
)
def test_extra_index_in_the_user_pip_conf(files: Files, registry: Registry, path: str) -> None:
    written = files.write(files.root / path, f"[global]\nextra-index-url = {MIRROR}\n")
    environ = {"XDG_CONFIG_HOME": str(files.root / "xdg")} if path.startswith("xdg") else {}
    assert _rejected(files, registry, environ) == (
        f"pip config file {written}: [global]: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_extra_index_in_the_global_pip_conf(files: Files, registry: Registry) -> None:
    files.write("/etc/pip.conf", f"[install]\nextra-index-url = {MIRROR}\n")
    assert _rejected(files, registry, {}).startswith(
        "pip config file /etc/pip.conf: [install]: extra-index-url is not allowed"
    )


def test_extra_index_in_the_pip_config_file_variable(files: Files, registry: Registry) -> None:
    path = files.write("ci/pip.conf", f"[global]\nextra-index-url = {MIRROR}\n")
    assert _rejected(files, registry, {"PIP_CONFIG_FILE": str(path)}).startswith(
        f"pip config file {path}: [global]: extra-index-url is not allowed"
    )


def test_extra_index_in_the_active_environments_pip_conf(files: Files, registry: Registry) -> None:
    path = files.write(files.root / "venv/pip.conf", f"[global]\nextra-index-url = {MIRROR}\n")
    environ = {"VIRTUAL_ENV": str(files.root / "venv")}
    assert _rejected(files, registry, environ).startswith(f"pip config file {path}: [global]")


def test_pip_config_file_null_loads_no_pip_conf(files: Files, registry: Registry) -> None:
    files.write(files.root / "home/.config/pip/pip.conf", f"[global]\nextra-index-url = {MIRROR}\n")
    files.write("/etc/pip.conf", "[global]\nproxy = http://proxy.example:3128\n")
    result = plan(files, registry, environ={"PIP_CONFIG_FILE": "/dev/null"})
    assert door(result).private.url == PRIVATE


# --- refusals: uv's settings -------------------------------------------------------------


def test_uv_extra_index_url(files: Files, registry: Registry) -> None:
    assert _rejected(files, registry, {"UV_EXTRA_INDEX_URL": MIRROR}) == (
        "environment variable UV_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}"
    )


def test_uv_remote_find_links(files: Files, registry: Registry) -> None:
    links = "https://files.example/links/"
    assert _rejected(files, registry, {"UV_FIND_LINKS": f"./wheels,{links}"}) == (
        f"environment variable UV_FIND_LINKS: find-links {links} is not allowed under crane: "
        f"{FIND_LINKS_WHY}"
    )


@pytest.mark.parametrize(
    "value",
    [PRIVATE, f"corp={PRIVATE}", f"{PRIVATE} other={OTHER}", "https://PRIVATE.example/simple"],
)
def test_uv_index_of_registered_indexes_is_allowed(
    files: Files, several: Registry, value: str
) -> None:
    result = plan(files, several, PRIVATE, {"UV_INDEX": value})
    assert door(result).private.url == PRIVATE


@pytest.mark.parametrize("value", [MIRROR, f"mirror={MIRROR}", f"{PRIVATE} {MIRROR}"])
def test_uv_index_of_an_unregistered_index_is_refused(
    files: Files, registry: Registry, value: str
) -> None:
    assert _rejected(files, registry, {"UV_INDEX": value}) == (
        f"environment variable UV_INDEX: index is not allowed under crane: {EXTRA_WHY}"
    )


@pytest.mark.parametrize(
    ("path", "environ"),
    [
        ("home/.config/uv/uv.toml", {}),
        ("xdg/uv/uv.toml", {"XDG_CONFIG_HOME": "@/xdg"}),
        ("/etc/uv/uv.toml", {}),
    ],
)
def test_extra_index_in_the_user_and_system_uv_toml(
    files: Files, registry: Registry, path: str, environ: dict[str, str]
) -> None:
    written = files.write(
        path if path.startswith("/") else files.root / path, f'extra-index-url = ["{MIRROR}"]\n'
    )
    environ = {k: v.replace("@", str(files.root)) for k, v in environ.items()}
    assert _rejected(files, registry, environ) == (
        f"uv config file {written}: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_extra_index_in_the_pip_table_of_the_user_uv_toml(files: Files, registry: Registry) -> None:
    path = files.write(
        files.root / "home/.config/uv/uv.toml", f'[pip]\nextra-index-url = ["{MIRROR}"]\n'
    )
    assert _rejected(files, registry, {}) == (
        f"uv config file {path}: [pip]: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_index_entry_without_default_in_the_user_uv_toml(files: Files, registry: Registry) -> None:
    path = files.write(files.root / "home/.config/uv/uv.toml", f'[[index]]\nurl = "{MIRROR}"\n')
    assert _rejected(files, registry, {}) == (
        f"uv config file {path}: [[index]]: index {MIRROR} without default = true is not "
        f"allowed under crane: {EXTRA_WHY}"
    )


@pytest.mark.parametrize(
    "text",
    [
        f'[[index]]\nurl = "{MIRROR}"\ndefault = true\n',
        f'[[index]]\nname = "torch"\nurl = "{MIRROR}"\nexplicit = true\n',
        '[[index]]\nurl = "./wheels"\nformat = "flat"\n',
        f'index-url = "{MIRROR}"\n',
    ],
)
def test_single_index_entries_of_the_user_uv_toml_are_allowed(
    files: Files, registry: Registry, text: str
) -> None:
    files.write(files.root / "home/.config/uv/uv.toml", text)
    assert door(plan(files, registry)).private.url == PRIVATE


def test_the_uv_config_file_variable_replaces_the_user_file(
    files: Files, registry: Registry
) -> None:
    files.write(files.root / "home/.config/uv/uv.toml", f'extra-index-url = ["{MIRROR}"]\n')
    files.write("ci.toml", f'index-url = "{MIRROR}"\n')
    result = plan(files, registry, environ={"UV_CONFIG_FILE": "ci.toml"})
    assert door(result).private.url == PRIVATE


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("uv.toml", f'extra-index-url = ["{MIRROR}"]\n'),
        ("pyproject.toml", f'[tool.uv]\nextra-index-url = ["{MIRROR}"]\n'),
        ("pip.conf", f"[global]\nextra-index-url = {MIRROR}\n"),
    ],
)
def test_the_projects_files_are_the_tools_business(
    files: Files, registry: Registry, name: str, text: str
) -> None:
    files.write(name, text)
    assert door(plan(files, registry)).private.url == PRIVATE


# --- the public index ---------------------------------------------------------------------


def test_the_plans_public_index(files: Files, several: Registry) -> None:
    result = plan(files, several, PRIVATE, {"PIP_INDEX_URL": MIRROR})
    assert door(result).public_url == MIRROR
    assert door(plan(files, several, WITH_PUBLIC, {"PIP_INDEX_URL": MIRROR_2})).public_url == (
        MIRROR
    )


@pytest.mark.parametrize(
    ("index", "environ", "public"),
    [
        (device_index(PRIVATE, public_index=MIRROR), {"PIP_INDEX_URL": MIRROR_2}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": MIRROR, "UV_DEFAULT_INDEX": MIRROR_2}, MIRROR),
        (device_index(PRIVATE), {"UV_DEFAULT_INDEX": MIRROR, "UV_INDEX_URL": MIRROR_2}, MIRROR),
        (device_index(PRIVATE), {"UV_INDEX_URL": MIRROR}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": PRIVATE, "UV_INDEX_URL": MIRROR}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": OTHER, "UV_INDEX_URL": MIRROR}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": "./local", "UV_INDEX_URL": MIRROR}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": "https://MIRROR.example:443/simple"}, MIRROR),
        (device_index(PRIVATE), {"PIP_INDEX_URL": "", "UV_DEFAULT_INDEX": ""}, None),
        (device_index(PRIVATE), {"PIP_INDEX_URL": PRIVATE}, None),
        (device_index(PRIVATE), {}, None),
    ],
)
def test_public_index_for(
    tmp_path: Path, index: PrivateIndex, environ: dict[str, str], public: str | None
) -> None:
    registry = registry_of(tmp_path, index, device_index(OTHER))
    expected = public if public is not None else builtin_public_index()
    assert public_index_for(index, environ, registry) == expected


def test_public_index_for_a_named_uv_default_index(tmp_path: Path) -> None:
    index = device_index(PRIVATE)
    registry = registry_of(tmp_path, index)
    assert public_index_for(index, {"UV_DEFAULT_INDEX": f"mirror={MIRROR}"}, registry) == MIRROR


def test_local_find_links_directories_are_checked_like_crane_pips(
    files: Files, registry: Registry
) -> None:
    """PIP_FIND_LINKS and UV_FIND_LINKS directories reach every pip and uv of the run: the
    runner refuses one that holds a private project's file."""
    environ = {
        "PIP_FIND_LINKS": "wheels",
        "UV_FIND_LINKS": "file:///srv/more",
        "PIP_CONFIG_FILE": "/dev/null",
    }
    mode = door(plan(files, registry, environ=environ))
    assert files.root / "work" / "wheels" in mode.find_links
    assert Path("/srv/more") in mode.find_links


@pytest.mark.parametrize(
    "command",
    [
        ["pip-compile", "requirements.in"],
        ["/venv/bin/pip-compile", "-o", "r.txt"],
        ["python", "-m", "piptools", "compile"],
        ["python3.12", "-mpiptools", "compile"],
    ],
)
def test_pip_compile_must_not_write_the_proxy_into_its_output(
    files: Files, registry: Registry, command: list[str]
) -> None:
    with pytest.raises(RejectedSettingError, match="--no-emit-index-url"):
        plan(files, registry, command=command)
    assert door(plan(files, registry, command=[*command, "--no-emit-index-url"]))


def test_uv_tool_receipts_written_by_the_command_get_the_real_index(
    files: Files, registry: Registry
) -> None:
    """`crane run -- uv tool install ...`: uv records the door in the receipt; the runner
    maps it back, as for `crane uv tool`."""
    (recorded,) = door(plan(files, registry, environ={"UV_TOOL_DIR": "/srv/tools"})).recorded
    assert recorded.directory == Path("/srv/tools")
    assert recorded.pattern == "*/uv-receipt.toml"
    assert recorded.only is None


@pytest.mark.parametrize("option", ["--emit-index-url", "--emit-index-annotation"])
def test_uv_pip_compile_must_not_write_the_proxy_into_its_output(
    files: Files, registry: Registry, option: str
) -> None:
    with pytest.raises(RejectedSettingError, match=option):
        plan(files, registry, command=["uv", "pip", "compile", option, "in.txt"])


def test_the_last_emit_flag_of_pip_compile_wins(files: Files, registry: Registry) -> None:
    command = ["pip-compile", "--no-emit-index-url", "--emit-index-url"]
    with pytest.raises(RejectedSettingError, match="--no-emit-index-url"):
        plan(files, registry, command=command)


def test_uv_pip_compile_emitting_from_its_settings_or_after_a_global_option(
    files: Files, registry: Registry
) -> None:
    with pytest.raises(RejectedSettingError, match="--emit-index-url"):
        plan(files, registry, command=["uv", "-q", "pip", "compile", "in.txt", "--emit-index-url"])
    files.write("uv.toml", "[pip]\nemit-index-url = true\n")
    with pytest.raises(RejectedSettingError, match="emit-index-url"):
        plan(files, registry, command=["uv", "pip", "compile", "in.txt"])
    assert door(plan(files, registry, command=["uv", "pip", "compile", "--no-config", "in.txt"]))
