"""An index described by the environment for one run (CRANE_INDEX_URL and companions), the
new `PrivateIndex` fields on disk, and the registry a run sees (config.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crane_launch.config import (
    AUTH_SCHEMES,
    DEFAULT_SCOPES,
    ENVIRONMENT_VARIABLES,
    PrivateIndex,
    Registry,
    environment_index,
)
from crane_launch.errors import EXIT_CONFIG, ConfigError, CorruptFileError

URL = "https://index.example/simple/"
IDP = "https://idp.example"
TOKEN_URL = f"{IDP}/token"
HIDDEN = "hidden-secret-value"


@pytest.fixture
def crane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    return home


def device(url: str = URL, **fields: Any) -> PrivateIndex:
    return PrivateIndex(
        url=url, client_id="crane", token_url=TOKEN_URL, device_url=f"{IDP}/device", **fields
    )


def config_error(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        environment_index(environ)
    assert info.value.exit_code == EXIT_CONFIG == 3
    message = str(info.value)
    assert HIDDEN not in message
    return message


# -- environment_index: which scheme, which fields ----------------------------------------


def test_the_variables_crane_reads() -> None:
    assert set(ENVIRONMENT_VARIABLES) == {
        "CRANE_INDEX_URL",
        "CRANE_AUTH",
        "CRANE_CLIENT_ID",
        "CRANE_CLIENT_SECRET",
        "CRANE_TOKEN_URL",
        "CRANE_ISSUER",
        "CRANE_SCOPE",
        "CRANE_RESOURCE",
        "CRANE_AUDIENCE",
        "CRANE_TOKEN",
        "CRANE_TOKEN_FILE",
        "CRANE_USERNAME",
        "CRANE_PASSWORD",
        "CRANE_PUBLIC_INDEX",
        "CRANE_PROBE_PATH",
    }


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"CRANE_INDEX_URL": "  "},
        {"CRANE_TOKEN": HIDDEN, "CRANE_CLIENT_ID": "ci"},  # companions alone describe nothing
    ],
)
def test_no_index_url_no_index(environ: dict[str, str]) -> None:
    assert environment_index(environ) is None


def test_a_scheme_without_an_index_url_is_an_error() -> None:
    assert config_error({"CRANE_AUTH": "token", "CRANE_TOKEN": HIDDEN}) == (
        "CRANE_AUTH is set but CRANE_INDEX_URL is not: set both"
    )


def test_client_credentials_with_every_companion() -> None:
    index = environment_index(
        {
            "CRANE_INDEX_URL": "HTTPS://Index.Example:443/simple",
            "CRANE_AUTH": "client-credentials",
            "CRANE_CLIENT_ID": " ci-bot ",
            "CRANE_CLIENT_SECRET": HIDDEN,
            "CRANE_TOKEN_URL": TOKEN_URL,
            "CRANE_SCOPE": "packages:read, packages:list  extra",
            "CRANE_RESOURCE": "https://index.example/",
            "CRANE_AUDIENCE": "index",
            "CRANE_PUBLIC_INDEX": "https://public.example/simple",
        }
    )
    assert index == PrivateIndex(
        url=URL,
        auth="client-credentials",
        client_id="ci-bot",
        client_secret_env="CRANE_CLIENT_SECRET",
        token_url=TOKEN_URL,
        scopes=("packages:read", "packages:list", "extra"),
        resource="https://index.example/",
        audience="index",
        public_index="https://public.example/simple/",
    )
    assert index.from_environment
    assert index.secret_variables == {"CRANE_CLIENT_SECRET"}
    assert HIDDEN not in repr(index)
    assert HIDDEN not in json.dumps(index.to_json())


def test_client_credentials_by_discovery_and_without_scopes() -> None:
    index = environment_index(
        {
            "CRANE_INDEX_URL": URL,
            "CRANE_CLIENT_ID": "ci-bot",
            "CRANE_ISSUER": f"{IDP}/realms/ci",
        }
    )
    assert index is not None
    assert index.auth == "client-credentials"  # inferred from CRANE_CLIENT_ID
    assert index.issuer == f"{IDP}/realms/ci"
    assert index.token_url == ""
    assert index.scopes == ()  # not the device flow's `openid offline_access`


def test_a_token_from_a_variable_or_a_file() -> None:
    index = environment_index({"CRANE_INDEX_URL": URL, "CRANE_AUTH": "token", "CRANE_TOKEN": "t"})
    assert index is not None
    assert (index.auth, index.token_env, index.token_file) == ("token", "CRANE_TOKEN", None)
    assert index.secret_variables == {"CRANE_TOKEN"}
    index = environment_index({"CRANE_INDEX_URL": URL, "CRANE_TOKEN_FILE": "/run/secrets/tok"})
    assert index is not None
    assert (index.auth, index.token_env, index.token_file) == ("token", None, "/run/secrets/tok")
    assert index.secret_variables == frozenset()


def test_basic() -> None:
    index = environment_index(
        {"CRANE_INDEX_URL": URL, "CRANE_USERNAME": "alice", "CRANE_PASSWORD": HIDDEN}
    )
    assert index is not None
    assert (index.auth, index.username, index.password_env) == ("basic", "alice", "CRANE_PASSWORD")
    assert index.scopes == ()
    assert HIDDEN not in repr(index)


@pytest.mark.parametrize(
    ("companions", "scheme"),
    [
        ({"CRANE_CLIENT_ID": "ci", "CRANE_TOKEN_URL": TOKEN_URL}, "client-credentials"),
        ({"CRANE_TOKEN": "t"}, "token"),
        ({"CRANE_TOKEN_FILE": "/tok"}, "token"),
        ({"CRANE_USERNAME": "alice"}, "basic"),
        # The client id wins: a token variable beside it is the scheme's business, not a hint.
        ({"CRANE_CLIENT_ID": "ci", "CRANE_TOKEN_URL": TOKEN_URL, "CRANE_TOKEN": "t"},
         "client-credentials"),
        ({"CRANE_TOKEN": "t", "CRANE_USERNAME": "alice"}, "token"),
        ({"CRANE_AUTH": "Basic", "CRANE_USERNAME": "alice", "CRANE_TOKEN": "t"}, "basic"),
        ({"CRANE_AUTH": " TOKEN ", "CRANE_TOKEN": "t"}, "token"),
    ],
)  # fmt: skip
def test_the_scheme_is_named_or_inferred(companions: dict[str, str], scheme: str) -> None:
    index = environment_index({"CRANE_INDEX_URL": URL, **companions})
    assert index is not None
    assert index.auth == scheme


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CRANE_PASSWORD": HIDDEN}, "set CRANE_AUTH to client-credentials, token or basic"),
        ({"CRANE_CLIENT_SECRET": HIDDEN}, "set CRANE_AUTH to"),
        ({"CRANE_AUTH": "device"}, "CRANE_AUTH='device'"),
        ({"CRANE_AUTH": "oauth", "CRANE_TOKEN": HIDDEN}, "CRANE_AUTH='oauth'"),
        (
            {"CRANE_AUTH": "client-credentials", "CRANE_TOKEN_URL": TOKEN_URL},
            "CRANE_AUTH=client-credentials needs CRANE_CLIENT_ID; set it",
        ),
        (
            {"CRANE_AUTH": "client-credentials", "CRANE_CLIENT_ID": "ci"},
            "CRANE_AUTH=client-credentials needs CRANE_TOKEN_URL or CRANE_ISSUER",
        ),
        (
            {"CRANE_CLIENT_ID": "ci", "CRANE_TOKEN_URL": "idp.example/token"},
            "CRANE_TOKEN_URL is not an http:// or https:// URL",
        ),
        (
            {"CRANE_AUTH": "basic", "CRANE_PASSWORD": HIDDEN},
            "CRANE_AUTH=basic needs CRANE_USERNAME; set it",
        ),
        (
            {"CRANE_AUTH": "basic", "CRANE_USERNAME": " ", "CRANE_PASSWORD": HIDDEN},
            "CRANE_AUTH=basic needs CRANE_USERNAME; set it",
        ),
        (
            {"CRANE_TOKEN": HIDDEN, "CRANE_PUBLIC_INDEX": "ftp://public.example/"},
            "CRANE_PUBLIC_INDEX: ",
        ),
    ],
)
def test_an_incomplete_description_is_a_config_error_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    assert named in config_error({"CRANE_INDEX_URL": URL, **environ})


@pytest.mark.parametrize(
    "url", ["index.example/simple", "ftp://index.example/", "https://u:p@index.example/"]
)
def test_a_bad_index_url_is_a_config_error_naming_the_variable(url: str) -> None:
    message = config_error({"CRANE_INDEX_URL": url, "CRANE_TOKEN": HIDDEN})
    assert message.startswith("CRANE_INDEX_URL: ")


def test_the_device_flow_is_refused_with_what_to_do_instead() -> None:
    message = config_error({"CRANE_INDEX_URL": URL, "CRANE_AUTH": "device"})
    assert "client-credentials, token or basic" in message
    assert "crane index register" in message


# -- PrivateIndex on disk -----------------------------------------------------------------


@pytest.mark.parametrize(
    "index",
    [
        device(client_secret_env="DEVICE_SECRET"),
        PrivateIndex(
            URL,
            auth="client-credentials",
            client_id="ci",
            token_url=TOKEN_URL,
            client_secret_env="CI_SECRET",
            scopes=(),
            audience="index",
        ),
        PrivateIndex(URL, auth="token", token_env="TOK", scopes=()),
        PrivateIndex(URL, auth="token", token_file="/secrets/tok", scopes=()),
        PrivateIndex(URL, auth="basic", username="alice", password_env="PW", scopes=()),
        PrivateIndex(URL, auth="basic", username="alice", scopes=(), probe_path="/ping"),
    ],
    ids=["device", "client-credentials", "token-env", "token-file", "basic-env", "basic-store"],
)
def test_every_scheme_survives_a_round_trip(index: PrivateIndex) -> None:
    data = index.to_json()
    assert data["auth"] == index.auth
    assert "from_environment" not in data
    assert None not in data.values()
    assert PrivateIndex.from_json(json.loads(json.dumps(data))) == index


def test_to_json_never_writes_from_environment() -> None:
    index = PrivateIndex(URL, auth="token", token_env="CRANE_TOKEN", from_environment=True)
    assert "from_environment" not in index.to_json()


def test_an_entry_written_before_schemes_is_a_device_index() -> None:
    data = {"url": URL, "client_id": "c", "token_url": TOKEN_URL, "device_url": f"{IDP}/device"}
    index = PrivateIndex.from_json(data)
    assert index.auth == "device"
    assert index.scopes == DEFAULT_SCOPES
    assert index.secret_variables == frozenset()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"auth": "kerberos"}, "unknown auth scheme 'kerberos'"),
        ({"auth": "device", "client_id": "c", "token_url": TOKEN_URL}, "no device_url"),
        (
            {"auth": "client-credentials", "client_id": "c", "token_url": TOKEN_URL},
            "no client_secret_env",
        ),
        (
            {"auth": "client-credentials", "client_secret_env": "S", "client_id": "c"},
            "no token_url",
        ),
        ({"auth": "token"}, "neither token_env nor token_file"),
        ({"auth": "basic", "password_env": "PW"}, "no username"),
    ],
)
def test_from_json_refuses_unknown_schemes_and_incomplete_entries(
    data: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        PrivateIndex.from_json({"url": URL, **data})


def test_a_registry_with_an_unknown_scheme_is_named_and_left_alone(crane_home: Path) -> None:
    path = Registry.default_path()
    path.parent.mkdir(parents=True)
    content = json.dumps({"version": 1, "indexes": [{"url": URL, "auth": "kerberos"}]})
    path.write_text(content)
    with pytest.raises(CorruptFileError) as info:
        Registry.load()
    assert str(path) in str(info.value)
    assert "unknown auth scheme 'kerberos'" in str(info.value)
    assert path.read_text() == content


@pytest.mark.parametrize(
    ("index", "variables"),
    [
        (device(), set()),
        (device(client_secret_env="A"), {"A"}),
        (PrivateIndex(URL, auth="token", token_env="B"), {"B"}),
        (PrivateIndex(URL, auth="token", token_file="/tok"), set()),
        (PrivateIndex(URL, auth="basic", username="u", password_env="C"), {"C"}),
        (PrivateIndex(URL, auth="basic", username="u"), set()),
    ],
)
def test_secret_variables_of_an_index(index: PrivateIndex, variables: set[str]) -> None:
    assert index.secret_variables == variables


def test_auth_schemes() -> None:
    assert AUTH_SCHEMES == ("device", "client-credentials", "token", "basic")


# -- the registry a run sees --------------------------------------------------------------


def saved_registry(*indexes: PrivateIndex) -> Registry:
    registry = Registry.load()
    for index in indexes:
        registry.put(index)
    registry.save()
    return registry


def test_a_run_sees_the_saved_indexes_and_the_one_the_environment_describes(
    crane_home: Path,
) -> None:
    other = "https://other.example/simple/"
    saved_registry(device(other))
    registry = Registry.for_run({"CRANE_INDEX_URL": URL, "CRANE_TOKEN": HIDDEN})
    assert sorted(index.url for index in registry) == [URL, other]
    described = registry.get("https://INDEX.example/simple")
    assert described.auth == "token"
    assert described.from_environment
    assert not registry.get(other).from_environment


def test_the_environment_replaces_a_saved_index_of_the_same_url(crane_home: Path) -> None:
    saved_registry(device())
    registry = Registry.for_run(
        {"CRANE_INDEX_URL": "https://Index.example:443/simple", "CRANE_USERNAME": "ci"}
    )
    assert len(registry) == 1
    index = registry.get(URL)
    assert (index.auth, index.username, index.from_environment) == ("basic", "ci", True)
    # Only for this run: the registry on disk still has the device index.
    assert Registry.load().get(URL) == device()


def test_a_run_without_the_environment_sees_the_registry_as_saved(crane_home: Path) -> None:
    saved_registry(device())
    assert [index.from_environment for index in Registry.for_run({})] == [False]


def test_a_bad_environment_stops_the_run(crane_home: Path) -> None:
    saved_registry(device())
    with pytest.raises(ConfigError, match="CRANE_INDEX_URL is set but not how"):
        Registry.for_run({"CRANE_INDEX_URL": URL})


def test_save_never_writes_the_index_the_environment_describes(crane_home: Path) -> None:
    other = "https://other.example/simple/"
    saved_registry(device(other))
    registry = Registry.for_run(
        {"CRANE_INDEX_URL": URL, "CRANE_CLIENT_ID": "ci", "CRANE_TOKEN_URL": TOKEN_URL}
    )
    registry.put(device("https://third.example/simple/"))
    registry.save()
    written = json.loads(Registry.default_path().read_text())["indexes"]
    assert sorted(entry["url"] for entry in written) == [
        other,
        "https://third.example/simple/",
    ]
    assert "from_environment" not in json.dumps(written)


def test_the_registry_names_every_secret_variable(crane_home: Path) -> None:
    registry = Registry.for_run(
        {"CRANE_INDEX_URL": URL, "CRANE_CLIENT_ID": "ci", "CRANE_TOKEN_URL": TOKEN_URL}
    )
    assert registry.secret_variables() == {"CRANE_CLIENT_SECRET"}
    registry.put(device("https://a.example/simple/", client_secret_env="DEV_SECRET"))
    registry.put(PrivateIndex("https://b.example/simple/", auth="token", token_env="B_TOKEN"))
    registry.put(
        PrivateIndex("https://c.example/simple/", auth="basic", username="u", password_env="C_PW")
    )
    registry.put(PrivateIndex("https://d.example/simple/", auth="basic", username="u"))
    registry.put(device("https://e.example/simple/"))
    assert registry.secret_variables() == {"CRANE_CLIENT_SECRET", "DEV_SECRET", "B_TOKEN", "C_PW"}


def test_a_basic_username_from_the_environment_is_checked_like_a_registered_one() -> None:
    # `crane index register --auth basic` refuses a colon in the username (RFC 7617: the
    # first colon ends the user-id), or the index would read another user and password.
    message = config_error({"CRANE_INDEX_URL": URL, "CRANE_USERNAME": "ci:bot"})
    assert "CRANE_USERNAME" in message


def test_crane_probe_path_describes_the_probe_path() -> None:
    from crane_launch.config import environment_index

    index = environment_index(
        {
            "CRANE_INDEX_URL": "https://i.example/simple",
            "CRANE_TOKEN": "t",
            "CRANE_PROBE_PATH": "/p/",
        }
    )
    assert index is not None
    assert index.probe_path == "/p/"


@pytest.mark.parametrize("value", ["p/", "/p /", "/p\\q"])
def test_a_crane_probe_path_that_is_not_a_path_is_refused(value: str) -> None:
    from crane_launch.config import environment_index
    from crane_launch.errors import ConfigError

    with pytest.raises(ConfigError, match="CRANE_PROBE_PATH"):
        environment_index(
            {
                "CRANE_INDEX_URL": "https://i.example/simple",
                "CRANE_TOKEN": "t",
                "CRANE_PROBE_PATH": value,
            }
        )


def test_the_environment_keeps_a_saved_indexs_probe_path_and_public_index(tmp_path: Path) -> None:
    from crane_launch.config import PrivateIndex, Registry

    saved = PrivateIndex(
        "https://i.example/simple/",
        auth="token",
        token_env="T",
        scopes=(),
        probe_path="/simple/demo/",
        public_index="https://mirror.example/simple/",
    )
    Registry(tmp_path / "r.json", {saved.url: saved}).save()
    original = Registry.default_path
    try:
        Registry.default_path = classmethod(lambda cls: tmp_path / "r.json")  # type: ignore[method-assign,assignment]
        run = Registry.for_run({"CRANE_INDEX_URL": saved.url, "CRANE_TOKEN": "x"})
    finally:
        Registry.default_path = original  # type: ignore[method-assign]
    index = run.get(saved.url)
    assert index.from_environment
    assert index.probe_path == "/simple/demo/"
    assert index.public_index == "https://mirror.example/simple/"
    assert "T" in run.secret_variables()
