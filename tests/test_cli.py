"""The `crane` command, called in-process with `CRANE_HOME` under tmp_path.

Nothing here opens a socket: registration by discovery uses a fake `discover`, and the
commands that would talk to an identity provider are only run where they fail first.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from crane_launch import __version__
from crane_launch.auth import Endpoints, TokenSet, TokenStore
from crane_launch.config import Registry
from tests.clirun import Crane, Result, in_process

URL = "https://pkgs.example.test/simple/"
ISSUER = "https://idp.example.test/realms/dev"
TOKEN_URL = f"{ISSUER}/token"
DEVICE_URL = f"{ISSUER}/device"
POSITIONAL = [URL, "crane-cli", TOKEN_URL, DEVICE_URL]
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def crane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    for name in ("CRANE_NO_INPUT", "CI"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def _no_hardening_of_the_test_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # `main` turns core dumps off for crane's process; in-process, that would be pytest's
    # (tests/test_process.py checks the hardening in a process of its own).
    monkeypatch.setattr("crane_launch.cli.harden", lambda: None)


@pytest.fixture
def crane(crane_home: Path, capsys: pytest.CaptureFixture[str]) -> Crane:
    """Run `crane ARGS...` in-process; return its exit code and what it printed."""

    return in_process(capsys)


@pytest.fixture
def discovered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake discovery: records the issuers asked for, answers with fixed endpoints."""
    asked: list[str] = []

    def discover(
        issuer: str, client: httpx.Client, *, need_device: bool = True, complete: bool = True
    ) -> Endpoints:
        asked.append(issuer)
        return Endpoints(
            issuer=issuer.rstrip("/"),
            token_url=TOKEN_URL,
            device_url=DEVICE_URL,
            revocation_url=f"{ISSUER}/revoke",
        )

    monkeypatch.setattr("crane_launch.commands.index.discover", discover)
    return asked


def stored() -> list[dict[str, object]]:
    indexes = json.loads(Registry.default_path().read_text())["indexes"]
    assert isinstance(indexes, list)
    return indexes


def one_crane_line(result: Result) -> str:
    """crane's own errors: one `crane: ` line on stderr, no traceback."""
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("crane: ")
    return lines[0]


def log_in(url: str = URL, **fields: object) -> TokenSet:
    now = time.time()
    tokens = TokenSet(
        access_token="acc-secret",
        expires_at=fields.pop("expires_at", now + 630),  # type: ignore[arg-type]
        obtained_at=now,
        refresh_token="ref-secret",
        **fields,  # type: ignore[arg-type]
    )
    TokenStore().save(url, tokens)
    return tokens


# -- version and help ---------------------------------------------------------------------


def test_version(crane: Crane) -> None:
    result = crane("--version")
    assert result.code == 0
    assert __version__ in result.out


@pytest.mark.parametrize(
    ("args", "purpose"),
    [
        ([], "Run pip, uv, pipx, pdm, poetry and any other command against private indexes"),
        (["index"], "Register, list and remove private indexes"),
        (["index", "register"], "Register URL (or update it)"),
        (["index", "list"], "registered indexes and whether you are logged in"),
        (["index", "remove"], "Forget URL and its stored tokens"),
        (["login"], "Log in to URL now: the OAuth device flow, or the password"),
        (["logout"], "Remove the tokens or password stored for URL"),
        (["status"], "logged in or not, and when the tokens expire"),
        (["serve"], "Serve URL's private-first index on 127.0.0.1"),
    ],
)
def test_help_says_what_each_command_is_for(crane: Crane, args: list[str], purpose: str) -> None:
    for flag in ("--help", "-h"):
        result = crane(*args, flag)
        assert result.code == 0
        assert purpose in " ".join(result.out.split())
        assert "Usage: crane" in result.out


