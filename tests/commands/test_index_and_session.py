"""The decisions behind `crane index ...` and `crane status` (commands/index, session)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crane_launch.auth import Endpoints, LogoutResult, TokenSet, TokenStore
from crane_launch.commands import index as index_command
from crane_launch.commands import session
from crane_launch.commands.index import Registration, split_scopes
from crane_launch.commands.session import IndexStatus, describe_expiry
from crane_launch.config import DEFAULT_SCOPES, Registry
from crane_launch.errors import UnknownIndexError, UsageError

URL = "https://pkgs.example.test/simple/"
ISSUER = "https://idp.example.test/realms/dev"
TOKEN_URL = f"{ISSUER}/token"
DEVICE_URL = f"{ISSUER}/device"
NOW = 1_700_000_000.0


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "home"))
    return Registry(Registry.default_path())


@pytest.fixture
def discovered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def discover(
        issuer: str, client: httpx.Client, *, need_device: bool = True, complete: bool = True
    ) -> Endpoints:
        asked.append(issuer)
        return Endpoints(
            issuer=ISSUER,
            token_url=TOKEN_URL,
            device_url=DEVICE_URL,
            revocation_url=f"{ISSUER}/revoke",
        )

    monkeypatch.setattr(index_command, "discover", discover)
    return asked


def positional(url: str = URL, **options: object) -> Registration:
    return Registration(url=url, positional=("crane", TOKEN_URL, DEVICE_URL), **options)  # type: ignore[arg-type]


def test_positional_registration(registry: Registry) -> None:
    index, existed = index_command.register(
        registry, positional("HTTPS://PKGS.example.test:443/simple")
    )
    assert not existed
    assert index.url == URL
    assert (index.client_id, index.token_url, index.device_url) == ("crane", TOKEN_URL, DEVICE_URL)
    assert index.scopes == DEFAULT_SCOPES == ("openid", "offline_access")
    assert index.issuer is None


def test_discovery_fills_the_endpoints_and_explicit_ones_win(
    registry: Registry, discovered: list[str]
) -> None:
    index, _ = index_command.register(
        registry,
        Registration(
            url=URL,
            client_id="crane",
            issuer=f"{ISSUER}/",
            token_url="https://idp.example.test/custom-token",
        ),
    )
    assert discovered == [f"{ISSUER}/"]
    assert index.issuer == ISSUER  # as the provider spells it
    assert index.token_url == "https://idp.example.test/custom-token"
    assert index.device_url == DEVICE_URL
    assert index.revocation_url == f"{ISSUER}/revoke"


def test_registering_again_changes_only_what_was_given(registry: Registry) -> None:
    index_command.register(
        registry,
        positional(resource="https://pkgs.example.test/", public_index="https://pub.test/simple"),
    )
    index, existed = index_command.register(
        registry, Registration(url=URL, client_id="renamed", scopes=("read",))
    )
    assert existed
    assert len(registry) == 1
    assert index.client_id == "renamed"
    assert index.scopes == ("read",)
    assert index.token_url == TOKEN_URL
    assert index.resource == "https://pkgs.example.test/"
    assert index.public_index == "https://pub.test/simple/"


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (Registration(url=URL, positional=("crane", TOKEN_URL)), "the positional form is"),
        (positional(client_id="other"), "either as arguments or options"),
        (positional(token_url=TOKEN_URL), "either as arguments or options"),
        (Registration(url=URL, token_url=TOKEN_URL, device_url=DEVICE_URL), "a client id"),
        (Registration(url=URL, client_id="crane"), "the token and device endpoints"),
        (
            Registration(url=URL, positional=("crane", "file:///token", DEVICE_URL)),
            "'file:///token' is not an http:// or https:// URL",
        ),
        (positional(public_index="ftp://mirror.test/"), "is not an http:// or https:// URL"),
        (positional(url="https://u:p@pkgs.example.test/"), "must not carry credentials"),
    ],
)
def test_registrations_that_cannot_work_are_refused(
    registry: Registry, request_: Registration, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        index_command.register(registry, request_)
    assert len(registry) == 0


@pytest.mark.parametrize(
    ("values", "scopes"),
    [
        ((), None),
        (("",), None),
        (("openid",), ("openid",)),
        (("openid offline_access",), ("openid", "offline_access")),
        (("a", "b c"), ("a", "b", "c")),
        (("a,b",), ("a", "b")),
    ],
)
def test_scopes_repeat_or_are_space_separated(
    values: tuple[str, ...], scopes: tuple[str, ...] | None
) -> None:
    assert split_scopes(values) == scopes


@pytest.mark.parametrize(
    ("at", "never", "shown"),
    [
        (None, True, "never"),
        (NOW + 100, True, "never"),
        (None, False, "unknown"),
        (NOW - 1, False, "2023-11-14 22:13:19 UTC (expired)"),
        (NOW + 90, False, "2023-11-14 22:14:50 UTC (in 90 s)"),
        (NOW + 600, False, "2023-11-14 22:23:20 UTC (in 10 min)"),
        (NOW + 5 * 3600, False, "2023-11-15 03:13:20 UTC (in 5 h)"),
        (NOW + 30 * 86400, False, "2023-12-14 22:13:20 UTC (in 30 days)"),
    ],
)
def test_describe_expiry(at: float | None, never: bool, shown: str) -> None:
    assert describe_expiry(at, never=never, now=NOW) == shown


def test_remove_deletes_the_tokens_but_not_other_indexes(registry: Registry) -> None:
    other = "https://other.example.test/simple/"
    index_command.register(registry, positional())
    index_command.register(registry, positional(other))
    store = TokenStore()
    tokens = TokenSet(access_token="a", expires_at=NOW + 60, obtained_at=NOW)
    store.save(URL, tokens)
    store.save(other, tokens)

    removed = index_command.remove(registry, "https://PKGS.example.test/simple")

    assert removed.url == URL
    assert [index.url for index in registry] == [other]
    assert store.load(URL) is None
    assert store.load(other) == tokens


def test_removing_an_unknown_index_changes_nothing(registry: Registry) -> None:
    index_command.register(registry, positional())
    with pytest.raises(UnknownIndexError):
        index_command.remove(registry, "https://pkgs.example.test/other/")
    assert len(registry) == 1


def test_index_lines_without_tokens_show_no_expiry(registry: Registry) -> None:
    index_command.register(registry, positional())
    assert session.statuses(registry, {}) == [
        IndexStatus(URL, False, "-", "-", "device", "OAuth device flow", "not logged in")
    ]


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (LogoutResult(False, False), "not logged in to {url}"),
        (LogoutResult(True, True, True, True, NOW + 600), "logged out of {url} (tokens revoked)"),
        (
            LogoutResult(True, True, True, True, NOW + 600, access_self_contained=True),
            "logged out of {url}: refresh token revoked; the access token is self-contained "
            "(a JWT) and stays valid until it expires, 2023-11-14 22:23:20 UTC (in 10 min)",
        ),
        (
            LogoutResult(True, False, True, False, NOW + 600),
            "logged out of {url}: refresh token revoked; this provider did not revoke the "
            "access token, which expires 2023-11-14 22:23:20 UTC (in 10 min)",
        ),
        (
            LogoutResult(True, False, False, True, NOW + 600),
            "logged out of {url}: the provider refused to revoke the refresh token: revoke "
            "crane's access at the provider; access token revoked",
        ),
        (
            LogoutResult(True, True, None, True, NOW + 600),
            "logged out of {url}: no refresh token to revoke; access token revoked",
        ),
    ],
)
def test_logout_says_what_was_revoked_and_what_stays_valid(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, result: LogoutResult, said: str
) -> None:
    index, _ = index_command.register(
        registry, positional(revocation_url="https://idp.example.test/revoke")
    )
    monkeypatch.setattr("crane_launch.commands.session.Credentials.logout", lambda self: result)
    monkeypatch.setattr(session, "describe_expiry", lambda at: describe_expiry(at, now=NOW))
    assert session.logout(index, {}) == said.format(url=URL)
