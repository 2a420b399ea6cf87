from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest

from crane_launch.auth import (
    DEVICE_CODE_GRANT,
    Credentials,
    DeviceFlow,
    TerminalUI,
    TokenStore,
    browser_available,
    format_remaining,
)
from crane_launch.config import PrivateIndex
from crane_launch.errors import AuthError, UpstreamError

PENDING = (400, {"error": "authorization_pending"})
SLOW_DOWN = (400, {"error": "slow_down"})


class RecordingUI:
    def __init__(self) -> None:
        self.prompts: list[tuple[Any, ...]] = []
        self.waits: list[float] = []
        self.finished_with: list[bool] = []

    def prompt(self, *args: Any) -> None:
        self.prompts.append(args)

    def waiting(self, remaining_seconds: float) -> None:
        self.waits.append(remaining_seconds)

    def finished(self, ok: bool) -> None:
        self.finished_with.append(ok)


def flow(index: PrivateIndex, idp: Any, clock: Any, **kwargs: Any) -> DeviceFlow:
    kwargs.setdefault("browser", lambda url: True)
    kwargs.setdefault("environ", {})
    kwargs.setdefault("platform", "linux")
    return DeviceFlow(index, idp.client(), sleep=clock.sleep, clock=clock, **kwargs)


def poll_times(idp: Any, clock: Any, start: float) -> list[float]:
    return [s.at - start for s in idp.seen if s.path == "/token"]


def test_pending_then_success_polls_every_five_seconds_by_default(
    index: PrivateIndex, idp: Any, clock: Any
) -> None:
    idp.polls = [PENDING, PENDING, (200, {"access_token": "acc-1", "expires_in": 60})]
    ui = RecordingUI()
    start = clock()
    tokens = flow(index, idp, clock).run(ui)
    assert tokens.access_token == "acc-1"
    assert tokens.expires_at == start + 15 + 60
    assert poll_times(idp, clock, start) == [5, 10, 15]
    assert sum(clock.sleeps) == 15
    assert max(clock.sleeps) <= 1.0  # the countdown ticks once a second
    assert ui.finished_with == [True]
    assert ui.prompts == [
        (
            index.url,
            "https://idp.example.test/device",
            "WDJB-MJHT",
            "https://idp.example.test/device?user_code=WDJB-MJHT",
            300.0,
        )
    ]
    assert ui.waits[0] == 300.0
    assert ui.waits[-1] == 286.0


