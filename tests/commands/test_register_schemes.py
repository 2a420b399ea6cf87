"""`crane index register --auth ...`, and login, logout and status for every scheme
(commands/index.py, commands/session.py). No socket: discovery is a fake, and the identity
provider and the index are `httpx.MockTransport` handlers."""

from __future__ import annotations

import base64
import getpass
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from crane_launch.auth import Endpoints, TokenSet, TokenStore, make_client
from crane_launch.commands import index as index_command
from crane_launch.commands import session
from crane_launch.commands.index import Registration
from crane_launch.commands.session import IndexStatus
from crane_launch.config import DEFAULT_SCOPES, PrivateIndex, Registry
from crane_launch.errors import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_USAGE,
    AuthError,
    ConfigError,
    UsageError,
)

URL = "https://index.example/simple/"
ISSUER = "https://idp.example/realms/dev"
TOKEN_URL = f"{ISSUER}/token"
DEVICE_URL = f"{ISSUER}/device"
HIDDEN = "hidden-secret-value"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    return Registry(Registry.default_path())


@dataclass
class Discovery:
    """A fake `discover`: what it was asked, and what it answers."""

    scopes_supported: tuple[str, ...] | None = None
    device_url: str = DEVICE_URL
    asked: list[tuple[str, bool]] = field(default_factory=list)

    def __call__(
        self,
        issuer: str,
        client: httpx.Client,
        *,
        need_device: bool = True,
        complete: bool | None = None,
    ) -> Endpoints:
        self.asked.append((issuer, need_device))
        return Endpoints(
            issuer=ISSUER,
            token_url=TOKEN_URL,
            device_url=self.device_url,
            revocation_url=f"{ISSUER}/revoke",
            scopes_supported=self.scopes_supported,
        )


@pytest.fixture
def discovery(monkeypatch: pytest.MonkeyPatch) -> Discovery:
    fake = Discovery()
    monkeypatch.setattr(index_command, "discover", fake)
    return fake


def register(registry: Registry, **fields: Any) -> PrivateIndex:
    index, _ = index_command.register(registry, Registration(url=URL, **fields))
    return index


def refused(registry: Registry, error: type[Exception] = UsageError, **fields: Any) -> str:
    before = list(registry)
    with pytest.raises(error) as info:
        index_command.register(registry, Registration(url=URL, **fields))
    assert list(registry) == before
    return str(info.value)


def device(registry: Registry, **fields: Any) -> PrivateIndex:
    return register(registry, positional=("crane", TOKEN_URL, DEVICE_URL), **fields)


# -- register: each scheme ----------------------------------------------------------------


def test_register_a_token_variable(registry: Registry) -> None:
    index = register(registry, auth="token", token_env="MY_TOKEN")
    assert index == PrivateIndex(URL, auth="token", token_env="MY_TOKEN", scopes=())
    assert (index.client_id, index.token_url, index.device_url) == ("", "", "")


def test_a_token_file_is_made_absolute(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    index = register(registry, auth="token", token_file="secrets/tok")
    assert index.token_file == str(tmp_path / "secrets" / "tok")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    index = register(registry, token_file="~/tok")
    assert index.token_file == str(tmp_path / "home" / "tok")
    assert index.token_env is None


def test_switching_the_token_source_drops_the_other(registry: Registry) -> None:
    register(registry, auth="token", token_file="/secrets/tok")
    index = register(registry, token_env="TOK")
    assert (index.token_env, index.token_file) == ("TOK", None)
    index = register(registry, public_index="https://public.example/simple")
    assert (index.token_env, index.token_file) == ("TOK", None)  # kept when not given


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"token_env": "A", "token_file": "/b"}, "--token-env VAR or --token-file PATH, not both"),
        ({}, "--auth token needs --token-env VAR or --token-file PATH"),
    ],
)
def test_a_token_index_needs_one_source(
    registry: Registry, fields: dict[str, Any], problem: str
) -> None:
    assert problem in refused(registry, auth="token", **fields)


