"""Planning `crane pdm ...`: which registered sources a pdm project uses, and the refusal
when another index source could answer for a private project.

Every file pdm could read goes through `Files`: the project under tmp_path/work, the
global config under tmp_path/home (HOME in the fake environment), nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import ConfigError
from crane_launch.launch.pdm import plan_pdm
from crane_launch.launch.plan import Plan, TransparentDoorMode, Unchanged
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
)

NO_INDEX_NOTE = "this pdm command uses no index"
UNCHANGED_NOTE = "no registered index in this project; running pdm unchanged"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return two_private_indexes(tmp_path)


def plan(
    files: Files,
    registry: Registry,
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    cwd: str = ".",
) -> Plan:
    return plan_pdm(
        list(argv),
        registry=registry,
        environ={"HOME": str(files.root / "home"), **(environ or {})},
        cwd=files.root / "work" / cwd,
        read_text=files,
    )


def transparent(result: Plan) -> TransparentDoorMode:
    assert isinstance(result.mode, TransparentDoorMode)
    return result.mode


def source(name: str, url: str, *, include: Sequence[str] = (), kind: str | None = None) -> str:
    lines = ["[[tool.pdm.source]]", f'name = "{name}"', f'url = "{url}"']
    if include:
        lines.append("include_packages = [" + ", ".join(f'"{p}"' for p in include) + "]")
    if kind:
        lines.append(f'type = "{kind}"')
    return "\n".join(lines) + "\n"


def project(*sources: str) -> str:
    return '[project]\nname = "app"\nversion = "1.0"\n\n' + "\n".join(sources)


PROJECT = "work"  # the project's directory below the fake file system's root
CORP = source("corp", PRIVATE, include=["corp-*"])
CORP_ALONE = source("corp", PRIVATE)


# --- the private sources ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["install", "lock", "sync", "add", "update", "remove"])
def test_registered_source_goes_through_the_transparent_door(
    files: Files, registry: Registry, command: str
) -> None:
    files.write("pyproject.toml", project(CORP))
    argv = [command, "corp-lib"] if command in ("add", "remove") else [command]
    result = plan(files, registry, argv)
    assert private_urls(result) == [PRIVATE]
    assert private_hosts(result) == [HOSTS[PRIVATE]]
    assert result.command == ["pdm", *argv]
    assert result.tool == "pdm"
    assert transparent(result).project_dir == files.root / "work"
    assert transparent(result).public_url == builtin_public_index()


def test_a_registered_source_in_another_spelling(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml", project(source("corp", "https://PRIVATE.example/simple", include=["c"]))
    )
    assert private_urls(plan(files, registry, ["install"])) == [PRIVATE]


def test_several_registered_sources(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml",
        project(source("two", PRIVATE_2, include=["two-*"]), CORP, source("pub", PUBLIC)),
    )
    result = plan(files, registry, ["lock"])
    assert private_urls(result) == [PRIVATE_2, PRIVATE]
    assert transparent(result).public_url == PUBLIC


def test_the_default_source_is_the_public_index(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(CORP))
    result = plan(files, registry, ["install"], {"PDM_PYPI_URL": MIRROR})
    assert transparent(result).public_url == MIRROR


def test_found_from_a_subdirectory(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(CORP))
    (files.root / "work" / "src" / "app").mkdir(parents=True)
    result = plan(files, registry, ["install"], cwd="src/app")
    assert private_urls(result) == [PRIVATE]
    assert transparent(result).project_dir == files.root / "work"


@pytest.mark.parametrize(
    "argv",
    [
        ["-p", "app", "install"],
        ["install", "-p", "app"],
        ["install", "-papp"],
        ["install", "--project", "app"],
        ["--project=app", "install"],
    ],
)
def test_project_option(files: Files, registry: Registry, argv: list[str]) -> None:
    files.write("app/pyproject.toml", project(CORP))
    files.write("pyproject.toml", project(source("pub", PUBLIC)))
    result = plan(files, registry, argv)
    assert private_urls(result) == [PRIVATE]
    assert transparent(result).project_dir == files.root / "work" / "app"
    assert result.command == ["pdm", *argv]


def test_project_option_names_a_project_without_a_private_source(
    files: Files, registry: Registry
) -> None:
    files.write("pyproject.toml", project(CORP))
    files.write("other/pyproject.toml", project(source("pub", PUBLIC)))
    result = plan(files, registry, ["install", "-p", "other"])
    assert isinstance(result.mode, Unchanged)
    assert result.notes == [UNCHANGED_NOTE]


# --- the default source and pdm's config ----------------------------------------------


def test_pdm_pypi_url_names_the_private_index(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project())
    result = plan(files, registry, ["install"], {"PDM_PYPI_URL": PRIVATE})
    assert private_urls(result) == [PRIVATE]


@pytest.mark.parametrize(
    ("path", "environ", "argv"),
    [
        ("home/.config/pdm/config.toml", {}, ["install"]),
        ("xdg/pdm/config.toml", {"XDG_CONFIG_HOME": "@/xdg"}, ["install"]),
        ("own.toml", {"PDM_CONFIG_FILE": "@/own.toml"}, ["install"]),
        ("own.toml", {}, ["-c", "@/own.toml", "install"]),
        ("own.toml", {}, ["install", "--config=@/own.toml"]),
        ("work/pdm.toml", {}, ["install"]),
    ],
)
def test_pypi_url_of_pdms_config_names_the_private_index(
    files: Files, registry: Registry, path: str, environ: dict[str, str], argv: list[str]
) -> None:
    files.write("pyproject.toml", project())
    files.write(files.root / path, f'[pypi]\nurl = "{PRIVATE}"\n')
    root = str(files.root)
    environ = {k: v.replace("@", root) for k, v in environ.items()}
    argv = [arg.replace("@", root) for arg in argv]
    assert private_urls(plan(files, registry, argv, environ)) == [PRIVATE]


def test_a_named_source_of_pdms_config(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(source("pypi", PUBLIC, include=["x"])))
    files.write("pdm.toml", f'[pypi.corp]\nurl = "{PRIVATE}"\n')
    with pytest.raises(ConfigError, match="include_packages"):
        plan(files, registry, ["install"])


def test_pdm_pypi_url_beats_the_config(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project())
    files.write("pdm.toml", f'[pypi]\nurl = "{PRIVATE}"\n')
    result = plan(files, registry, ["install"], {"PDM_PYPI_URL": PUBLIC})
    assert isinstance(result.mode, Unchanged)


def test_ignore_stored_index_drops_the_configs_sources(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project())
    files.write("pdm.toml", f'[pypi]\nurl = "{PRIVATE}"\n[pypi.corp]\nurl = "{PRIVATE_2}"\n')
    result = plan(files, registry, ["install"], {"PDM_IGNORE_STORED_INDEX": "1"})
    assert isinstance(result.mode, Unchanged)


def test_ignore_stored_index_leaves_the_private_source_alone(
    files: Files, registry: Registry
) -> None:
    # No default source and no config source: the private source needs no include_packages.
    files.write("pyproject.toml", project(CORP_ALONE))
    files.write("pdm.toml", f'[pypi.extra]\nurl = "{MIRROR}"\n')
    environ = {"PDM_IGNORE_STORED_INDEX": "true", "PDM_PYPI_URL": MIRROR}
    assert private_urls(plan(files, registry, ["install"], environ)) == [PRIVATE]


# --- ${VAR} in a source URL ---------------------------------------------------------------


def test_variables_in_the_url_are_expanded(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml",
        project(source("corp", "https://${CORP_HOST}/${CORP_PATH}/", include=["corp-*"])),
    )
    environ = {"CORP_HOST": "private.example", "CORP_PATH": "simple"}
    assert private_urls(plan(files, registry, ["install"], environ)) == [PRIVATE]


def test_an_unset_variable_stays_unexpanded(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(source("corp", "https://${CORP_HOST}/simple/")))
    result = plan(files, registry, ["install"])
    assert isinstance(result.mode, Unchanged)
    assert result.notes == [UNCHANGED_NOTE]


def test_variables_in_a_config_url_are_expanded(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project())
    files.write("pdm.toml", '[pypi]\nurl = "https://${CORP_HOST}/simple/"\n')
    result = plan(files, registry, ["install"], {"CORP_HOST": "private.example"})
    assert private_urls(result) == [PRIVATE]


# --- include_packages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "config", "environ", "other"),
    [
        pytest.param([CORP_ALONE], "", {}, "source 'pypi' (pdm's default source)", id="default"),
        pytest.param(
            [CORP_ALONE, source("pypi", MIRROR)],
            "",
            {},
            f"source 'pypi' (@/{PROJECT}/pyproject.toml: [[tool.pdm.source]])",
            id="pypi-source",
        ),
        pytest.param(
            [CORP_ALONE, source("mirror", MIRROR)],
            "",
            {},
            f"source 'mirror' (@/{PROJECT}/pyproject.toml: [[tool.pdm.source]])",
            id="other-source",
        ),
        pytest.param(
            [CORP_ALONE],
            "",
            {"PDM_PYPI_URL": MIRROR},
            "source 'pypi' (environment variable PDM_PYPI_URL)",
            id="pdm-pypi-url",
        ),
        pytest.param(
            [CORP_ALONE, source("pypi", PRIVATE_2)],
            f'[pypi.extra]\nurl = "{MIRROR}"\n',
            {},
            f"source 'extra' (@/{PROJECT}/pdm.toml: [pypi.extra])",
            id="pdm-toml-extra",
        ),
    ],
)
def test_a_private_source_without_include_packages_beside_another_index(
    files: Files,
    registry: Registry,
    sources: list[str],
    config: str,
    environ: dict[str, str],
    other: str,
) -> None:
    files.write("pyproject.toml", project(*sources))
    if config:
        files.write("pdm.toml", config)
    with pytest.raises(ConfigError) as caught:
        plan(files, registry, ["install"], environ)
    message = str(caught.value)
    assert other.replace("@", str(files.root)) in message
    assert f"private index {PRIVATE}" in message
    assert "include_packages of source 'corp'" in message


@pytest.mark.parametrize(
    ("sources", "environ"),
    [
        pytest.param([CORP], {}, id="default"),
        pytest.param([CORP, source("pypi", MIRROR)], {}, id="pypi-source"),
        pytest.param([CORP], {"PDM_PYPI_URL": MIRROR}, id="pdm-pypi-url"),
        pytest.param([source("pypi", PRIVATE)], {}, id="private-replaces-the-default"),
        pytest.param([CORP_ALONE, source("pypi", PRIVATE_2)], {}, id="only-private-sources"),
        pytest.param([CORP_ALONE], {"PDM_PYPI_URL": PRIVATE_2}, id="private-default"),
    ],
)
def test_private_sources_that_keep_their_projects(
    files: Files, registry: Registry, sources: list[str], environ: dict[str, str]
) -> None:
    files.write("pyproject.toml", project(*sources))
    assert private_urls(plan(files, registry, ["install"], environ))


def test_a_find_links_source_is_not_another_index(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml",
        project(
            CORP_ALONE, source("pypi", PRIVATE), source("local", "./wheels", kind="find_links")
        ),
    )
    assert private_urls(plan(files, registry, ["install"])) == [PRIVATE]


def test_a_remote_find_links_source_is_refused(files: Files, registry: Registry) -> None:
    links = "https://files.example/links/"
    files.write("pyproject.toml", project(CORP, source("links", links, kind="find_links")))
    with pytest.raises(ConfigError, match=f"find-links source {links}"):
        plan(files, registry, ["install"])


def test_without_a_private_source_nothing_is_refused(files: Files, registry: Registry) -> None:
    links = "https://files.example/links/"
    files.write(
        "pyproject.toml", project(source("mirror", MIRROR), source("l", links, kind="find_links"))
    )
    result = plan(files, registry, ["install"])
    assert isinstance(result.mode, Unchanged)
    assert result.notes == [UNCHANGED_NOTE]


# --- running pdm unchanged --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "pytest"],
        ["list"],
        ["config"],
        ["--version"],
        ["install", "--help"],
        ["lock", "-h"],
        ["-V"],
        [],
    ],
)
def test_commands_without_an_index_run_unchanged(
    files: Files, registry: Registry, argv: list[str]
) -> None:
    files.write("pyproject.toml", project(CORP_ALONE))  # refused by an index command
    result = plan(files, registry, argv)
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pdm", *argv]
    assert result.notes == [NO_INDEX_NOTE]


def test_no_pyproject_runs_pdm_unchanged(files: Files, registry: Registry) -> None:
    result = plan(files, registry, ["install"], {"PDM_PYPI_URL": PRIVATE})
    assert isinstance(result.mode, Unchanged)
    assert result.command == ["pdm", "install"]
    assert result.notes == [
        f"no pyproject.toml in {files.root / 'work'} or its parents; running pdm unchanged"
    ]


def test_an_invalid_pyproject_is_named(files: Files, registry: Registry) -> None:
    path = files.write("pyproject.toml", "[project\n")
    with pytest.raises(ConfigError, match=f"{path}: is not valid TOML"):
        plan(files, registry, ["install"])


def test_an_invalid_pdm_toml_is_named(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(CORP))
    path = files.write("pdm.toml", "[pypi\n")
    with pytest.raises(ConfigError, match=f"{path}: is not valid TOML"):
        plan(files, registry, ["install"])


# --- where the planner and pdm 2.29 disagree ----------------------------------------------


def test_a_pypi_source_without_url_is_still_the_default_index(
    files: Files, registry: Registry
) -> None:
    pypi = '[[tool.pdm.source]]\nname = "pypi"\nverify_ssl = true\n'
    files.write("pyproject.toml", project(CORP_ALONE, pypi))
    with pytest.raises(ConfigError, match="include_packages"):
        plan(files, registry, ["install"])


def test_ignore_stored_index_in_pdm_toml(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(CORP_ALONE))
    files.write("pdm.toml", "[pypi]\nignore_stored_index = true\n")
    assert private_urls(plan(files, registry, ["install"])) == [PRIVATE]


def test_a_project_source_completed_by_the_config(files: Files, registry: Registry) -> None:
    corp = '[[tool.pdm.source]]\nname = "corp"\ninclude_packages = ["corp-*"]\n'
    files.write("pyproject.toml", project(corp))
    files.write(files.root / "home/.config/pdm/config.toml", f'[pypi.corp]\nurl = "{PRIVATE}"\n')
    assert private_urls(plan(files, registry, ["install"])) == [PRIVATE]


def test_local_find_links_sources_are_handed_to_the_runner(
    files: Files, registry: Registry
) -> None:
    """The runner refuses a local find-links location holding a private project's file."""
    files.write(
        "pyproject.toml",
        project(
            CORP,
            source("local", "./wheels", kind="find_links"),
            source("f", "file:///srv/w", kind="find_links"),
        ),
    )
    links = transparent(plan(files, registry, ["install"])).find_links
    assert files.root / "work" / "wheels" in links
    assert Path("/srv/w") in links