def test_provider_interval_is_honoured(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.device_reply = (200, {**idp.device_reply[1], "interval": 2})
    idp.polls = [PENDING, PENDING, (200, {"access_token": "acc-1"})]
    start = clock()
    flow(index, idp, clock).run(RecordingUI())
    assert poll_times(idp, clock, start) == [2, 4, 6]


def test_slow_down_adds_five_seconds_for_good(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.polls = [SLOW_DOWN, PENDING, SLOW_DOWN, PENDING, (200, {"access_token": "acc-1"})]
    start = clock()
    flow(index, idp, clock).run(RecordingUI())
    times = poll_times(idp, clock, start)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [5, 10, 10, 15, 15]
    assert sum(clock.sleeps) == 55


def test_request_forms(idp: Any, clock: Any) -> None:
    index = PrivateIndex(
        url="https://pkgs.example.test/simple/",
        client_id="crane-test",
        token_url="https://idp.example.test/token",
        device_url="https://idp.example.test/device",
        scopes=("openid", "offline_access", "index:read"),
        resource="urn:crane:test-index",
        audience="crane-index",
    )
    flow(index, idp, clock).run(RecordingUI())
    assert idp.forms("/device") == [
        {
            "client_id": "crane-test",
            "scope": "openid offline_access index:read",
            "resource": "urn:crane:test-index",
            "audience": "crane-index",
        }
    ]
    assert idp.forms("/token") == [
        {
            "grant_type": DEVICE_CODE_GRANT,
            "device_code": "dev-code-secret",
            "client_id": "crane-test",
        }
    ]


def test_access_denied(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.polls = [PENDING, (400, {"error": "access_denied"})]
    ui = RecordingUI()
    with pytest.raises(AuthError, match="login was denied"):
        flow(index, idp, clock).run(ui)
    assert ui.finished_with == [False]


def test_expired_token(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.polls = [(400, {"error": "expired_token"})]
    with pytest.raises(AuthError, match="code expired"):
        flow(index, idp, clock).run(RecordingUI())


def test_the_deadline_ends_the_wait(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.device_reply = (200, {**idp.device_reply[1], "expires_in": 12})
    idp.polls = [PENDING]
    start = clock()
    with pytest.raises(AuthError) as info:
        flow(index, idp, clock).run(RecordingUI())
    assert str(info.value) == (
        f"the code expired before the login was completed; run `crane login {index.url}` again"
    )
    assert poll_times(idp, clock, start) == [5, 10]
    assert clock() - start == 12


def test_other_errors_carry_code_and_description(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.polls = [(400, {"error": "invalid_client", "error_description": "no such\nclient"})]
    with pytest.raises(AuthError, match=r"invalid_client \(no such client\)"):
        flow(index, idp, clock).run(RecordingUI())


def test_device_request_refused(index: PrivateIndex, idp: Any, clock: Any) -> None:
    idp.device_reply = (400, {"error": "invalid_scope"})
    ui = RecordingUI()
    with pytest.raises(AuthError, match="invalid_scope"):
        flow(index, idp, clock).run(ui)
    assert ui.prompts == []


@pytest.mark.parametrize(
    "reply",
    [(502, {"error": "bad_gateway"}), (200, "<html>login</html>"), (400, "nope"), (200, [1])],
)
def test_server_errors_and_non_json_are_upstream_errors(
    index: PrivateIndex, idp: Any, clock: Any, reply: tuple[int, Any]
) -> None:
    idp.polls = [PENDING, reply]
    with pytest.raises(UpstreamError, match=re.escape(index.token_url)):
        flow(index, idp, clock).run(RecordingUI())


def test_redirects_are_not_followed(index: PrivateIndex, clock: Any) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "https://elsewhere.example.test/"})

    client = httpx.Client(transport=httpx.MockTransport(handle))
    with pytest.raises(UpstreamError, match="redirect"):
        DeviceFlow(index, client, sleep=clock.sleep, clock=clock).authorize()


@pytest.mark.parametrize(
    ("body", "refresh", "refresh_expires_at", "never"),
    [
        ({"access_token": "a"}, None, None, False),
        ({"access_token": "a", "refresh_token": "r"}, "r", None, False),
        ({"access_token": "a", "refresh_token": "r", "refresh_expires_in": 0}, "r", None, True),
        ({"access_token": "a", "refresh_token": "r", "refresh_expires_in": 900}, "r", 905, False),
    ],
)
def test_success_shapes(
    *,
    index: PrivateIndex,
    idp: Any,
    clock: Any,
    body: dict[str, Any],
    refresh: str | None,
    refresh_expires_at: float | None,
    never: bool,
) -> None:
    idp.polls = [(200, body)]
    start = clock()
    tokens = flow(index, idp, clock).run(RecordingUI())
    assert tokens.refresh_token == refresh
    expected = None if refresh_expires_at is None else start + refresh_expires_at
    assert tokens.refresh_expires_at == expected
    assert tokens.refresh_never_expires is never


def test_login_saves_the_tokens(
    index: PrivateIndex, idp: Any, clock: Any, store: TokenStore
) -> None:
    idp.polls = [PENDING, (200, {"access_token": "acc-1", "refresh_token": "ref-1"})]
    credentials = Credentials(
        index, store, http=idp.client(), clock=clock, sleep=clock.sleep, browser=lambda u: True
    )
    tokens = credentials.login(RecordingUI(), open_browser=False)
    assert store.load(index.url) == tokens
    assert credentials.access_token() == "acc-1"


# -- the terminal UI and the browser ------------------------------------------------------


def test_terminal_ui_plain_prints_exactly_the_prompt(
    index: PrivateIndex, idp: Any, clock: Any
) -> None:
    stream = io.StringIO()
    idp.polls = [PENDING, (200, {"access_token": "acc-1"})]
    flow(index, idp, clock).run(TerminalUI(stream, live=False))
    assert stream.getvalue().splitlines() == [
        f"crane: to log in to {index.url}, open https://idp.example.test/device "
        "and enter the code WDJB-MJHT",
        "crane: or open https://idp.example.test/device?user_code=WDJB-MJHT",
    ]


def test_terminal_ui_without_complete_uri(index: PrivateIndex, idp: Any, clock: Any) -> None:
    reply = dict(idp.device_reply[1])
    del reply["verification_uri_complete"]
    idp.device_reply = (200, reply)
    stream = io.StringIO()
    flow(index, idp, clock).run(TerminalUI(stream, live=False))
    assert len(stream.getvalue().splitlines()) == 1


def test_terminal_ui_live_counts_down_in_place_and_clears(
    index: PrivateIndex, idp: Any, clock: Any
) -> None:
    stream = io.StringIO()
    idp.polls = [PENDING, (200, {"access_token": "acc-1"})]
    flow(index, idp, clock).run(TerminalUI(stream, live=True))
    output = stream.getvalue()
    _, _, rest = output.partition("user_code=WDJB-MJHT\n")
    assert "\n" not in rest
    frames = rest.split("\r")
    assert frames[1] == "crane: waiting for the login, 5:00 left"
    assert frames[2] == "crane: waiting for the login, 4:59 left"
    assert len(frames) == 1 + 10 + 1 + 1  # leading "", ten ticks, the blank-out, the end
    assert frames[-2].strip() == ""
    assert frames[-1] == ""


def test_terminal_ui_live_defaults_to_isatty() -> None:
    assert TerminalUI(io.StringIO()).live is False


def test_format_remaining() -> None:
    assert format_remaining(299.7) == "4:59"
    assert format_remaining(0) == "0:00"
    assert format_remaining(-3) == "0:00"
    assert format_remaining(3723) == "1:02:03"


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({}, "freebsd14", False),
        ({}, "darwin", True),
        ({"SSH_CONNECTION": "10.0.0.1 5 10.0.0.2 22"}, "darwin", False),
        ({}, "win32", True),
    ],
)
def test_browser_available(environ: dict[str, str], platform: str, expected: bool) -> None:
    assert browser_available(environ, platform) is expected


def test_browser_opens_the_complete_uri_when_a_display_exists(
    index: PrivateIndex, idp: Any, clock: Any
) -> None:
    opened: list[str] = []
    flow(index, idp, clock, browser=opened.append, environ={"DISPLAY": ":0"}).run(RecordingUI())
    assert opened == ["https://idp.example.test/device?user_code=WDJB-MJHT"]


def test_browser_falls_back_to_the_plain_uri(index: PrivateIndex, idp: Any, clock: Any) -> None:
    reply = dict(idp.device_reply[1])
    del reply["verification_uri_complete"]
    idp.device_reply = (200, reply)
    opened: list[str] = []
    flow(index, idp, clock, browser=opened.append, platform="darwin").run(RecordingUI())
    assert opened == ["https://idp.example.test/device"]


@pytest.mark.parametrize(("environ", "open_browser"), [({}, True), ({"DISPLAY": ":0"}, False)])
def test_browser_not_opened(
    index: PrivateIndex, idp: Any, clock: Any, environ: dict[str, str], open_browser: bool
) -> None:
    opened: list[str] = []
    flow(index, idp, clock, browser=opened.append, environ=environ).run(
        RecordingUI(), open_browser=open_browser
    )
    assert opened == []


def test_a_broken_browser_does_not_fail_the_login(
    index: PrivateIndex, idp: Any, clock: Any
) -> None:
    def broken(url: str) -> bool:
        raise OSError("no browser")

    tokens = flow(index, idp, clock, browser=broken, environ={"DISPLAY": ":0"}).run(RecordingUI())
    assert tokens.access_token == "acc-1"