def test_register_client_credentials(registry: Registry) -> None:
    index = register(
        registry,
        auth="client-credentials",
        client_id="ci-bot",
        token_url=TOKEN_URL,
        client_secret_env="CI_SECRET",
        audience="index",
    )
    assert index == PrivateIndex(
        URL,
        auth="client-credentials",
        client_id="ci-bot",
        token_url=TOKEN_URL,
        client_secret_env="CI_SECRET",
        scopes=(),  # not the device flow's `openid offline_access`
        audience="index",
    )
    assert index.device_url == ""


def test_client_credentials_by_discovery_need_no_device_endpoint(
    registry: Registry, discovery: Discovery
) -> None:
    discovery.device_url = ""
    discovery.scopes_supported = ("read", "write")  # crane asks for none by default: fine
    index = register(
        registry,
        auth="client-credentials",
        client_id="ci-bot",
        issuer=ISSUER,
        client_secret_env="CI_SECRET",
    )
    assert discovery.asked == [(ISSUER, False)]
    assert (index.token_url, index.device_url, index.scopes) == (TOKEN_URL, "", ())
    assert index.revocation_url == f"{ISSUER}/revoke"


def test_the_device_flow_by_discovery_needs_a_device_endpoint(
    registry: Registry, discovery: Discovery
) -> None:
    index = register(registry, client_id="crane", issuer=ISSUER)
    assert discovery.asked == [(ISSUER, True)]
    assert index.device_url == DEVICE_URL
    assert index.scopes == DEFAULT_SCOPES
    discovery.asked.clear()
    # A device endpoint given by hand: discovery need not find one.
    register(registry, client_id="crane", issuer=ISSUER, device_url=f"{ISSUER}/other-device")
    assert discovery.asked == [(ISSUER, False)]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"client_id": "ci", "token_url": TOKEN_URL}, "need --client-secret-env VAR"),
        ({"client_id": "ci", "client_secret_env": "S"}, "need --token-url URL or --issuer"),
        ({"token_url": TOKEN_URL, "client_secret_env": "S"}, "a client id is needed"),
        (
            {"client_id": "ci", "token_url": TOKEN_URL, "client_secret_env": "S",
             "resource": "r", "audience": "a"},
            "give --audience or --resource, not both",
        ),
        (
            {"client_id": "ci", "token_url": "idp.example/token", "client_secret_env": "S"},
            "is not an http:// or https:// URL",
        ),
    ],
)  # fmt: skip
def test_incomplete_client_credentials_are_refused(
    registry: Registry, fields: dict[str, Any], problem: str
) -> None:
    assert problem in refused(registry, auth="client-credentials", **fields)


def test_a_confidential_device_client(registry: Registry) -> None:
    index = device(registry, client_secret_env="DEVICE_SECRET")
    assert (index.auth, index.client_secret_env) == ("device", "DEVICE_SECRET")
    assert index.scopes == DEFAULT_SCOPES


def test_register_basic(registry: Registry) -> None:
    index = register(registry, auth="basic", username="alice")
    assert index == PrivateIndex(URL, auth="basic", username="alice", scopes=())
    index = register(registry, password_env="ALICE_PW")
    assert (index.username, index.password_env) == ("alice", "ALICE_PW")


@pytest.mark.parametrize(
    ("username", "problem"),
    [
        (None, "--auth basic needs --username U"),
        ("al:ice", "cannot hold a colon or a control character"),
        ("al\nice", "cannot hold a colon or a control character"),
    ],
)
def test_a_basic_username_must_be_usable(
    registry: Registry, username: str | None, problem: str
) -> None:
    assert problem in refused(registry, auth="basic", username=username)


@pytest.mark.parametrize(
    ("auth", "option", "value"),
    [
        ("token", "client_id", "crane"),
        ("token", "issuer", ISSUER),
        ("token", "scopes", ("read",)),
        ("token", "username", "alice"),
        ("token", "client_secret_env", "S"),
        ("basic", "token_env", "T"),
        ("basic", "token_url", TOKEN_URL),
        ("basic", "audience", "a"),
        ("client-credentials", "device_url", DEVICE_URL),
        ("client-credentials", "revocation_url", f"{ISSUER}/revoke"),
        ("client-credentials", "token_file", "/tok"),
        ("client-credentials", "password_env", "P"),
        ("device", "token_env", "T"),
        ("device", "token_file", "/tok"),
        ("device", "username", "alice"),
        ("device", "password_env", "P"),
    ],
)
def test_options_that_do_not_apply_to_the_scheme_are_refused(
    registry: Registry, auth: str, option: str, value: Any
) -> None:
    shown = "--scope" if option == "scopes" else "--" + option.replace("_", "-")
    fields: dict[str, Any] = {option: value}
    message = refused(registry, auth=auth, **fields)
    assert message == f"{shown} does not apply to --auth {auth}"


