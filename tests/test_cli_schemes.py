"""The `crane` command with the authentication schemes: `index register --auth ...`,
`index list`, `status`, `login`, `logout` and the exit codes of their failures.

In-process with `CRANE_HOME` under tmp_path, as tests/test_cli.py. No socket: the identity
provider and the index are `httpx.MockTransport` handlers behind crane's `make_client`, and
`crane serve` is only run where it fails before its door would open.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from crane_launch.auth import CI_SCHEMES_HINT, TokenSet, TokenStore, make_client
from crane_launch.config import ENVIRONMENT_VARIABLES, Registry
from tests.clirun import Crane, Result, in_process

URL = "https://index.example/simple/"
IDP = "https://idp.example"
TOKEN_URL = f"{IDP}/token"
DEVICE_URL = f"{IDP}/device"
REVOKE_URL = f"{IDP}/revoke"
HIDDEN = "hidden-secret-value"


@pytest.fixture
def crane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    for name in ("CRANE_NO_INPUT", "CI", *ENVIRONMENT_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("crane_launch.cli.harden", lambda: None)
    return home


@pytest.fixture
def crane(crane_home: Path, capsys: pytest.CaptureFixture[str]) -> Crane:
    return in_process(capsys)


@pytest.fixture(autouse=True)
def _quiet_logging_afterwards() -> object:
    """`main` points crane's logger at the captured stderr; leave it as it was found."""
    logger = logging.getLogger("crane_launch")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield None
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def one_crane_line(result: Result) -> str:
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("crane: ")
    return lines[0]


def stored() -> list[dict[str, object]]:
    indexes = json.loads(Registry.default_path().read_text())["indexes"]
    assert isinstance(indexes, list)
    return indexes


@dataclass
class Server:
    """The identity provider and the index, as one transport; records every request."""

    secret: str = HIDDEN
    index_status: int = 200
    seen: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)

    def client(self, **_options: object) -> httpx.Client:
        return make_client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        authorization = request.headers.get("authorization")
        self.seen.append((str(request.url), form, authorization))
        if str(request.url) in (TOKEN_URL, REVOKE_URL):
            expected = "Basic " + base64.b64encode(
                f"{form.get('client_id', '')}:{self.secret}".encode()
            ).decode("ascii")
            if authorization != expected:
                return httpx.Response(401, json={"error": "invalid_client"})
            if str(request.url) == REVOKE_URL:
                return httpx.Response(200)
            return httpx.Response(200, json={"access_token": "cc-1", "expires_in": 60})
        return httpx.Response(self.index_status)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Server:
    fake = Server()
    monkeypatch.setattr("crane_launch.auth._schemes.make_client", fake.client)
    monkeypatch.setattr("crane_launch.auth._credentials.make_client", fake.client)
    return fake


def register_cc(crane: Crane, url: str = URL) -> None:
    result = crane(
        "index", "register", url, "--auth", "client-credentials", "--client-id", "ci",
        "--token-url", TOKEN_URL, "--client-secret-env", "CI_SECRET",
    )  # fmt: skip
    assert result.code == 0, result.err


# -- index register -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "described", "saved"),
    [
        (
            ["--auth", "token", "--token-env", "MY_TOKEN"],
            "static token from $MY_TOKEN",
            {"auth": "token", "token_env": "MY_TOKEN", "scopes": []},
        ),
        (
            ["--auth", "basic", "--username", "alice"],
            "HTTP Basic: user alice, password from crane's store",
            {"auth": "basic", "username": "alice", "scopes": []},
        ),
        (
            ["--auth", "basic", "--username", "alice", "--password-env", "ALICE_PW"],
            "HTTP Basic: user alice, password from $ALICE_PW",
            {"auth": "basic", "username": "alice", "password_env": "ALICE_PW", "scopes": []},
        ),
        (
            ["--auth", "client-credentials", "--client-id", "ci", "--token-url", TOKEN_URL,
             "--client-secret-env", "CI_SECRET", "--scope", "packages"],
            "client credentials: client ci, secret from $CI_SECRET",
            {"auth": "client-credentials", "client_id": "ci", "token_url": TOKEN_URL,
             "client_secret_env": "CI_SECRET", "scopes": ["packages"]},
        ),
        (
            ["crane", TOKEN_URL, DEVICE_URL, "--client-secret-env", "DEV_SECRET"],
            "OAuth device flow, confidential client",
            {"auth": "device", "client_id": "crane", "token_url": TOKEN_URL,
             "device_url": DEVICE_URL, "client_secret_env": "DEV_SECRET",
             "scopes": ["openid", "offline_access"]},
        ),
    ],
    ids=["token", "basic-store", "basic-env", "client-credentials", "device-confidential"],
)  # fmt: skip
def test_register_each_scheme(
    crane: Crane, options: list[str], described: str, saved: dict[str, object]
) -> None:
    result = crane("index", "register", URL, *options)
    assert result.code == 0
    assert one_crane_line(result) == f"crane: registered {URL} ({described})"
    assert stored() == [{"url": URL, **saved}]