def test_any_other_source_type_is_an_index(files: Files, registry: Registry) -> None:
    """pdm treats every type but find_links as an index: `type = "index "` is one too."""
    files.write(
        "pyproject.toml",
        project(CORP_ALONE, source("odd", "https://pub.example/simple/", kind="index ")),
    )
    with pytest.raises(ConfigError, match="include_packages"):
        plan(files, registry, ["install"])


@pytest.mark.parametrize("command", ["build", "show", "outdated"])
def test_commands_that_ask_an_index_without_resolving_are_planned(
    files: Files, registry: Registry, command: str
) -> None:
    """`pdm build` installs build requirements, `show` and `outdated` read releases."""
    files.write("pyproject.toml", project(CORP))
    assert private_urls(plan(files, registry, [command])) == [PRIVATE]


def test_project_root_in_a_find_links_url(files: Files, registry: Registry) -> None:
    files.write(
        "pyproject.toml",
        project(CORP, source("loc", "file:///${PROJECT_ROOT}/wheels", kind="find_links")),
    )
    links = transparent(plan(files, registry, ["install"])).find_links
    assert files.root / "work" / "wheels" in links


def test_config_sources_keep_their_type_and_patterns(files: Files, registry: Registry) -> None:
    files.write("pyproject.toml", project(CORP))
    files.write(
        "pdm.toml",
        '[pypi.loc]\nurl = "file:///srv/wheels"\ntype = "find_links"\n'
        'include_packages = ["corp-*"]\n',
    )
    assert Path("/srv/wheels") in transparent(plan(files, registry, ["install"])).find_links