def test_the_saved_scheme_decides_what_applies_when_auth_is_not_given(
    registry: Registry,
) -> None:
    register(registry, auth="token", token_env="TOK")
    assert refused(registry, client_id="crane") == "--client-id does not apply to --auth token"


def test_the_positional_form_is_for_the_device_flow(registry: Registry) -> None:
    message = refused(
        registry, auth="client-credentials", positional=("crane", TOKEN_URL, DEVICE_URL)
    )
    assert "is for --auth device" in message


def test_an_unknown_scheme_is_a_usage_error(registry: Registry) -> None:
    assert "--auth must be one of device, client-credentials, token, basic" in refused(
        registry, auth="kerberos"
    )


@pytest.mark.parametrize("option", ["client_secret_env", "token_env", "password_env"])
@pytest.mark.parametrize("value", [HIDDEN + "!", "1" + HIDDEN, f"${HIDDEN}", f"{HIDDEN} x", ""])
def test_a_variable_name_is_checked_without_echoing_what_was_typed(
    registry: Registry, option: str, value: str
) -> None:
    auth = {"client_secret_env": "client-credentials", "token_env": "token"}.get(option, "basic")
    fields: dict[str, Any] = (
        {option: value, "username": "u"} if auth == "basic" else {option: value}
    )
    message = refused(registry, auth=auth, **fields)
    flag = "--" + option.replace("_", "-")
    assert message.startswith(f"{flag} takes the NAME of an environment variable")
    assert "not its value" in message
    assert HIDDEN not in message


def test_usage_errors_exit_2() -> None:
    assert UsageError("x").exit_code == EXIT_USAGE == 2


# -- register: switching schemes ----------------------------------------------------------


def test_switching_the_scheme_drops_the_old_settings_and_keeps_the_index_settings(
    registry: Registry,
) -> None:
    device(
        registry,
        client_secret_env="DEV_SECRET",
        issuer=None,
        revocation_url=f"{ISSUER}/revoke",
        resource="urn:index",
        public_index="https://public.example/simple",
        probe_path="/api/ping",
    )
    index = register(registry, auth="token", token_env="TOK")
    assert index == PrivateIndex(
        URL,
        auth="token",
        token_env="TOK",
        scopes=(),
        public_index="https://public.example/simple/",
        probe_path="/api/ping",
    )
    index = register(registry, auth="basic", username="alice")
    assert index == PrivateIndex(
        URL,
        auth="basic",
        username="alice",
        scopes=(),
        public_index="https://public.example/simple/",
        probe_path="/api/ping",
    )
    index = register(
        registry,
        auth="client-credentials",
        client_id="ci",
        token_url=TOKEN_URL,
        client_secret_env="CI_SECRET",
    )
    assert (index.username, index.password_env, index.token_env) == (None, None, None)
    assert index.scopes == ()
    assert index.public_index == "https://public.example/simple/"
    index = device(registry, auth="device")
    assert index.client_secret_env is None  # the client-credentials secret does not carry
    assert index.scopes == DEFAULT_SCOPES
    assert index.probe_path == "/api/ping"
    assert len(registry) == 1


def test_switching_from_device_to_client_credentials_needs_the_client_again(
    registry: Registry,
) -> None:
    device(registry)
    message = refused(
        registry, auth="client-credentials", client_secret_env="S", token_url=TOKEN_URL
    )
    assert "a client id is needed" in message


# -- register: scopes against the provider's scopes_supported -----------------------------