def test_the_group_help_lists_every_command(crane: Crane) -> None:
    out = crane("--help").out
    for command in ("index", "login", "logout", "status", "pip", "uv", "poetry", "serve"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


# -- index register -----------------------------------------------------------------------


def test_register_positional_form_stores_the_normalised_url(crane: Crane) -> None:
    result = crane(
        "index", "register", "HTTPS://Host.Example:443/simple", "cid", TOKEN_URL, DEVICE_URL
    )

    assert result.code == 0
    assert one_crane_line(result) == (
        "crane: registered https://host.example/simple/ (OAuth device flow)"
    )
    assert stored() == [
        {
            "url": "https://host.example/simple/",
            "client_id": "cid",
            "token_url": TOKEN_URL,
            "device_url": DEVICE_URL,
            "auth": "device",
            "scopes": ["openid", "offline_access"],
        }
    ]


def test_register_by_discovery(crane: Crane, discovered: list[str]) -> None:
    result = crane("index", "register", URL, "--client-id", "crane-cli", "--issuer", ISSUER)

    assert result.code == 0
    assert discovered == [ISSUER]
    [index] = stored()
    assert index["client_id"] == "crane-cli"
    assert index["issuer"] == ISSUER
    assert index["token_url"] == TOKEN_URL
    assert index["device_url"] == DEVICE_URL
    assert index["revocation_url"] == f"{ISSUER}/revoke"
    assert index["scopes"] == ["openid", "offline_access"]


@pytest.mark.parametrize(
    ("options", "scopes"),
    [
        (["--scope", "openid", "--scope", "packages:read"], ["openid", "packages:read"]),
        (["--scope", "openid offline_access packages"], ["openid", "offline_access", "packages"]),
        (["--scope", "a b", "--scope", "c"], ["a", "b", "c"]),
    ],
)
def test_scopes_repeat_or_are_space_separated(
    crane: Crane, options: list[str], scopes: list[str]
) -> None:
    assert crane("index", "register", *POSITIONAL, *options).code == 0
    assert stored()[0]["scopes"] == scopes


def test_registering_again_updates_in_place_and_keeps_other_fields(
    crane: Crane, discovered: list[str]
) -> None:
    first = crane(
        "index",
        "register",
        "https://pkgs.example.test/simple",
        "--client-id",
        "crane-cli",
        "--issuer",
        ISSUER,
        "--resource",
        "https://pkgs.example.test/",
        "--public-index",
        "https://mirror.example.test/simple",
        "--probe-path",
        "/health",
    )
    assert first.code == 0
    before = stored()[0]

    again = crane("index", "register", "HTTPS://PKGS.example.test:443/simple/", "--scope", "s1")

    assert again.code == 0
    assert one_crane_line(again) == f"crane: updated {URL} (OAuth device flow)"
    assert discovered == [ISSUER]  # the update needed no discovery
    assert stored() == [{**before, "scopes": ["s1"]}]
    assert before["public_index"] == "https://mirror.example.test/simple/"
    assert before["probe_path"] == "/health"


@pytest.mark.parametrize(
    "endpoints",
    [["crane-cli"], ["crane-cli", TOKEN_URL], ["crane-cli", TOKEN_URL, DEVICE_URL, "extra"]],
)
def test_the_wrong_number_of_positional_arguments_is_a_usage_error(
    crane: Crane, endpoints: list[str]
) -> None:
    result = crane("index", "register", URL, *endpoints)
    assert result.code == 2
    assert "CLIENT_ID TOKEN_URL DEVICE_URL" in one_crane_line(result)
    assert not Registry.default_path().exists()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://pkgs.example.test/simple/", "is not an http:// or https:// URL"),
        ("https://user:hunter2@pkgs.example.test/simple/", "must not carry credentials"),
        ("https://pkgs.example.test/simple/?token=x", "no query or fragment"),
    ],
)
def test_a_bad_index_url_is_a_usage_error(crane: Crane, url: str, problem: str) -> None:
    result = crane("index", "register", url, "crane-cli", TOKEN_URL, DEVICE_URL)
    assert result.code == 2
    line = one_crane_line(result)
    assert problem in line
    assert "hunter2" not in line
    assert not Registry.default_path().exists()


def test_a_bad_endpoint_url_is_a_usage_error(crane: Crane) -> None:
    result = crane("index", "register", URL, "crane-cli", "idp.example.test/token", DEVICE_URL)
    assert result.code == 2
    assert "'idp.example.test/token' is not an http:// or https:// URL" in one_crane_line(result)


