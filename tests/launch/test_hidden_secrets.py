"""crane's secrets never reach the child tool: `run()` removes `plan.hidden` and
`ALWAYS_HIDDEN` from the child's environment while the authorizers still read them, and
the tool commands hide every registered index's secret variables (launch/run.py,
commands/tools.py).

Where a door would be opened, `GuardedDoors` is a fake (no socket); the child is a real
process where the test is about what a process inherits.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crane_launch.auth import TokenSet
from crane_launch.commands import tools
from crane_launch.config import PrivateIndex, Registry
from crane_launch.launch import doors as doors_module
from crane_launch.launch import run as run_module
from crane_launch.launch.doors import credentials_for
from crane_launch.launch.plan import (
    ALWAYS_HIDDEN,
    IndexDoorMode,
    Plan,
    TransparentDoorMode,
    Unchanged,
)
from crane_launch.launch.run import run

URL = "https://index.example/simple/"
HIDDEN = "hidden-secret-value"
SECRETS = {
    "CRANE_CLIENT_SECRET": HIDDEN + "-client",
    "CRANE_TOKEN": HIDDEN + "-token",
    "CRANE_PASSWORD": HIDDEN + "-password",
    "MY_TOKEN": HIDDEN + "-mine",
}


def test_always_hidden_is_the_environment_index_secrets() -> None:
    assert frozenset({"CRANE_CLIENT_SECRET", "CRANE_TOKEN", "CRANE_PASSWORD"}) == ALWAYS_HIDDEN


def dump_environment(seen: Path) -> list[str]:
    script = f"import json, os; open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))"
    return [sys.executable, "-c", script]


def test_a_child_run_unchanged_gets_no_secret(tmp_path: Path) -> None:
    seen = tmp_path / "env.json"
    parent = {
        "PATH": os.environ.get("PATH", os.defpath),
        "KEEP_ME": "visible",
        "CRANE_TOKEN_FILE": "/run/secrets/tok",  # a path, not a secret: the tool may see it
        **SECRETS,
    }
    plan = Plan("python", dump_environment(seen), Unchanged(), hidden=frozenset({"MY_TOKEN"}))

    assert run(plan, parent, no_input=True) == 0

    child = json.loads(seen.read_text())
    assert child["KEEP_ME"] == "visible"
    assert child["CRANE_TOKEN_FILE"] == "/run/secrets/tok"
    assert not set(SECRETS) & set(child)
    assert HIDDEN not in json.dumps(child)
    assert parent["MY_TOKEN"] == SECRETS["MY_TOKEN"]  # the caller's mapping is not changed


class FakeDoors:
    """`GuardedDoors` without a server: records what it is given."""

    made: ClassVar[list[FakeDoors]] = []

    def __init__(
        self,
        indexes: Sequence[tuple[PrivateIndex, Any]],
        public_url: str,
        *,
        pass_through: frozenset[str],
        cache: object = None,
        check_public: bool = True,
    ) -> None:
        self.indexes = list(indexes)
        self.environments: list[dict[str, str]] = []
        FakeDoors.made.append(self)

    def __enter__(self) -> FakeDoors:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    index_url = "http://127.0.0.1:9/one-time/simple/"

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        self.environments.append(dict(environ))
        return {**environ, "HTTPS_PROXY": "http://crane:x@127.0.0.1:9"}

    def verify_references(self, references: object) -> None:
        pass

    def verify_find_links(self, directories: object) -> None:
        pass

    def verify_lock_files(self, locks: object) -> None:
        pass

    def verify_locks(self, project_dir: object) -> None:
        pass

    def verdict(self, code: int) -> int:
        return code


@pytest.fixture
def doors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[FakeDoors]:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    FakeDoors.made = []
    monkeypatch.setattr(doors_module, "GuardedDoors", FakeDoors)
    return FakeDoors.made


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The environments the child would have been started with."""
    started: list[dict[str, str]] = []

    def fake_run_supervised(command: Sequence[str], environ: Mapping[str, str]) -> int:
        started.append(dict(environ))
        return 0

    monkeypatch.setattr(run_module, "run_supervised", fake_run_supervised)
    monkeypatch.setattr(doors_module, "run_supervised", fake_run_supervised)
    return started


def token_index(**fields: Any) -> PrivateIndex:
    return PrivateIndex(URL, auth="token", token_env="CRANE_TOKEN", scopes=(), **fields)


def test_the_index_door_reads_the_secret_and_the_child_does_not_get_it(
    doors: list[FakeDoors], children: list[dict[str, str]]
) -> None:
    mode = IndexDoorMode(private=token_index(), public_url="", index_env_var="PIP_INDEX_URL")
    plan = Plan("pip", [sys.executable, "-m", "pip"], mode, hidden=frozenset({"MY_TOKEN"}))
    parent = {"PATH": os.defpath, "KEEP_ME": "visible", **SECRETS}

    assert run(plan, parent, no_input=True) == 0

    [door] = doors
    [(index, authorizer)] = door.indexes
    assert index.url == URL
    assert authorizer.authorization() == "Bearer " + SECRETS["CRANE_TOKEN"]
    [given] = door.environments
    assert not set(SECRETS) & set(given)
    [child] = children
    assert child["PIP_INDEX_URL"] == FakeDoors.index_url
    assert child["KEEP_ME"] == "visible"
    assert not set(SECRETS) & set(child)
    assert HIDDEN not in json.dumps(child)