def test_default_scopes_the_provider_does_not_offer_are_refused(
    registry: Registry, discovery: Discovery
) -> None:
    discovery.scopes_supported = ("openid", "profile", "packages")
    message = refused(registry, ConfigError, client_id="crane", issuer=ISSUER)
    assert "crane's default scopes 'openid offline_access'" in message
    assert "(openid profile packages)" in message
    assert "--scope S" in message
    assert ConfigError("x").exit_code == EXIT_CONFIG


def test_explicit_scopes_the_provider_does_not_list_are_only_a_note(
    registry: Registry, discovery: Discovery, capsys: pytest.CaptureFixture[str]
) -> None:
    discovery.scopes_supported = ("openid", "profile")
    index = register(registry, client_id="crane", issuer=ISSUER, scopes=("openid", "packages"))
    assert index.scopes == ("openid", "packages")
    err = capsys.readouterr().err
    assert err.startswith("crane: note: the provider does not list packages among its scopes")
    assert "(openid profile)" in err
    assert "--scope" in err


@pytest.mark.parametrize(
    "supported", [None, ("openid", "offline_access", "profile")], ids=["unlisted", "listed"]
)
def test_default_scopes_pass_when_listed_or_when_the_provider_lists_none(
    registry: Registry,
    discovery: Discovery,
    capsys: pytest.CaptureFixture[str],
    supported: tuple[str, ...] | None,
) -> None:
    discovery.scopes_supported = supported
    assert register(registry, client_id="crane", issuer=ISSUER).scopes == DEFAULT_SCOPES
    assert capsys.readouterr().err == ""


def test_scopes_chosen_at_an_earlier_registration_are_not_crane_defaults(
    registry: Registry, discovery: Discovery
) -> None:
    # The user chose `packages` knowing the provider does not list it (a note said so).
    discovery.scopes_supported = ("openid", "profile")
    register(registry, client_id="crane", issuer=ISSUER, scopes=("packages",))
    # Discovering the endpoints again must not call that choice "crane's default scopes".
    index = register(registry, issuer=ISSUER)
    assert index.scopes == ("packages",)


# -- status -------------------------------------------------------------------------------


def put(registry: Registry, *indexes: PrivateIndex) -> None:
    for index in indexes:
        registry.put(index)


def test_status_rows_say_whether_the_secret_is_at_hand(registry: Registry, tmp_path: Path) -> None:
    readable = tmp_path / "tok"
    readable.write_text(HIDDEN)
    indexes = {
        "cc": PrivateIndex(
            "https://cc.example/simple/",
            auth="client-credentials",
            client_id="ci",
            token_url=TOKEN_URL,
            client_secret_env="CI_SECRET",
        ),
        "env": PrivateIndex("https://env.example/simple/", auth="token", token_env="TOK"),
        "file": PrivateIndex(
            "https://file.example/simple/", auth="token", token_file=str(readable)
        ),
        "nofile": PrivateIndex(
            "https://nofile.example/simple/", auth="token", token_file=str(tmp_path / "missing")
        ),
        "pw": PrivateIndex(
            "https://pw.example/simple/", auth="basic", username="alice", password_env="PW"
        ),
        "stored": PrivateIndex("https://stored.example/simple/", auth="basic", username="bob"),
        "unstored": PrivateIndex("https://unstored.example/simple/", auth="basic", username="eve"),
    }
    put(registry, *indexes.values())
    TokenStore().save_password("https://stored.example/simple/", HIDDEN)
    environ = {"CI_SECRET": HIDDEN, "TOK": " \n", "PW": HIDDEN}

    rows = {row.url: row for row in session.statuses(registry, environ)}

    def row(name: str) -> IndexStatus:
        return rows[indexes[name].url]

    assert (row("cc").scheme, row("cc").state) == ("client-credentials", "$CI_SECRET is set")
    assert row("cc").scheme_detail == "client credentials: client ci, secret from $CI_SECRET"
    assert (row("env").scheme, row("env").state) == ("token", "$TOK is not set")
    assert row("file").state == "token file readable"
    assert row("nofile").state == "token file not readable"
    assert (row("pw").scheme, row("pw").state) == ("basic", "$PW is set")
    assert row("stored").state == "password stored"
    unstored = indexes["unstored"].url
    assert row("unstored").state == f"no password stored: run `crane login {unstored}`"
    for status in rows.values():
        assert not status.logged_in
        assert (status.access_expires, status.refresh_expires) == ("-", "-")
    assert HIDDEN not in repr(list(rows.values()))