def test_a_new_index_needs_a_client_id(crane: Crane, discovered: list[str]) -> None:
    result = crane("index", "register", URL, "--issuer", ISSUER)
    assert result.code == 2
    assert "a client id is needed" in one_crane_line(result)
    assert not Registry.default_path().exists()


def test_a_new_index_needs_endpoints(crane: Crane) -> None:
    result = crane("index", "register", URL, "--client-id", "crane-cli")
    assert result.code == 2
    assert "--issuer ISSUER" in one_crane_line(result)


def test_endpoints_as_arguments_and_as_options_is_a_usage_error(crane: Crane) -> None:
    result = crane("index", "register", *POSITIONAL, "--client-id", "other")
    assert result.code == 2
    assert "either as arguments or options" in one_crane_line(result)


# -- index list, index remove -------------------------------------------------------------


def test_list_with_no_index_says_how_to_add_one(crane: Crane) -> None:
    result = crane("index", "list")
    assert result.code == 0
    assert result.out == ""
    assert "crane index register" in one_crane_line(result)


def test_list_shows_each_index_and_its_login_state(crane: Crane) -> None:
    other = "https://other.example.test/simple/"
    assert crane("index", "register", *POSITIONAL).code == 0
    assert crane("index", "register", other, "c2", TOKEN_URL, DEVICE_URL).code == 0
    log_in(URL)

    result = crane("index", "list")

    assert result.code == 0
    assert result.out.splitlines() == [
        f"{URL}\tdevice\tlogged in",
        f"{other}\tdevice\tnot logged in",
    ]
    assert "secret" not in result.out + result.err


