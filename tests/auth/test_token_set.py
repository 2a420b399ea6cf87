from __future__ import annotations

import pytest

from crane_launch.auth import DEFAULT_ACCESS_LIFETIME, TokenSet

NOW = 1_700_000_000.0
SECRET_ACCESS = "eyJ-secret-access"
SECRET_REFRESH = "secret-refresh-value"


def response(**extra: object) -> dict[str, object]:
    return {"access_token": SECRET_ACCESS, "token_type": "Bearer", "expires_in": 300, **extra}


def test_repr_and_str_show_no_token() -> None:
    tokens = TokenSet.from_response(response(refresh_token=SECRET_REFRESH), NOW)
    for text in (repr(tokens), str(tokens), f"{tokens}", repr([tokens])):
        assert SECRET_ACCESS not in text
        assert SECRET_REFRESH not in text
    assert "<redacted>" in repr(tokens)


def test_provider_without_refresh_expires_in_is_unknown() -> None:
    tokens = TokenSet.from_response(response(refresh_token=SECRET_REFRESH), NOW)
    assert tokens.expires_at == NOW + 300
    assert tokens.obtained_at == NOW
    assert tokens.refresh_expires_at is None
    assert tokens.refresh_never_expires is False
    assert tokens.can_refresh(NOW + 10**9)


def test_refresh_expires_in_zero_means_never() -> None:
    tokens = TokenSet.from_response(
        response(refresh_token=SECRET_REFRESH, refresh_expires_in=0), NOW
    )
    assert tokens.refresh_never_expires is True
    assert tokens.refresh_expires_at is None


def test_refresh_expires_in_sets_a_deadline() -> None:
    tokens = TokenSet.from_response(
        response(refresh_token=SECRET_REFRESH, refresh_expires_in=1800), NOW
    )
    assert tokens.refresh_expires_at == NOW + 1800
    assert not tokens.refresh_never_expires
    assert tokens.can_refresh(NOW + 1799)
    assert not tokens.can_refresh(NOW + 1800)


def test_no_refresh_token() -> None:
    tokens = TokenSet.from_response(response(scope="openid index:read"), NOW)
    assert tokens.refresh_token is None
    assert not tokens.can_refresh(NOW)
    assert tokens.scope == "openid index:read"


def test_refresh_without_new_refresh_token_keeps_the_previous_one() -> None:
    first = TokenSet.from_response(
        response(refresh_token=SECRET_REFRESH, refresh_expires_in=0, scope="a b"), NOW
    )
    second = TokenSet.from_response({"access_token": "new"}, NOW + 100, previous=first)
    assert second.access_token == "new"
    assert second.refresh_token == SECRET_REFRESH
    assert second.refresh_never_expires
    assert second.scope == "a b"


def test_missing_expires_in_assumes_the_default_lifetime() -> None:
    tokens = TokenSet.from_response({"access_token": "x"}, NOW)
    assert tokens.expires_at == NOW + DEFAULT_ACCESS_LIFETIME
    assert tokens.token_type == "Bearer"


def test_expires_in_as_a_string_is_accepted() -> None:
    assert TokenSet.from_response(response(expires_in="60"), NOW).expires_at == NOW + 60


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"access_token": ""},
        {"access_token": 12},
        {"access_token": SECRET_ACCESS, "expires_in": "soon"},
        {"access_token": SECRET_ACCESS, "expires_in": -1},
        {"access_token": SECRET_ACCESS, "expires_in": True},
        {"access_token": SECRET_ACCESS, "refresh_token": 5},
    ],
)
def test_unusable_responses_raise_without_quoting_values(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"access_token|expires_in|refresh_token") as info:
        TokenSet.from_response(data, NOW)
    assert SECRET_ACCESS not in str(info.value)


def test_json_round_trip() -> None:
    tokens = TokenSet.from_response(
        response(refresh_token=SECRET_REFRESH, refresh_expires_in=600, scope="s"), NOW
    )
    assert TokenSet.from_json(tokens.to_json()) == tokens


@pytest.mark.parametrize(
    ("field", "value"),
    [("access_token", None), ("expires_at", "x"), ("refresh_never_expires", "no"), ("scope", 1)],
)
def test_from_json_rejects_wrong_shapes(field: str, value: object) -> None:
    data = TokenSet.from_response(response(), NOW).to_json()
    data[field] = value
    with pytest.raises(ValueError, match=field):
        TokenSet.from_json(data)


def test_freshness_keeps_a_skew_margin() -> None:
    tokens = TokenSet.from_response(response(expires_in=300), NOW)
    assert tokens.is_fresh(NOW + 269, skew=30)
    assert not tokens.is_fresh(NOW + 270, skew=30)
    assert not tokens.is_expired(NOW + 299)
    assert tokens.is_expired(NOW + 300)


def test_short_lived_tokens_are_fresh_for_half_their_life() -> None:
    tokens = TokenSet.from_response(response(expires_in=20), NOW)
    assert tokens.is_fresh(NOW + 9, skew=30)
    assert not tokens.is_fresh(NOW + 10, skew=30)