def test_a_token_file_is_stored_absolute(
    crane: Crane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = crane("index", "register", URL, "--auth", "token", "--token-file", "tok")
    assert result.code == 0
    assert stored()[0]["token_file"] == str(tmp_path / "tok")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--auth", "token", "--client-id", "x", "--token-env", "T"],
         "--client-id does not apply to --auth token"),
        (["--auth", "token", "--token-env", "T", "--scope", "read"],
         "--scope does not apply to --auth token"),
        (["--auth", "basic", "--username", "u", "--token-file", "/t"],
         "--token-file does not apply to --auth basic"),
        (["--auth", "client-credentials", "--client-id", "ci", "--token-url", TOKEN_URL],
         "need --client-secret-env VAR"),
        (["--auth", "token"], "--auth token needs --token-env VAR or --token-file PATH"),
        (["--auth", "basic"], "--auth basic needs --username U"),
        (["--auth", "kerberos"], "'kerberos' is not one of"),
        (["--auth", "token", "a", "b", "c"], "is for --auth device"),
    ],
)  # fmt: skip
def test_a_registration_that_cannot_work_is_a_usage_error(
    crane: Crane, options: list[str], problem: str
) -> None:
    result = crane("index", "register", URL, *options)
    assert result.code == 2
    assert problem in one_crane_line(result)
    assert not Registry.default_path().exists()


@pytest.mark.parametrize(
    "options",
    [
        ["--auth", "token", "--token-env"],
        ["--auth", "client-credentials", "--client-secret-env"],
        ["--auth", "basic", "--username", "u", "--password-env"],
    ],
    ids=["token-env", "client-secret-env", "password-env"],
)
def test_a_secret_typed_in_place_of_a_variable_name_is_not_echoed(
    crane: Crane, options: list[str]
) -> None:
    result = crane("index", "register", URL, *options, f"{HIDDEN}/+==")
    assert result.code == 2
    line = one_crane_line(result)
    assert f"{options[-1]} takes the NAME of an environment variable" in line
    assert HIDDEN not in result.err + result.out


# -- index list and status ----------------------------------------------------------------


