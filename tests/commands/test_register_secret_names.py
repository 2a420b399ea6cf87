"""`--*-env` options take a variable's name: a secret pasted there is refused, never
stored or echoed; URLs and registry entries that parsers would read differently are
refused with a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crane_launch.commands import index as index_command
from crane_launch.config import Registry, normalise_url
from crane_launch.errors import CorruptFileError, UsageError

URL = "https://index.example/simple/"
PASTED = "ghp_R3alT0kenV4lue0123456789abcdefABCD"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    return Registry(Registry.default_path())


@pytest.mark.parametrize(
    ("auth", "option"),
    [
        ("token", "token_env"),
        ("basic", "password_env"),
        ("client-credentials", "client_secret_env"),
    ],
)
def test_a_mixed_case_name_that_is_not_set_is_refused_unechoed(
    registry: Registry, auth: str, option: str
) -> None:
    extra: dict[str, str] = {option: PASTED}
    if auth == "basic":
        extra["username"] = "ci"
    if auth == "client-credentials":
        extra.update(client_id="ci", token_url="https://idp.example/token")
    request = index_command.Registration(URL, auth=auth, **extra)  # type: ignore[arg-type]
    with pytest.raises(UsageError) as info:
        index_command.register(registry, request, environ={})
    assert PASTED not in str(info.value)
    assert "may be the secret itself" in str(info.value)
    assert len(registry) == 0


def test_an_upper_case_name_need_not_be_set_at_registration(registry: Registry) -> None:
    request = index_command.Registration(URL, auth="token", token_env="CI_INDEX_TOKEN")
    entry, _existed = index_command.register(registry, request, environ={})
    assert entry.token_env == "CI_INDEX_TOKEN"


def test_a_mixed_case_name_that_is_set_is_taken(registry: Registry) -> None:
    request = index_command.Registration(URL, auth="token", token_env="myIndexToken")
    entry, _existed = index_command.register(registry, request, environ={"myIndexToken": "x"})
    assert entry.token_env == "myIndexToken"


@pytest.mark.parametrize(
    "url",
    ["https://index.example/simple/\r\nX: y", "https://index.example/sim ple/", "https://a\\b/"],
)
def test_an_index_url_with_whitespace_or_control_characters_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="whitespace, a backslash or a control character"):
        normalise_url(url)


@pytest.mark.parametrize(
    "entry",
    [
        {"url": URL, "auth": "token", "token_env": ["A"]},
        {"url": URL, "auth": "token", "token_file": 5},
        {"url": URL, "auth": "basic", "username": {"a": 1}},
        {"url": URL, "auth": "basic", "username": "u", "scopes": [1]},
    ],
)
def test_a_registry_entry_of_the_wrong_type_is_a_corrupt_file(
    registry: Registry, entry: dict[str, object]
) -> None:
    path = Registry.default_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "indexes": [entry]}))
    with pytest.raises(CorruptFileError, match="is not"):
        Registry.load()
