from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from crane_launch.auth import Credentials, LoginPolicy, TokenSet, TokenStore, make_client
from crane_launch.config import PrivateIndex
from crane_launch.errors import (
    AuthError,
    ConfigError,
    CorruptFileError,
    LoginRequiredError,
    UpstreamError,
)
from tests.recording import RecordingHandler


class NoUI:
    def prompt(self, *args: Any) -> None:
        pass

    def waiting(self, remaining_seconds: float) -> None:
        pass

    def finished(self, ok: bool) -> None:
        pass


def no_network() -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request to {request.url}")

    return make_client(transport=httpx.MockTransport(handle))


@pytest.fixture
def credentials(index: PrivateIndex, store: TokenStore, idp: Any, clock: Any) -> Credentials:
    return Credentials(index, store, http=idp.client(), clock=clock, sleep=clock.sleep)


def stale(clock: Any, make_tokens: Callable[..., TokenSet], **kwargs: Any) -> TokenSet:
    """Tokens whose access token expired ten seconds ago."""
    return make_tokens(clock(), age=310, **kwargs)


def test_a_fresh_token_needs_no_request(
    index: PrivateIndex, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    store.save(index.url, make_tokens(clock()))
    credentials = Credentials(index, store, http=no_network(), clock=clock)
    assert credentials.access_token() == "acc-1"
    clock.advance(269)
    assert credentials.access_token() == "acc-1"


def test_not_logged_in(credentials: Credentials, idp: Any) -> None:
    with pytest.raises(LoginRequiredError, match="not logged in") as info:
        credentials.access_token()
    assert info.value.index_url == credentials.url
    assert idp.seen == []


def test_refresh_rotates_and_persists_the_newest_refresh_token(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    idp.valid_refresh.add("ref-1")
    assert credentials.access_token() == "acc-2"
    saved = store.load(credentials.url)
    assert saved is not None
    assert saved.access_token == "acc-2"
    assert saved.refresh_token == "ref-2"
    assert saved.expires_at == clock() + 300
    assert idp.forms("/token") == [
        {"grant_type": "refresh_token", "refresh_token": "ref-1", "client_id": "crane-test"}
    ]
    # Within the skew margin: refreshed again, with the new refresh token.
    clock.advance(275)
    assert credentials.access_token() == "acc-3"
    assert idp.forms("/token")[-1]["refresh_token"] == "ref-2"
    assert idp.reused == []


def test_refresh_sends_resource_and_audience(
    index: PrivateIndex,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    index = dataclasses.replace(index, resource="urn:crane:test-index", audience="crane")
    store.save(index.url, stale(clock, make_tokens))
    idp.valid_refresh.add("ref-1")
    Credentials(index, store, http=idp.client(), clock=clock).access_token()
    form = idp.forms("/token")[0]
    assert form["resource"] == "urn:crane:test-index"
    assert form["audience"] == "crane"


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    idp.valid_refresh.add("ref-1")
    idp.rotate = False
    assert credentials.access_token() == "acc-2"
    saved = store.load(credentials.url)
    assert saved is not None
    assert saved.refresh_token == "ref-1"


def test_keycloak_refresh_expiry_is_recorded(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    idp.valid_refresh.add("ref-1")
    idp.refresh_expires_in = 0
    credentials.access_token()
    status = credentials.status()
    assert status.refresh_never_expires
    assert status.refresh_expires_at is None


def test_invalid_grant_means_login_required(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    before = stale(clock, make_tokens)
    store.save(credentials.url, before)
    with pytest.raises(LoginRequiredError, match="the login has expired") as info:
        credentials.access_token()
    assert f"crane login {credentials.url}" in str(info.value)
    assert store.load(credentials.url) == before


def test_other_refresh_errors_are_auth_errors(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    idp.refresh_reply = (401, {"error": "invalid_client", "error_description": "who?"})
    with pytest.raises(AuthError, match=r"invalid_client \(who\?\)") as info:
        credentials.access_token()
    assert not isinstance(info.value, LoginRequiredError)


def test_a_known_expired_refresh_token_is_not_sent(
    credentials: Credentials, store: TokenStore, idp: Any, clock: Any
) -> None:
    now = clock()
    tokens = TokenSet(
        access_token="acc-1",
        expires_at=now - 10,
        obtained_at=now - 310,
        refresh_token="ref-1",
        refresh_expires_at=now - 1,
    )
    store.save(credentials.url, tokens)
    with pytest.raises(LoginRequiredError, match="expired"):
        credentials.access_token()
    assert idp.seen == []


def test_without_refresh_token_a_still_valid_token_is_used_then_login_required(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, make_tokens(clock(), refresh=None))
    clock.advance(290)  # inside the skew margin, not expired
    assert credentials.access_token() == "acc-1"
    clock.advance(10)
    with pytest.raises(LoginRequiredError, match="expired"):
        credentials.access_token()
    assert idp.seen == []


def test_network_failure_during_refresh(
    index: PrivateIndex, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    before = stale(clock, make_tokens)
    store.save(index.url, before)
    http = make_client(transport=httpx.MockTransport(refuse))
    with pytest.raises(UpstreamError, match="timed out") as info:
        Credentials(index, store, http=http, clock=clock).access_token()
    assert "ref-1" not in str(info.value)
    assert index.token_url in str(info.value)
    assert store.load(index.url) == before


def test_store_is_re_read_after_taking_the_lock(
    index: PrivateIndex, crane_home: Any, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    other_process = TokenStore()

    class RacingStore(TokenStore):
        """Another process refreshes between our read and our taking the lock."""

        @contextmanager
        def lock(self, url: str) -> Iterator[None]:
            other_process.save(url, make_tokens(clock(), access="acc-other", refresh="ref-other"))
            with super().lock(url):
                yield

    store = RacingStore()
    store.save(index.url, stale(clock, make_tokens))
    credentials = Credentials(index, store, http=no_network(), clock=clock)
    assert credentials.access_token() == "acc-other"


def test_refreshed_token_after_a_401(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, make_tokens(clock()))
    idp.valid_refresh.add("ref-1")
    assert credentials.access_token() == "acc-1"
    # The index refused a token the clock thinks is valid: refresh anyway.
    assert credentials.refreshed_token("acc-1") == "acc-2"
    assert len(idp.forms("/token")) == 1
    # A second 401 for the same stale token (another request in flight): no new refresh.
    assert credentials.refreshed_token("acc-1") == "acc-2"
    assert len(idp.forms("/token")) == 1
    assert credentials.access_token() == "acc-2"


def test_refreshed_token_without_refresh_token(
    credentials: Credentials, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    store.save(credentials.url, make_tokens(clock(), refresh=None))
    with pytest.raises(LoginRequiredError):
        credentials.refreshed_token("acc-1")


def test_concurrent_refresh_happens_once(
    index: PrivateIndex, crane_home: Any, idp: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    import time

    idp.clock = time.time
    idp.valid_refresh.add("ref-1")
    idp.refresh_delay = 0.05
    TokenStore().save(index.url, make_tokens(time.time(), age=310))
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        # Own store and credentials per thread: what separate processes would have.
        credentials = Credentials(index, TokenStore(), http=idp.client())
        barrier.wait()
        try:
            results.append(credentials.access_token())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert idp.refreshes == 1
    assert idp.reused == []
    assert results == ["acc-2"] * 8


def test_shared_credentials_across_threads_refresh_once(
    index: PrivateIndex, store: TokenStore, idp: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    import time

    idp.clock = time.time
    idp.valid_refresh.add("ref-1")
    idp.refresh_delay = 0.02
    store.save(index.url, make_tokens(time.time(), age=310))
    credentials = Credentials(index, store, http=idp.client())
    barrier = threading.Barrier(8)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(credentials.access_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["acc-2"] * 8
    assert idp.refreshes == 1


# -- ensure, login, logout, status --------------------------------------------------------


def test_ensure_refuses_at_once(credentials: Credentials, idp: Any) -> None:
    with pytest.raises(LoginRequiredError, match="crane login"):
        credentials.ensure(LoginPolicy.REFUSE, NoUI())
    assert idp.seen == []


def test_ensure_refuses_an_expired_login_too(
    credentials: Credentials, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    with pytest.raises(LoginRequiredError, match="expired"):
        credentials.ensure(LoginPolicy.REFUSE, NoUI())


def test_ensure_runs_the_device_flow(
    credentials: Credentials, store: TokenStore, idp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    idp.polls = [(200, {"access_token": "acc-new", "refresh_token": "ref-new"})]
    assert credentials.ensure(LoginPolicy.RUN_PLAIN, NoUI(), open_browser=False) == "acc-new"
    saved = store.load(credentials.url)
    assert saved is not None
    assert saved.refresh_token == "ref-new"


def test_ensure_returns_a_valid_token_without_a_flow(
    credentials: Credentials, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    store.save(credentials.url, make_tokens(clock()))
    assert credentials.ensure(LoginPolicy.RUN_LIVE, NoUI()) == "acc-1"


def test_logout_revokes_and_removes(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, make_tokens(clock()))
    assert credentials.logout()[:2] == (True, True)
    assert store.load(credentials.url) is None
    assert idp.forms("/revoke") == [
        {"token": "ref-1", "token_type_hint": "refresh_token", "client_id": "crane-test"},
        {"token": "acc-1", "token_type_hint": "access_token", "client_id": "crane-test"},
    ]
    with pytest.raises(LoginRequiredError):
        credentials.access_token()


def test_logout_when_revocation_fails_still_removes(
    index: PrivateIndex, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    store.save(index.url, make_tokens(clock()))
    http = make_client(transport=httpx.MockTransport(refuse))
    assert Credentials(index, store, http=http, clock=clock).logout()[:2] == (True, False)
    assert store.load(index.url) is None


def test_logout_with_a_provider_error(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, make_tokens(clock()))
    idp.revoke_status = 503
    assert credentials.logout()[:2] == (True, False)


def test_logout_without_revocation_endpoint(
    index: PrivateIndex, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    index = dataclasses.replace(index, revocation_url=None)
    store.save(index.url, make_tokens(clock()))
    assert Credentials(index, store, http=no_network(), clock=clock).logout()[:2] == (True, False)


def test_logout_when_not_logged_in(credentials: Credentials, idp: Any) -> None:
    assert credentials.logout()[:2] == (False, False)
    assert idp.seen == []


def test_logout_revokes_tokens_others_could_read(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
) -> None:
    store.save(credentials.url, make_tokens(clock()))
    os.chmod(store.path_for(credentials.url), 0o644)
    assert credentials.logout()[:2] == (True, True)


def test_status_reads_only(
    index: PrivateIndex, store: TokenStore, clock: Any, make_tokens: Callable[..., TokenSet]
) -> None:
    credentials = Credentials(index, store, http=no_network(), clock=clock)
    assert credentials.status().logged_in is False
    store.save(index.url, stale(clock, make_tokens))
    status = credentials.status()
    assert status.logged_in is True  # the refresh token may still work
    assert status.has_refresh_token
    assert status.access_expires_at == clock() - 10
    store.save(index.url, stale(clock, make_tokens, refresh=None))
    assert credentials.status().logged_in is False
    assert "acc-1" not in repr(credentials.status())


def test_threads_needing_a_login_share_one_device_flow(
    credentials: Credentials, idp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    idp.polls = [(200, {"access_token": "acc-new", "refresh_token": "ref-new"})]
    prompted = threading.Event()

    class SlowUI(NoUI):
        def prompt(self, *args: Any) -> None:
            prompted.set()
            time.sleep(0.1)  # the second thread arrives while the user is "away"

    results: list[str] = []

    def worker() -> None:
        results.append(credentials.ensure(LoginPolicy.RUN_PLAIN, SlowUI(), open_browser=False))

    first = threading.Thread(target=worker)
    first.start()
    assert prompted.wait(5)
    second = threading.Thread(target=worker)
    second.start()
    first.join(5)
    second.join(5)
    assert results == ["acc-new", "acc-new"]
    assert len(idp.forms("/device")) == 1


def test_a_corrupt_store_is_an_error_not_a_new_login(
    credentials: Credentials, store: TokenStore, idp: Any
) -> None:
    path = store.path_for(credentials.url)
    path.parent.mkdir(parents=True)
    path.write_text("{")
    os.chmod(path, 0o600)
    with pytest.raises(CorruptFileError, match=re.escape(str(path))):
        credentials.ensure(LoginPolicy.RUN_PLAIN, NoUI())
    assert idp.seen == []
    assert path.read_text() == "{"


@contextmanager
def auth_debug_lines() -> Iterator[list[logging.LogRecord]]:
    """Every record the auth room logs at DEBUG and above, whatever `-v` set up before."""
    handler = RecordingHandler()
    records = handler.records
    logger = logging.getLogger("crane_launch.auth")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_login_refresh_and_revocation_each_log_a_debug_line_without_secrets(
    credentials: Credentials, idp: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    idp.polls = [(200, {"access_token": "acc-new", "refresh_token": "ref-new"})]
    idp.valid_refresh.add("ref-new")

    with auth_debug_lines() as records:
        credentials.ensure(LoginPolicy.RUN_PLAIN, NoUI(), open_browser=False)
        clock.advance(3600)
        assert credentials.access_token() == "acc-2"
        assert credentials.logout()[:2] == (True, True)

    lines = [record.getMessage() for record in records]
    text = "\n".join(lines)
    for step in (
        "a login is needed",
        "asking https://idp.example.test/device for a device code",
        "the login was approved",
        "logged in",
        "refreshing the login",
        "refreshed the login",
        "revoked the refresh token",
        "revoked the access token",
    ):
        assert step in text, (step, lines)
    for secret in ("acc-new", "ref-new", "acc-2", "ref-2", "dev-code-secret"):
        assert secret not in text
    assert {record.name for record in records} <= {
        "crane_launch.auth._credentials",
        "crane_launch.auth._device",
        "crane_launch.auth._http",
    }


# -- a refresh whose result cannot be saved must not lose the login -------------------------


def test_a_refresh_is_not_asked_for_when_its_result_could_not_be_saved(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = stale(clock, make_tokens)
    store.save(credentials.url, before)
    idp.valid_refresh.add("ref-1")

    def full(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("crane_launch.auth._store.tempfile.mkstemp", full)
    with pytest.raises(ConfigError) as caught:
        credentials.access_token()

    message = str(caught.value)
    assert message.startswith(f"{store.path_for(credentials.url)}: cannot be written (No space")
    assert "the login was not refreshed, so it is kept" in message
    assert idp.forms("/token") == []  # the refresh token was never presented
    assert store.load(credentials.url) == before
    assert caught.value.exit_code == 3


def test_a_refreshed_login_that_cannot_be_written_works_for_this_run(
    credentials: Credentials,
    store: TokenStore,
    idp: Any,
    clock: Any,
    make_tokens: Callable[..., TokenSet],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.save(credentials.url, stale(clock, make_tokens))
    idp.valid_refresh.add("ref-1")
    handler = RecordingHandler()
    logging.getLogger("crane_launch").addHandler(handler)
    real_replace = os.replace

    def refuse(src: str, dst: str) -> None:
        if str(src).endswith(".next"):
            raise OSError(30, "Read-only file system")
        real_replace(src, dst)

    monkeypatch.setattr("crane_launch.auth._store.os.replace", refuse)
    try:
        assert credentials.access_token() == "acc-2"
        assert credentials.access_token() == "acc-2"  # from memory, not refreshed again
    finally:
        logging.getLogger("crane_launch").removeHandler(handler)
    assert len(idp.forms("/token")) == 1
    [warning] = [r.getMessage() for r in handler.records if r.levelno == logging.WARNING]
    assert "could not be saved (Read-only file system)" in warning
    assert "acc-2" not in warning
    assert "ref-2" not in warning
    assert not list(store.directory.glob("*.next"))  # the reserved room is gone