def test_the_transparent_door_reads_every_secret_and_the_child_gets_none(
    doors: list[FakeDoors], children: list[dict[str, str]]
) -> None:
    basic = PrivateIndex(
        "https://basic.example/simple/", auth="basic", username="ci", password_env="MY_PW"
    )
    mode = TransparentDoorMode(privates=(token_index(), basic))
    plan = Plan("uv", [sys.executable], mode, hidden=frozenset({"MY_PW"}))
    parent = {"PATH": os.defpath, "MY_PW": HIDDEN + "-pw", **SECRETS}

    assert run(plan, parent, no_input=True) == 0

    [door] = doors
    assert [authorizer.authorization() for _, authorizer in door.indexes] == [
        "Bearer " + SECRETS["CRANE_TOKEN"],
        "Basic " + _b64(f"ci:{HIDDEN}-pw"),
    ]
    [child] = children
    assert child["HTTPS_PROXY"].startswith("http://crane:")
    assert "MY_PW" not in child
    assert not set(ALWAYS_HIDDEN) & set(child)
    shown = json.dumps(child)
    assert HIDDEN + "-pw" not in shown
    assert all(SECRETS[name] not in shown for name in ALWAYS_HIDDEN)
    # MY_TOKEN was not named by this plan: the runner hides only what it is told, and
    # ALWAYS_HIDDEN (the tool commands name every registered index's variables).
    assert child["MY_TOKEN"] == SECRETS["MY_TOKEN"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_credentials_for_reads_the_secret_from_the_environment_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    authorizer = credentials_for(token_index(), {"CRANE_TOKEN": "tok"}, no_input=True)
    assert authorizer.authorization() == "Bearer tok"


# -- the tool commands hide every registered index's secret variables ---------------------


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    for name in ("CRANE_INDEX_URL", "CRANE_AUTH", "CI"):
        monkeypatch.delenv(name, raising=False)
    registry = Registry.load()
    registry.put(PrivateIndex("https://a.example/simple/", auth="token", token_env="A_TOKEN"))
    registry.put(
        PrivateIndex("https://b.example/simple/", auth="basic", username="u", password_env="B_PW")
    )
    registry.put(
        PrivateIndex(
            "https://c.example/simple/",
            client_id="crane",
            token_url="https://idp.example/token",
            device_url="https://idp.example/device",
            client_secret_env="C_SECRET",
        )
    )
    registry.save()
    return registry


def test_a_tool_command_hides_the_variables_of_every_index(
    registered: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans: list[Plan] = []

    def fake_run(
        plan: Plan,
        environ: Mapping[str, str],
        *,
        no_input: bool,
        no_cache: bool = False,
        report: object = None,
    ) -> int:
        plans.append(plan)
        return 0

    monkeypatch.setattr(tools, "run", fake_run)
    monkeypatch.setenv("CRANE_INDEX_URL", "https://env.example/simple/")
    monkeypatch.setenv("CRANE_USERNAME", "ci")
    monkeypatch.setenv("CRANE_PASSWORD", HIDDEN)

    assert tools.uv(["--version"], no_input=True) == 0

    [plan] = plans
    assert isinstance(plan.mode, Unchanged)
    assert plan.hidden == {"A_TOKEN", "B_PW", "C_SECRET", "CRANE_PASSWORD"}


def test_a_tool_run_through_crane_never_sees_a_registered_secret(
    registered: Registry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "env.json"
    for name in ("A_TOKEN", "B_PW", "C_SECRET", "CRANE_CLIENT_SECRET"):
        monkeypatch.setenv(name, f"{HIDDEN}-{name}")
    monkeypatch.setenv("KEEP_ME", "visible")
    plan = Plan("python", dump_environment(seen), Unchanged())

    assert tools._run(plan, Registry.for_run(os.environ), no_input=True, no_cache=True) == 0

    child = json.loads(seen.read_text())
    assert child["KEEP_ME"] == "visible"
    assert HIDDEN not in json.dumps(child)
    assert os.environ["A_TOKEN"] == f"{HIDDEN}-A_TOKEN"  # crane's own environment keeps it


def test_a_stored_device_login_is_not_affected_by_hiding(
    doors: list[FakeDoors], children: list[dict[str, str]]
) -> None:
    from crane_launch.auth import TokenStore

    index = PrivateIndex(
        URL,
        client_id="crane",
        token_url="https://idp.example/token",
        device_url="https://idp.example/device",
    )
    now = 1e12
    TokenStore().save(URL, TokenSet(access_token="acc", expires_at=now, obtained_at=now - 60))
    mode = IndexDoorMode(private=index, public_url="", index_env_var="PIP_INDEX_URL")
    assert run(Plan("pip", [sys.executable], mode), {"PATH": os.defpath}, no_input=True) == 0
    [door] = doors
    assert door.indexes[0][1].authorization() == "Bearer acc"


def test_a_saved_index_the_environment_replaces_still_has_its_variable_hidden(
    registered: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment describes https://a.example/simple/ for this run; the registered
    # index of that URL still names A_TOKEN, which holds its token in this environment.
    plans: list[Plan] = []

    def fake_run(
        plan: Plan,
        environ: Mapping[str, str],
        *,
        no_input: bool,
        no_cache: bool = False,
        report: object = None,
    ) -> int:
        plans.append(plan)
        return 0

    monkeypatch.setattr(tools, "run", fake_run)
    monkeypatch.setenv("A_TOKEN", HIDDEN)
    monkeypatch.setenv("CRANE_INDEX_URL", "https://a.example/simple/")
    monkeypatch.setenv("CRANE_TOKEN", HIDDEN + "-env")

    assert tools.uv(["--version"], no_input=True) == 0

    [plan] = plans
    assert "A_TOKEN" in plan.hidden
