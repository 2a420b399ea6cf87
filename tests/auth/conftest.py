"""Fixtures for the auth room: a fake clock, a scripted identity provider, a store.

The scripted provider is an `httpx.MockTransport` handler. It records every request with
the fake clock's time, answers device-code polls from a script, and refreshes like
oidc-provider: each refresh token works once, and presenting a used one is recorded as a
reuse (and answered with `invalid_grant`).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from crane_launch.auth import TokenSet, TokenStore, make_client
from crane_launch.config import PrivateIndex

INDEX_URL = "https://pkgs.example.test/simple/"
ISSUER = "https://idp.example.test"
TOKEN_URL = f"{ISSUER}/token"
DEVICE_URL = f"{ISSUER}/device"
REVOKE_URL = f"{ISSUER}/revoke"
START = 1_700_000_000.0


class FakeClock:
    """Epoch time that moves only when `sleep` is called (or `advance`)."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Seen:
    at: float
    path: str
    form: dict[str, str]


Reply = tuple[int, Any]


@dataclass
class ScriptedIdP:
    clock: Callable[[], float]
    device_reply: Reply = (
        200,
        {
            "device_code": "dev-code-secret",
            "user_code": "WDJB-MJHT",
            "verification_uri": f"{ISSUER}/device",
            "verification_uri_complete": f"{ISSUER}/device?user_code=WDJB-MJHT",
            "expires_in": 300,
        },
    )
    # Answers to device-code polls, in order; the last one repeats.
    polls: list[Reply] = field(default_factory=lambda: [(200, {"access_token": "acc-1"})])
    # Refresh behaviour: rotate (new refresh token each time) and refresh lifetime.
    rotate: bool = True
    access_lifetime: int = 300
    refresh_expires_in: int | None = None
    refresh_reply: Reply | None = None  # when set, answers every refresh as is
    refresh_delay: float = 0.0  # real seconds, to widen races in concurrency tests
    revoke_status: int = 200
    valid_refresh: set[str] = field(default_factory=set)
    used_refresh: set[str] = field(default_factory=set)
    reused: list[str] = field(default_factory=list)
    refreshes: int = 0
    seen: list[Seen] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(2))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self) -> httpx.Client:
        return make_client(transport=self.transport())

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def forms(self, path: str) -> list[dict[str, str]]:
        return [s.form for s in self.seen if s.path == path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        with self._lock:
            self.seen.append(Seen(self.clock(), request.url.path, form))
        if request.url.path == "/device":
            return _json(*self.device_reply)
        if request.url.path == "/revoke":
            return httpx.Response(self.revoke_status)
        if request.url.path == "/token":
            if form.get("grant_type") == "refresh_token":
                return self._refresh(form)
            with self._lock:
                reply = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
            return _json(*reply)
        return httpx.Response(404)

    def _refresh(self, form: dict[str, str]) -> httpx.Response:
        if self.refresh_delay:
            time.sleep(self.refresh_delay)
        with self._lock:
            if self.refresh_reply is not None:
                self.refreshes += 1
                return _json(*self.refresh_reply)
            token = form.get("refresh_token", "")
            if token in self.used_refresh:
                self.reused.append(token)
                self.valid_refresh.clear()  # oidc-provider revokes the whole grant
                return _json(400, {"error": "invalid_grant", "error_description": "reused"})
            if token not in self.valid_refresh:
                return _json(400, {"error": "invalid_grant", "error_description": "unknown"})
            self.refreshes += 1
            n = next(self._counter)
            body: dict[str, Any] = {
                "access_token": f"acc-{n}",
                "token_type": "Bearer",
                "expires_in": self.access_lifetime,
            }
            if self.rotate:
                self.valid_refresh.discard(token)
                self.used_refresh.add(token)
                body["refresh_token"] = f"ref-{n}"
                self.valid_refresh.add(f"ref-{n}")
                if self.refresh_expires_in is not None:
                    body["refresh_expires_in"] = self.refresh_expires_in
            return _json(200, body)


def _json(status: int, body: Any) -> httpx.Response:
    if isinstance(body, str | bytes):
        return httpx.Response(status, content=body)
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )


@pytest.fixture
def crane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    return home


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> ScriptedIdP:
    return ScriptedIdP(clock)


@pytest.fixture
def index() -> PrivateIndex:
    return PrivateIndex(
        url=INDEX_URL,
        client_id="crane-test",
        token_url=TOKEN_URL,
        device_url=DEVICE_URL,
        revocation_url=REVOKE_URL,
    )


@pytest.fixture
def store(crane_home: Path) -> TokenStore:
    return TokenStore()


def tokens(
    now: float,
    *,
    access: str = "acc-1",
    refresh: str | None = "ref-1",
    lifetime: float = 300.0,
    age: float = 0.0,
) -> TokenSet:
    """A token set obtained `age` seconds before `now`."""
    return TokenSet(
        access_token=access,
        expires_at=now - age + lifetime,
        obtained_at=now - age,
        refresh_token=refresh,
    )


@pytest.fixture
def make_tokens() -> Callable[..., TokenSet]:
    return tokens