def test_remove_forgets_the_index_and_its_tokens(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    log_in(URL)
    token_file = TokenStore().path_for(URL)
    assert token_file.exists()

    result = crane("index", "remove", "https://PKGS.example.test/simple")

    assert result.code == 0
    assert one_crane_line(result) == f"crane: removed {URL}"
    assert stored() == []
    assert not token_file.exists()


def test_removing_a_typo_suggests_the_closest_index(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    elsewhere = ["https://elsewhere.test/", "c", TOKEN_URL, DEVICE_URL]
    assert crane("index", "register", *elsewhere).code == 0

    result = crane("index", "remove", "https://pkgs.example.test/simpel/")

    assert result.code == 3
    assert f"did you mean {URL}?" in one_crane_line(result)
    assert len(stored()) == 2


# -- status, logout -----------------------------------------------------------------------


def test_status_with_no_index(crane: Crane) -> None:
    result = crane("status")
    assert result.code == 0
    assert "no index registered" in one_crane_line(result)


def test_status_when_not_logged_in(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    result = crane("status")
    assert result.code == 0
    assert result.out.splitlines() == [
        URL,
        "  authentication:        OAuth device flow",
        "  logged in:             no",
    ]


def status_fields(out: str) -> dict[str, str]:
    fields = {}
    for line in out.splitlines()[1:]:
        name, _, value = line.strip().partition(":")
        fields[name] = value.strip()
    return fields


def test_status_when_logged_in_shows_when_each_token_expires(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    log_in(URL, refresh_expires_at=time.time() + 3 * 86400 + 600)

    result = crane("status")

    assert result.code == 0
    assert result.out.splitlines()[0] == URL
    fields = status_fields(result.out)
    assert fields["logged in"] == "yes"
    assert DATE.match(fields["access token expires"])
    assert fields["access token expires"].endswith("(in 10 min)")
    assert DATE.match(fields["refresh token expires"])
    assert fields["refresh token expires"].endswith("(in 3 days)")
    assert "secret" not in result.out + result.err


@pytest.mark.parametrize(
    ("fields", "shown"),
    [({"refresh_never_expires": True}, "never"), ({}, "unknown")],
)
def test_status_refresh_expiry_never_or_unknown(
    crane: Crane, fields: dict[str, object], shown: str
) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    log_in(URL, **fields)
    assert status_fields(crane("status").out)["refresh token expires"] == shown


def test_status_with_an_expired_access_token_that_can_be_refreshed(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    log_in(URL, expires_at=time.time() - 60)
    fields = status_fields(crane("status").out)
    assert fields["logged in"] == "yes"
    assert fields["access token expires"].endswith("(expired)")


def test_logout_when_not_logged_in(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    result = crane("logout", URL)
    assert result.code == 0
    assert one_crane_line(result) == f"crane: not logged in to {URL}"


def test_logout_removes_the_tokens(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0  # no revocation URL: no request
    log_in(URL)

    result = crane("logout", "https://pkgs.example.test/simple")

    assert result.code == 0
    line = one_crane_line(result)
    assert line.startswith(
        f"crane: logged out of {URL}: tokens deleted here; the index names no revocation "
        "endpoint, so the access token stays valid until it expires, "
    ), line
    assert DATE.search(line), line
    assert line.endswith("(in 10 min)"), line
    assert TokenStore().load(URL) is None
    assert crane("index", "list").out == f"{URL}\tdevice\tnot logged in\n"


# -- files crane cannot use ---------------------------------------------------------------


def write_registry(content: bytes) -> Path:
    path = Registry.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["index", "list"],
        ["index", "register", *POSITIONAL],
        ["index", "remove", URL],
        ["status"],
        ["login", URL],
        ["logout", URL],
        ["serve", URL],
    ],
)
@pytest.mark.parametrize("content", [b"garbage{", b'{"indexes": [1]}', b"\xff\xfe\x00"])
def test_a_corrupt_registry_is_named_and_never_rewritten(
    crane: Crane, args: list[str], content: bytes
) -> None:
    path = write_registry(content)

    result = crane(*args)

    assert result.code == 3
    line = one_crane_line(result)
    assert str(path) in line
    assert "fix or remove the file" in line
    assert path.read_bytes() == content


def test_an_unreadable_registry_is_named_and_left_alone(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite runs as root, which reads a mode-000 file anyway: refuse the read instead.
    path = write_registry(b'{"version": 1, "indexes": []}')
    real_read = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    result = crane("index", "register", *POSITIONAL)
    assert result.code == 3
    line = one_crane_line(result)
    assert str(path) in line
    assert "cannot be read" in line
    monkeypatch.undo()
    assert path.read_bytes() == b'{"version": 1, "indexes": []}'


def test_a_registry_path_that_is_a_directory_is_named(crane: Crane) -> None:
    Registry.default_path().mkdir(parents=True)
    result = crane("status")
    assert result.code == 3
    assert f"{Registry.default_path()}: cannot be read" in one_crane_line(result)


def test_a_corrupt_token_file_is_named_by_status_and_left_alone(crane: Crane) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    log_in(URL)
    token_file = TokenStore().path_for(URL)
    token_file.write_text("{not json")

    result = crane("status")

    assert result.code == 3
    assert str(token_file) in one_crane_line(result)
    assert token_file.read_text() == "{not json"


# -- errors are one line ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["login", "logout", "serve"])
def test_an_unknown_index_is_a_configuration_error(crane: Crane, command: str) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0

    result = crane(command, "https://pkgs.example.test/simpel")

    assert result.code == 3
    line = one_crane_line(result)
    assert "https://pkgs.example.test/simpel is not a registered index" in line
    assert f"did you mean {URL}?" in line


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["login"], "Missing argument 'URL'"),
        (["index", "register"], "Missing argument 'URL'"),
        (["login", "--bogus", URL], "No such option"),
        (["bogus"], "No such command 'bogus'"),
        (["serve", URL, "--port", "99999"], "Invalid value for '--port'"),
    ],
)
def test_a_wrong_command_line_is_one_usage_line(
    crane: Crane, args: list[str], problem: str
) -> None:
    result = crane(*args)
    assert result.code == 2
    line = one_crane_line(result)
    assert problem in line
    assert "--help" in line


def test_an_unexpected_failure_is_one_line_not_a_traceback(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Registry, "load", broken)
    result = crane("status")
    assert result.code == 1
    assert one_crane_line(result) == (
        "crane: unexpected error: OSError: [Errno 28] No space left on device "
        "(run with -v for details)"
    )


# -- exit codes and the console -----------------------------------------------------------


@pytest.mark.parametrize("tool", ["pip", "uv", "poetry"])
@pytest.mark.parametrize("code", [0, 1, 7, 130])
def test_a_tool_commands_exit_code_is_cranes(
    crane: Crane, monkeypatch: pytest.MonkeyPatch, tool: str, code: int
) -> None:
    seen: list[tuple[list[str], bool]] = []

    def fake(args: list[str], *, no_input: bool, no_cache: bool = False, **_: object) -> int:
        seen.append((args, no_input))
        return code

    monkeypatch.setattr(f"crane_launch.commands.tools.{tool}", fake)
    result = crane("--no-input", tool, "install", "-i", URL, "--help")
    assert result.code == code
    assert seen == [(["install", "-i", URL, "--help"], True)]


def test_serve_returns_its_exit_code(crane: Crane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "crane_launch.commands.tools.serve",
        lambda url, *, port, no_input, no_cache=False: 5 if port == 8 else 0,
    )
    assert crane("serve", URL, "--port", "8").code == 5


def test_verbose_shows_every_rooms_debug_lines_with_credentials_redacted(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    def noisy(args: list[str], *, no_input: bool, no_cache: bool = False, **_: object) -> int:
        for room in ("auth._credentials", "proxy.door", "launch.run"):
            logging.getLogger(f"crane_launch.{room}").debug(
                "%s: Authorization: Bearer tok-%s refresh_token=ref-%s", room, room, room
            )
        return 0

    monkeypatch.setattr("crane_launch.commands.tools.pip", noisy)
    quiet = crane("pip", "install", "x")
    assert quiet.err == ""
    verbose = crane("-v", "pip", "install", "x")
    lines = verbose.err.splitlines()
    assert lines == [
        f"crane: {room}: Authorization: Bearer [redacted] refresh_token=[redacted]"
        for room in ("auth._credentials", "proxy.door", "launch.run")
    ]
    assert "tok-" not in verbose.err
    assert "ref-" not in verbose.err


def test_status_names_the_hosts_the_guard_tunnels_blind(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert crane("index", "register", *POSITIONAL).code == 0
    monkeypatch.setenv("CRANE_PASS_THROUGH", "git.example.test, Pins.Example.test")
    result = crane("status")
    assert result.code == 0
    assert (
        "guard: git.example.test, pins.example.test tunnelled blind, unchecked "
        "(CRANE_PASS_THROUGH)" in result.out.splitlines()
    )
    monkeypatch.delenv("CRANE_PASS_THROUGH")
    assert "guard:" not in crane("status").out


@pytest.mark.parametrize("tool", ["pip", "uv", "poetry"])
def test_report_goes_to_the_tool_commands(
    crane: Crane, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tool: str
) -> None:
    seen: list[object] = []

    def fake(args: list[str], *, no_input: bool, no_cache: bool = False, **rest: object) -> int:
        seen.append(rest.get("report"))
        return 0

    monkeypatch.setattr(f"crane_launch.commands.tools.{tool}", fake)
    assert crane("--report", str(tmp_path / "r.json"), tool, "install", "x").code == 0
    monkeypatch.setenv("CRANE_REPORT", str(tmp_path / "e.json"))
    assert crane(tool, "install", "x").code == 0
    assert seen == [str(tmp_path / "r.json"), str(tmp_path / "e.json")]


def test_report_with_another_command_is_a_usage_error_unless_from_the_environment(
    crane: Crane, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = crane("--report", "r.json", "status")
    assert result.code == 2
    assert "--report is for a tool run" in result.err
    monkeypatch.setenv("CRANE_REPORT", "r.json")  # a CI job's setting: other commands run
    assert crane("status").code == 0


def test_help_lists_every_front_door_with_an_example(crane: Crane) -> None:
    result = crane("--help")
    assert result.code == 0
    for example in (
        "crane pip install -i URL",
        "crane uv pip install -i URL",
        "crane uv sync",
        "crane uv tool install -i URL",
        "crane uvx --index-url URL",
        "crane pipx install -i URL",
        "crane poetry install",
        "crane pdm install",
        "crane run -- tox",
        "crane serve URL",
    ):
        assert example in result.out, example