def test_status_of_device_indexes_is_unchanged(registry: Registry) -> None:
    device(registry, client_secret_env="DEV_SECRET")
    now = time.time()
    TokenStore().save(URL, TokenSet(access_token=HIDDEN, expires_at=now + 600, obtained_at=now))
    [row] = session.statuses(registry, {})
    assert (row.scheme, row.state, row.logged_in) == ("device", "logged in", True)
    assert row.scheme_detail == "OAuth device flow, confidential client"
    assert HIDDEN not in repr(row)


def test_status_names_an_index_described_by_the_environment(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"CRANE_INDEX_URL": URL, "CRANE_TOKEN": HIDDEN}
    [row] = session.statuses(Registry.for_run(environ), environ)
    assert row.scheme_detail == (
        "static token from $CRANE_TOKEN, described by CRANE_INDEX_URL for this run"
    )
    assert row.state == "$CRANE_TOKEN is set"
    assert HIDDEN not in repr(row)


# -- login --------------------------------------------------------------------------------


@dataclass
class FakeServer:
    """The identity provider's token endpoint and the index's root, on one transport."""

    token_status: int = 200
    index_status: int = 200
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.seen.append((str(request.url), request.headers.get("authorization")))
            if str(request.url) == TOKEN_URL:
                if self.token_status != 200:
                    return httpx.Response(self.token_status, json={"error": "invalid_client"})
                return httpx.Response(200, json={"access_token": "cc-1", "expires_in": 60})
            return httpx.Response(self.index_status)

        return make_client(transport=httpx.MockTransport(handle))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr("crane_launch.auth._schemes.make_client", fake.client)
    monkeypatch.setattr("crane_launch.auth._credentials.make_client", fake.client)
    return fake


def cc(registry: Registry) -> PrivateIndex:
    return register(
        registry,
        auth="client-credentials",
        client_id="ci",
        token_url=TOKEN_URL,
        client_secret_env="CI_SECRET",
    )


def test_login_with_client_credentials_fetches_a_token(
    registry: Registry, server: FakeServer
) -> None:
    said = session.login(
        cc(registry), open_browser=False, environ={"CI_SECRET": HIDDEN}, no_input=True
    )
    assert said == f"the identity provider accepted the client credentials for {URL}"
    [(url, authorization)] = server.seen
    assert url == TOKEN_URL
    assert authorization is not None
    assert base64.b64decode(authorization.removeprefix("Basic ")).decode() == f"ci:{HIDDEN}"
    assert HIDDEN not in said
    assert not TokenStore().path_for(URL).exists()


def test_login_with_refused_client_credentials(registry: Registry, server: FakeServer) -> None:
    server.token_status = 401
    with pytest.raises(AuthError) as info:
        session.login(
            cc(registry), open_browser=False, environ={"CI_SECRET": HIDDEN}, no_input=False
        )
    assert info.value.exit_code == EXIT_AUTH
    assert "$CI_SECRET" in str(info.value)
    assert HIDDEN not in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"auth": "token", "token_env": "TOK"},
        {"auth": "basic", "username": "u", "password_env": "PW"},
    ],
)
def test_login_with_a_secret_from_a_variable_has_nothing_to_do(
    registry: Registry, server: FakeServer, fields: dict[str, Any]
) -> None:
    said = session.login(
        register(registry, **fields), open_browser=False, environ={}, no_input=False
    )
    assert said.startswith(f"nothing to log in: crane reads the credentials of {URL} at run time (")
    assert server.seen == []


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """stdin is a terminal, and getpass answers; returns the prompts shown."""
    prompts: list[str] = []

    def answer(prompt: str = "") -> str:
        prompts.append(prompt)
        return HIDDEN

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(getpass, "getpass", answer)
    monkeypatch.delenv("CI", raising=False)
    return prompts


