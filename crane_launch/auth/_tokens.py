"""`TokenSet`: what one index's login left behind, and when each part stops working.

Token responses differ by provider. Keycloak sends `refresh_expires_in` (0 means the
refresh token never expires, e.g. an offline token); most others send nothing, which is
recorded as "unknown" (`refresh_expires_at is None and not refresh_never_expires`) and
treated as usable until the provider says otherwise. A response without `expires_in`
(allowed by RFC 6749) is assumed to last `DEFAULT_ACCESS_LIFETIME`; a wrong guess costs
one 401 and one refresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ACCESS_LIFETIME", "TokenSet", "parse_seconds"]

DEFAULT_ACCESS_LIFETIME = 3600.0


def parse_seconds(value: object, name: str) -> float | None:
    """A non-negative number of seconds from a JSON value (some providers send strings)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} is not a number") from None
    else:
        raise ValueError(f"{name} is not a number")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} is not a non-negative number")
    return number


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is not a non-empty string")
    return value


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is not a number")
    return float(value)


@dataclass(frozen=True, kw_only=True, repr=False)
class TokenSet:
    """Tokens for one index. `repr` never shows a token; nor does anything else here."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - a token type, not a secret
    expires_at: float
    obtained_at: float
    refresh_token: str | None = None
    refresh_expires_at: float | None = None
    refresh_never_expires: bool = False
    scope: str | None = None

    def __repr__(self) -> str:
        refresh = "<redacted>" if self.refresh_token else None
        return (
            f"TokenSet(access_token=<redacted>, token_type={self.token_type!r}, "
            f"expires_at={self.expires_at!r}, obtained_at={self.obtained_at!r}, "
            f"refresh_token={refresh}, refresh_expires_at={self.refresh_expires_at!r}, "
            f"refresh_never_expires={self.refresh_never_expires!r}, scope={self.scope!r})"
        )

    @classmethod
    def from_response(
        cls, data: Mapping[str, Any], now: float, *, previous: TokenSet | None = None
    ) -> TokenSet:
        """Build from a token endpoint's JSON answer received at `now` (epoch seconds).

        `previous` is the set being refreshed: when the answer carries no new refresh token,
        the previous one (and what is known of its expiry) is kept. Raises `ValueError` with
        a message that names fields, never values.
        """
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the answer has no access_token")
        if not all(0x21 <= ord(ch) <= 0x7E for ch in access):
            # It goes into an Authorization header: visible ASCII only (RFC 6750 2.1 is
            # stricter; providers' opaque tokens need not follow it).
            raise ValueError("access_token holds a character a header cannot carry")
        token_type = data.get("token_type", "Bearer")
        if not isinstance(token_type, str) or not token_type:
            raise ValueError("token_type is not a string")
        expires_in = parse_seconds(data.get("expires_in"), "expires_in")
        scope = data.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise ValueError("scope is not a string")
        if scope is None and previous is not None:
            scope = previous.scope  # RFC 6749 5.1: omitted means "as requested"

        refresh = data.get("refresh_token")
        if refresh is not None and (not isinstance(refresh, str) or not refresh):
            raise ValueError("refresh_token is not a string")
        refresh_expires_at: float | None = None
        never = False
        if refresh is not None:
            refresh_in = parse_seconds(data.get("refresh_expires_in"), "refresh_expires_in")
            if refresh_in == 0:
                never = True
            elif refresh_in is not None:
                refresh_expires_at = now + refresh_in
        elif previous is not None:
            refresh = previous.refresh_token
            refresh_expires_at = previous.refresh_expires_at
            never = previous.refresh_never_expires

        return cls(
            access_token=access,
            token_type=token_type,
            expires_at=now + (DEFAULT_ACCESS_LIFETIME if expires_in is None else expires_in),
            obtained_at=now,
            refresh_token=refresh,
            refresh_expires_at=refresh_expires_at,
            refresh_never_expires=never,
            scope=scope,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "obtained_at": self.obtained_at,
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at,
            "refresh_never_expires": self.refresh_never_expires,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, data: object) -> TokenSet:
        """Inverse of `to_json`. Raises `ValueError` naming the bad field, never its value."""
        if not isinstance(data, dict):
            raise ValueError("tokens is not an object")
        never = data.get("refresh_never_expires", False)
        if not isinstance(never, bool):
            raise ValueError("refresh_never_expires is not a boolean")
        scope = data.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise ValueError("scope is not a string")
        refresh = data.get("refresh_token")
        refresh_expires_at = data.get("refresh_expires_at")
        return cls(
            access_token=_text(data, "access_token"),
            token_type=_text(data, "token_type"),
            expires_at=_number(data, "expires_at"),
            obtained_at=_number(data, "obtained_at"),
            refresh_token=None if refresh is None else _text(data, "refresh_token"),
            refresh_expires_at=(
                None if refresh_expires_at is None else _number(data, "refresh_expires_at")
            ),
            refresh_never_expires=never,
            scope=scope,
        )

    def is_fresh(self, now: float, skew: float) -> bool:
        """True when the access token stays valid for the safety margin after `now`.

        The margin is `skew`, but at most half the token's lifetime: a provider that issues
        20-second tokens would otherwise never have a fresh one.
        """
        lifetime = max(0.0, self.expires_at - self.obtained_at)
        return now + min(skew, lifetime / 2) < self.expires_at

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at

    def can_refresh(self, now: float) -> bool:
        """A refresh token exists and is not known to have expired."""
        if not self.refresh_token:
            return False
        return self.refresh_expires_at is None or now < self.refresh_expires_at