def test_list_shows_each_index_with_its_scheme_and_state(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert crane("index", "register", URL, "--auth", "token", "--token-env", "MY_TOKEN").code == 0
    register_cc(crane, "https://cc.example/simple/")
    other = "https://basic.example/simple/"
    assert crane("index", "register", other, "--auth", "basic", "--username", "a").code == 0
    device = "https://device.example/simple/"
    assert crane("index", "register", device, "crane", TOKEN_URL, DEVICE_URL).code == 0
    monkeypatch.setenv("MY_TOKEN", HIDDEN)

    result = crane("index", "list")

    assert result.code == 0
    assert sorted(result.out.splitlines()) == sorted(
        [
            f"{URL}\ttoken\t$MY_TOKEN is set",
            "https://cc.example/simple/\tclient-credentials\t$CI_SECRET is not set",
            f"{other}\tbasic\tno password stored: run `crane login {other}`",
            f"{device}\tdevice\tnot logged in",
        ]
    )
    assert HIDDEN not in result.out + result.err


def test_list_shows_the_index_the_environment_describes(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_INDEX_URL", "https://Index.example/simple")
    monkeypatch.setenv("CRANE_TOKEN", HIDDEN)
    result = crane("index", "list")
    assert result.code == 0
    assert result.out.splitlines() == [f"{URL}\ttoken\t$CRANE_TOKEN is set"]
    assert HIDDEN not in result.out + result.err
    assert not Registry.default_path().exists()  # described for the run, never saved


def test_status_has_an_authentication_line_per_index(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_cc(crane)
    device = "https://device.example/simple/"
    assert crane("index", "register", device, "crane", TOKEN_URL, DEVICE_URL).code == 0
    monkeypatch.setenv("CI_SECRET", HIDDEN)

    result = crane("status")

    assert result.code == 0
    assert result.out.splitlines() == [
        URL,
        "  authentication:        client credentials: client ci, secret from $CI_SECRET",
        "  credentials:           $CI_SECRET is set",
        device,
        "  authentication:        OAuth device flow",
        "  logged in:             no",
    ]
    assert HIDDEN not in result.out + result.err


def test_status_of_an_environment_index(crane: Crane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRANE_INDEX_URL", URL)
    monkeypatch.setenv("CRANE_USERNAME", "ci")
    monkeypatch.setenv("CRANE_PASSWORD", HIDDEN)
    result = crane("status")
    assert result.code == 0
    assert result.out.splitlines()[:3] == [
        URL,
        "  authentication:        HTTP Basic: user ci, password from $CRANE_PASSWORD, "
        "described by CRANE_INDEX_URL for this run",
        "  credentials:           $CRANE_PASSWORD is set",
    ]
    assert HIDDEN not in result.out + result.err


@pytest.mark.parametrize("command", [["status"], ["index", "list"], ["login", URL]])
def test_an_incomplete_environment_is_a_configuration_error(
    crane: Crane, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("CRANE_INDEX_URL", URL)
    monkeypatch.setenv("CRANE_AUTH", "client-credentials")
    monkeypatch.setenv("CRANE_TOKEN_URL", TOKEN_URL)
    monkeypatch.setenv("CRANE_CLIENT_SECRET", HIDDEN)
    result = crane(*command)
    assert result.code == 3
    assert "CRANE_AUTH=client-credentials needs CRANE_CLIENT_ID" in one_crane_line(result)
    assert HIDDEN not in result.err


# -- login --------------------------------------------------------------------------------


def test_login_with_client_credentials(
    crane: Crane, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_cc(crane)
    monkeypatch.setenv("CI_SECRET", HIDDEN)
    result = crane("-v", "login", URL)
    assert result.code == 0
    assert result.err.splitlines()[-1] == (
        f"crane: the identity provider accepted the client credentials for {URL}"
    )
    assert [seen[0] for seen in server.seen] == [TOKEN_URL]
    assert HIDDEN not in result.out + result.err


@pytest.mark.parametrize(
    ("secret", "named"), [("wrong", "invalid_client"), (None, "$CI_SECRET, which is not set")]
)
def test_login_with_refused_or_missing_client_credentials_exits_4(
    crane: Crane,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    secret: str | None,
    named: str,
) -> None:
    register_cc(crane)
    if secret is not None:
        monkeypatch.setenv("CI_SECRET", secret)
    result = crane("login", URL)
    assert result.code == 4
    assert named in one_crane_line(result)


def test_login_with_an_environment_index(
    crane: Crane, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "CRANE_INDEX_URL": URL,
        "CRANE_CLIENT_ID": "ci",
        "CRANE_CLIENT_SECRET": HIDDEN,
        "CRANE_TOKEN_URL": TOKEN_URL,
    }.items():
        monkeypatch.setenv(name, value)
    result = crane("login", URL)
    assert result.code == 0
    assert "accepted the client credentials" in one_crane_line(result)


def test_login_to_a_token_index_has_nothing_to_do(crane: Crane, server: Server) -> None:
    assert crane("index", "register", URL, "--auth", "token", "--token-env", "T").code == 0
    result = crane("login", URL)
    assert result.code == 0
    assert one_crane_line(result) == (
        f"crane: nothing to log in: crane reads the credentials of {URL} at run time "
        "(static token from $T)"
    )
    assert server.seen == []


def test_a_basic_login_with_no_input_exits_4(crane: Crane, server: Server) -> None:
    assert crane("index", "register", URL, "--auth", "basic", "--username", "alice").code == 0
    result = crane("--no-input", "login", URL)
    assert result.code == 4
    assert "--password-env VAR" in one_crane_line(result)
    assert server.seen == []


# -- logout -------------------------------------------------------------------------------


def test_logout_forgets_a_stored_basic_password(crane: Crane) -> None:
    assert crane("index", "register", URL, "--auth", "basic", "--username", "alice").code == 0
    TokenStore().save_password(URL, HIDDEN)
    result = crane("logout", URL)
    assert result.code == 0
    assert one_crane_line(result) == f"crane: forgot the password stored for {URL}"
    assert not TokenStore().password_path_for(URL).exists()


def test_logout_of_a_confidential_device_client_revokes_with_its_secret(
    crane: Crane, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = crane(
        "index", "register", URL, "crane", TOKEN_URL, DEVICE_URL,
        "--revocation-url", REVOKE_URL, "--client-secret-env", "DEV_SECRET",
    )  # fmt: skip
    assert result.code == 0
    now = time.time()
    TokenStore().save(
        URL,
        TokenSet(access_token="acc-1", expires_at=now + 600, obtained_at=now, refresh_token="r-1"),
    )
    monkeypatch.setenv("DEV_SECRET", HIDDEN)

    result = crane("logout", URL)

    assert result.code == 0
    # The provider authenticates a confidential client's revocations (RFC 7009 section 2.1):
    # without the secret it refuses them, and the tokens stay valid.
    assert [authorization for _, _, authorization in server.seen] == [
        "Basic " + base64.b64encode(f"crane:{HIDDEN}".encode()).decode()
    ] * 2
    assert one_crane_line(result) == f"crane: logged out of {URL} (tokens revoked)"


# -- tool runs that need a login nobody can give ------------------------------------------


@pytest.fixture
def no_door(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a door was about to open")

    monkeypatch.setattr("crane_launch.launch.doors.open_index_door", refuse)


@pytest.mark.usefixtures("no_door")
def test_a_device_login_in_ci_names_what_works_there(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert crane("index", "register", URL, "crane", TOKEN_URL, DEVICE_URL).code == 0
    monkeypatch.setenv("CI", "true")
    result = crane("serve", URL)
    assert result.code == 4
    line = one_crane_line(result)
    assert line.startswith(f"crane: {URL}: not logged in; run `crane login {URL}`; ")
    assert line.endswith(CI_SCHEMES_HINT)


@pytest.mark.usefixtures("no_door")
def test_a_missing_token_variable_stops_a_run_before_it_starts(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_INDEX_URL", URL)
    monkeypatch.setenv("CRANE_AUTH", "token")
    result = crane("serve", URL)
    assert result.code == 4
    assert "$CRANE_TOKEN, which is not set" in one_crane_line(result)


@pytest.mark.usefixtures("no_door")
def test_a_malformed_token_stops_a_run_without_echoing_it(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_INDEX_URL", URL)
    monkeypatch.setenv("CRANE_TOKEN", f"Bearer {HIDDEN}")
    result = crane("-v", "serve", URL)
    assert result.code == 4
    assert "(without the word Bearer)" in result.err
    assert HIDDEN not in result.out + result.err


def test_changing_the_scheme_forgets_what_the_old_one_stored(crane: Crane) -> None:
    assert crane("index", "register", URL, "--auth", "basic", "--username", "u").code == 0
    store = TokenStore()
    store.save_password(URL, HIDDEN)
    result = crane("index", "register", URL, "--auth", "token", "--token-env", "TOK")
    assert result.code == 0, result.err
    assert store.load_password(URL) is None
    assert "the previous scheme's login: forgot the password stored" in result.err
    assert HIDDEN not in result.out + result.err


def test_changing_the_scheme_with_nothing_stored_says_nothing_more(crane: Crane) -> None:
    assert crane("index", "register", URL, "--auth", "token", "--token-env", "TOK").code == 0
    result = crane("index", "register", URL, "--auth", "basic", "--username", "u")
    assert result.code == 0, result.err
    assert "previous scheme" not in result.err