@pytest.mark.parametrize(
    ("no_input", "environ"),
    [(True, {}), (False, {"CI": "true"})],
    ids=["no-input", "ci"],
)
def test_a_basic_login_where_nobody_can_type_is_refused(
    registry: Registry,
    server: FakeServer,
    terminal: list[str],
    no_input: bool,
    environ: dict[str, str],
) -> None:
    index = register(registry, auth="basic", username="alice")
    with pytest.raises(AuthError) as info:
        session.login(index, open_browser=False, environ=environ, no_input=no_input)
    assert "--password-env VAR" in str(info.value)
    assert terminal == []
    assert server.seen == []
    assert TokenStore().load_password(URL) is None


def test_a_basic_login_without_a_terminal_is_refused(
    registry: Registry, server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    index = register(registry, auth="basic", username="alice")
    with pytest.raises(AuthError, match="there is none here"):
        session.login(index, open_browser=False, environ={}, no_input=False)


def test_a_basic_login_asks_checks_and_stores_the_password(
    registry: Registry, server: FakeServer, terminal: list[str]
) -> None:
    index = register(registry, auth="basic", username="alice")
    said = session.login(index, open_browser=False, environ={}, no_input=False)
    assert said == f"logged in to {URL} (the password is kept in crane's 0600 store)"
    assert terminal == [f"crane: password for alice at {URL}: "]
    [(url, authorization)] = server.seen
    assert url == URL
    assert authorization is not None
    assert base64.b64decode(authorization.removeprefix("Basic ")).decode() == f"alice:{HIDDEN}"
    assert TokenStore().load_password(URL) == HIDDEN


def test_a_basic_password_the_index_refuses_is_not_kept(
    registry: Registry, server: FakeServer, terminal: list[str]
) -> None:
    server.index_status = 401
    index = register(registry, auth="basic", username="alice")
    with pytest.raises(AuthError, match="nothing was stored") as info:
        session.login(index, open_browser=False, environ={}, no_input=False)
    assert HIDDEN not in str(info.value)
    assert TokenStore().load_password(URL) is None


def test_a_confidential_device_login_uses_the_client_secret(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str | None] = []
    logins: list[bool] = []

    class FakeCredentials:
        def __init__(self, index: PrivateIndex, store: TokenStore, **kwargs: Any) -> None:
            made.append(kwargs.get("client_secret"))

        def login(self, ui: object, *, open_browser: bool) -> None:
            logins.append(open_browser)

    monkeypatch.setattr(session, "Credentials", FakeCredentials)
    index = device(registry, client_secret_env="DEV_SECRET")
    said = session.login(index, open_browser=False, environ={"DEV_SECRET": HIDDEN}, no_input=False)
    assert said == f"logged in to {URL}"
    assert made == [HIDDEN]
    assert logins == [False]
    with pytest.raises(AuthError, match=r"\$DEV_SECRET, which is not set"):
        session.login(index, open_browser=False, environ={}, no_input=False)


# -- logout -------------------------------------------------------------------------------


def test_logout_of_a_basic_index_forgets_the_stored_password(registry: Registry) -> None:
    index = register(registry, auth="basic", username="alice")
    TokenStore().save_password(URL, HIDDEN)
    assert session.logout(index, {}) == f"forgot the password stored for {URL}"
    assert TokenStore().load_password(URL) is None
    assert session.logout(index, {}) == (
        f"nothing stored for {URL} (HTTP Basic: user alice, password from crane's store)"
    )


@pytest.mark.parametrize(
    ("fields", "described"),
    [
        ({"auth": "token", "token_env": "TOK"}, "static token from $TOK"),
        (
            {"auth": "client-credentials", "client_id": "ci", "token_url": TOKEN_URL,
             "client_secret_env": "S"},
            "client credentials: client ci, secret from $S",
        ),
    ],
)  # fmt: skip
def test_logout_of_an_index_with_nothing_stored(
    registry: Registry, fields: dict[str, Any], described: str
) -> None:
    index = register(registry, **fields)
    assert session.logout(index, {}) == f"nothing stored for {URL} ({described})"


def test_logout_of_a_device_index_is_unchanged(registry: Registry) -> None:
    index = device(registry)
    assert session.logout(index, {}) == f"not logged in to {URL}"
    assert os.environ.get("CRANE_HOME")  # the fixture's home, not the user's
