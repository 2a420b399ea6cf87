"""The index `CRANE_INDEX_URL` describes is private for the whole run: a tool's own index
settings become the public index, another registered index beside it is a conflict, a
project command's guard covers it, and `--no-index` does not open a way around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.config import PrivateIndex, Registry
from crane_launch.errors import ConfigError, RejectedSettingError
from crane_launch.launch.pip import plan_pip
from crane_launch.launch.plan import IndexDoorMode, Plan, TransparentDoorMode, Unchanged
from crane_launch.launch.project import plan_uv_project
from crane_launch.launch.uv import plan_uv_pip
from tests.launch.fakefiles import Files

CI_INDEX = "https://ci.example/simple/"
REGISTERED = "https://registered.example/simple/"
PUBLIC = "https://mirror.example/simple/"
ENV = {"CRANE_INDEX_URL": CI_INDEX, "CRANE_AUTH": "token", "CRANE_TOKEN": "t"}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    saved = PrivateIndex(REGISTERED, auth="token", token_env="REG_TOKEN", scopes=())
    registry = Registry(tmp_path / "r.json", {REGISTERED: saved})
    registry.save()
    return registry


def for_run(registry: Registry, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Registry:
    monkeypatch.setattr(Registry, "default_path", classmethod(lambda cls: registry.path))
    return Registry.for_run({**ENV, **extra})


def pip_plan(files: Files, registry: Registry, argv: list[str], environ: dict[str, str]) -> Plan:
    return plan_pip(
        argv,
        registry=registry,
        environ=environ,
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
        copy_token="c0ffee",
    )


@pytest.mark.parametrize("variable", ["PIP_INDEX_URL"])
def test_the_tools_own_index_becomes_the_public_one(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    run_registry = for_run(registry, monkeypatch)
    environ = {**ENV, variable: PUBLIC}
    plan = pip_plan(files, run_registry, ["install", "pkg"], environ)
    assert isinstance(plan.mode, IndexDoorMode)
    assert plan.mode.private.url == CI_INDEX
    assert plan.mode.public_url == PUBLIC


@pytest.mark.parametrize("variable", ["UV_INDEX_URL", "UV_DEFAULT_INDEX"])
def test_uv_pip_too(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    run_registry = for_run(registry, monkeypatch)
    plan = plan_uv_pip(
        ["pip", "install", "pkg"],
        registry=run_registry,
        environ={**ENV, variable: PUBLIC},
        cwd=files.root / "work",
        home=files.root / "home",
        read_text=files,
    )
    assert isinstance(plan.mode, IndexDoorMode)
    assert plan.mode.private.url == CI_INDEX
    assert plan.mode.public_url == PUBLIC


def test_another_registered_index_in_the_tools_settings_is_a_conflict(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_registry = for_run(registry, monkeypatch)
    with pytest.raises(ConfigError, match="name two private indexes"):
        pip_plan(files, run_registry, ["install", "pkg"], {**ENV, "PIP_INDEX_URL": REGISTERED})


def test_the_command_line_still_chooses(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_registry = for_run(registry, monkeypatch)
    plan = pip_plan(files, run_registry, ["install", "-i", REGISTERED, "pkg"], dict(ENV))
    assert isinstance(plan.mode, IndexDoorMode)
    assert plan.mode.private.url == REGISTERED


def test_no_index_with_a_remote_find_links_page_is_refused(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_registry = for_run(registry, monkeypatch)
    argv = ["install", "--no-index", "-f", "https://mirror.example/links/", "pkg"]
    with pytest.raises(RejectedSettingError, match="find"):
        pip_plan(files, run_registry, argv, dict(ENV))


def test_no_index_with_local_find_links_still_runs_unchanged(
    files: Files, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_registry = for_run(registry, monkeypatch)
    argv = ["install", "--no-index", "-f", "./wheels", "pkg"]
    plan = pip_plan(files, run_registry, argv, dict(ENV))
    assert isinstance(plan.mode, Unchanged)


def test_a_project_that_names_no_index_is_guarded_for_the_environments(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_registry = for_run(registry, monkeypatch)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    plan = plan_uv_project(["sync"], registry=run_registry, environ=dict(ENV), cwd=project)
    assert isinstance(plan.mode, TransparentDoorMode)
    assert [index.url for index in plan.mode.privates] == [CI_INDEX]
