"""The authentication schemes beside the device flow (auth/_schemes.py), the confidential
device client, discovery without a device endpoint, and the stored Basic password.

No socket is opened: every identity provider and index is an `httpx.MockTransport`
handler, swapped in for `make_client` where crane makes its own client.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus, unquote_plus

import httpx
import pytest

from crane_launch.auth import (
    CI_SCHEMES_HINT,
    DEVICE_CODE_GRANT,
    BasicAuthorizer,
    BearerAuthorizer,
    ClientCredentials,
    Credentials,
    DeviceFlow,
    LoginPolicy,
    StaticToken,
    TokenSet,
    TokenStore,
    authorizer_for,
    check_basic_password,
    client_secret_for,
    describe_scheme,
    discover,
    make_client,
    read_secret,
)
from crane_launch.auth import _schemes as schemes
from crane_launch.auth._device import oauth_error_hint
from crane_launch.auth._http import basic_credentials, post_form
from crane_launch.config import PrivateIndex
from crane_launch.errors import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_UPSTREAM,
    AuthError,
    ConfigError,
    CorruptFileError,
    CraneError,
    LoginRequiredError,
    UpstreamError,
)
from tests.auth.conftest import FakeClock, ScriptedIdP

INDEX = "https://index.example/simple/"
IDP = "https://idp.example"
TOKEN = f"{IDP}/token"
DEVICE = f"{IDP}/device"
REVOKE = f"{IDP}/revoke"
SECRET = "s3cr:et/+ä value"  # a colon, a slash, a plus, a space and a non-ASCII letter
SECRET_VAR = "CRANE_TEST_CLIENT_SECRET"

Reply = tuple[int, Any]


# -- helpers ------------------------------------------------------------------------------


@dataclass
class Sent:
    path: str
    form: dict[str, str]
    authorization: str | None


@dataclass
class Provider:
    """A token endpoint (and discovery, revocation) that records what it was sent.

    `replies` answer the token requests in order (the last repeats); by default each
    request gets a new access token `cc-<n>` valid for 300 s.
    """

    replies: list[Reply] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    delay: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        with self._lock:
            self.sent.append(Sent(request.url.path, form, request.headers.get("authorization")))
        url = str(request.url)
        if url in self.documents:
            return httpx.Response(200, json=self.documents[url])
        if request.url.path == "/revoke":
            return httpx.Response(200)
        if request.url.path != "/token":
            return httpx.Response(404)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self._count += 1
            if self.replies:
                status, body = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            else:
                status, body = 200, {"access_token": f"cc-{self._count}", "expires_in": 300}
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    def client(self) -> httpx.Client:
        return make_client(transport=httpx.MockTransport(self.handle))

    def token_requests(self) -> list[Sent]:
        return [sent for sent in self.sent if sent.path == "/token"]


def basic_pair(header: str | None, *, form_encoded: bool = True) -> tuple[str, str]:
    """The (user, password) of an `Authorization: Basic` value."""
    assert header is not None
    scheme, _, value = header.partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    if form_encoded:
        return unquote_plus(user), unquote_plus(password)
    return user, password


def cc_index(**fields: Any) -> PrivateIndex:
    values: dict[str, Any] = {
        "url": INDEX,
        "auth": "client-credentials",
        "client_id": "ci bot",
        "token_url": TOKEN,
        "client_secret_env": SECRET_VAR,
        "scopes": (),
    }
    values.update(fields)
    return PrivateIndex(**values)


def device_index(**fields: Any) -> PrivateIndex:
    values: dict[str, Any] = {
        "url": INDEX,
        "client_id": "crane-dev",
        "token_url": TOKEN,
        "device_url": DEVICE,
        "revocation_url": REVOKE,
    }
    values.update(fields)
    return PrivateIndex(**values)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Provider:
    """A provider behind every client crane makes for itself (schemes and credentials)."""
    fake = Provider()
    monkeypatch.setattr(schemes, "make_client", fake.client)
    monkeypatch.setattr("crane_launch.auth._credentials.make_client", fake.client)
    return fake


@pytest.fixture
def debug_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """caplog at DEBUG for every logger, crane's included (whose `console.setup`, run by
    in-process CLI tests, stops propagation and keeps a handler on a stale stream)."""
    crane = logging.getLogger("crane_launch")
    monkeypatch.setattr(crane, "propagate", True)
    monkeypatch.setattr(crane, "handlers", [])
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="crane_launch")
    return caplog


def forbidden_forms(secret: str, *users: str) -> list[str]:
    """The secret and every encoding of it crane puts on the wire."""
    forms = [secret, quote_plus(secret)]
    for user in users:
        forms.append(basic_credentials(user, secret).removeprefix("Basic "))
        forms.append(basic_credentials(user, secret, form_encoded=True).removeprefix("Basic "))
    return forms


def assert_nowhere(texts: list[str], secret: str, *users: str) -> None:
    for text in texts:
        for form in forbidden_forms(secret, *users):
            assert form not in text, f"a secret reached: {text!r}"


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records] + [caplog.text]


# -- HTTP Basic client authentication (RFC 6749 section 2.3.1) -----------------------------


def test_basic_credentials_are_user_colon_password_in_base64() -> None:
    header = basic_credentials("alice", "pa:ss wörd")
    assert header == "Basic " + base64.b64encode("alice:pa:ss wörd".encode()).decode()
    assert basic_pair(header, form_encoded=False) == ("alice", "pa:ss wörd")


def test_client_authentication_form_encodes_id_and_secret_before_joining() -> None:
    header = basic_credentials("ci bot:1", SECRET, form_encoded=True)
    raw = base64.b64decode(header.removeprefix("Basic ")).decode("ascii")
    # One colon only: the one between the two halves; every special character is encoded.
    assert raw == "ci+bot%3A1:s3cr%3Aet%2F%2B%C3%A4+value"
    assert basic_pair(header) == ("ci bot:1", SECRET)


def test_post_form_with_a_secret_authenticates_in_the_header_not_the_body() -> None:
    fake = Provider()
    reply = post_form(
        fake.client(), TOKEN, {"grant_type": "x", "client_id": "ci bot"}, client_secret=SECRET
    )
    assert reply.ok
    [sent] = fake.sent
    assert sent.form == {"grant_type": "x", "client_id": "ci bot"}
    assert basic_pair(sent.authorization) == ("ci bot", SECRET)


def test_post_form_without_a_secret_sends_no_authorization() -> None:
    fake = Provider()
    post_form(fake.client(), TOKEN, {"grant_type": "x", "client_id": "public"})
    assert fake.sent[0].authorization is None


# -- ClientCredentials --------------------------------------------------------------------


def test_client_credentials_request_and_reuse_until_expiry(clock: FakeClock) -> None:
    fake = Provider()
    index = cc_index(scopes=("read:packages", "write"), audience="pkgs")
    tokens = ClientCredentials(index, SECRET, http=fake.client(), clock=clock)

    assert tokens.access_token() == "cc-1"
    [sent] = fake.sent
    assert sent.form == {
        "grant_type": "client_credentials",
        "client_id": "ci bot",
        "scope": "read:packages write",
        "audience": "pkgs",
    }
    assert "client_secret" not in sent.form
    assert basic_pair(sent.authorization) == ("ci bot", SECRET)

    clock.advance(260)  # still outside the 30 s margin
    assert tokens.access_token() == "cc-1"
    assert len(fake.sent) == 1
    clock.advance(20)  # within the margin: a new token (the grant has no refresh token)
    assert tokens.access_token() == "cc-2"
    assert len(fake.token_requests()) == 2
    assert "refresh_token" not in fake.sent[1].form


def test_client_credentials_without_scopes_sends_no_scope_and_sends_resource(
    clock: FakeClock,
) -> None:
    fake = Provider()
    index = cc_index(resource="https://index.example/")
    ClientCredentials(index, SECRET, http=fake.client(), clock=clock).access_token()
    assert fake.sent[0].form == {
        "grant_type": "client_credentials",
        "client_id": "ci bot",
        "resource": "https://index.example/",
    }


def test_a_refused_token_is_replaced_once(clock: FakeClock) -> None:
    fake = Provider()
    tokens = ClientCredentials(cc_index(), SECRET, http=fake.client(), clock=clock)
    bearer = BearerAuthorizer(tokens)
    assert bearer.authorization() == "Bearer cc-1"

    assert bearer.reauthorized("Bearer cc-1") == "Bearer cc-2"
    assert len(fake.token_requests()) == 2
    # A second worker that saw the same stale token gets the new one without a request.
    assert bearer.reauthorized("Bearer cc-1") == "Bearer cc-2"
    assert len(fake.token_requests()) == 2
    assert bearer.authorization() == "Bearer cc-2"


def test_concurrent_first_requests_share_one_token_request(clock: FakeClock) -> None:
    fake = Provider(delay=0.05)
    tokens = ClientCredentials(cc_index(), SECRET, http=fake.client(), clock=clock)
    seen: list[str] = []

    def ask() -> None:
        seen.append(tokens.access_token())

    workers = [threading.Thread(target=ask) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert seen == ["cc-1"] * 8
    assert len(fake.token_requests()) == 1


def test_a_refused_client_is_an_auth_error_naming_the_client_and_variable(
    clock: FakeClock,
) -> None:
    fake = Provider(replies=[(401, {"error": "invalid_client", "error_description": "bad"})])
    tokens = ClientCredentials(cc_index(), SECRET, http=fake.client(), clock=clock)
    with pytest.raises(AuthError) as info:
        tokens.access_token()
    message = str(info.value)
    assert info.value.exit_code == EXIT_AUTH == 4
    assert "refused crane's client credentials: invalid_client (bad)" in message
    assert "'ci bot'" in message
    assert f"${SECRET_VAR}" in message
    assert_nowhere([message], SECRET, "ci bot")


def test_a_refused_scope_names_the_scopes_asked_for(clock: FakeClock) -> None:
    fake = Provider(replies=[(400, {"error": "invalid_scope"})])
    index = cc_index(scopes=("packages",))
    with pytest.raises(AuthError) as info:
        ClientCredentials(index, SECRET, http=fake.client(), clock=clock).access_token()
    assert "'packages'" in str(info.value)
    assert f"crane index register {INDEX} --scope S" in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        (200, {"token_type": "Bearer"}),
        (200, {"access_token": "x", "expires_in": "soon"}),
    ],
)
def test_an_unusable_token_answer_is_an_upstream_error(clock: FakeClock, reply: Reply) -> None:
    fake = Provider(replies=[reply])
    with pytest.raises(UpstreamError, match="unusable token answer") as info:
        ClientCredentials(cc_index(), SECRET, http=fake.client(), clock=clock).access_token()
    assert info.value.exit_code == EXIT_UPSTREAM
    assert TOKEN in str(info.value)


def test_a_failing_token_endpoint_is_an_upstream_error(clock: FakeClock) -> None:
    fake = Provider(replies=[(503, "down")])
    with pytest.raises(UpstreamError, match="503"):
        ClientCredentials(cc_index(), SECRET, http=fake.client(), clock=clock).access_token()


def test_the_token_endpoint_is_discovered_once_without_needing_a_device_endpoint(
    clock: FakeClock,
) -> None:
    issuer = "https://idp.example/realms/ci"
    document = {"issuer": issuer, "token_endpoint": TOKEN}  # no device endpoint at all
    fake = Provider(documents={f"{issuer}/.well-known/openid-configuration": document})
    index = cc_index(token_url="", issuer=issuer)
    tokens = ClientCredentials(index, SECRET, http=fake.client(), clock=clock)

    assert tokens.access_token() == "cc-1"
    assert tokens.refreshed_token("cc-1") == "cc-2"
    assert [sent.path for sent in fake.sent] == [
        "/realms/ci/.well-known/openid-configuration",
        "/token",
        "/token",
    ]


def test_no_token_endpoint_and_no_issuer_is_an_error(clock: FakeClock) -> None:
    fake = Provider()
    tokens = ClientCredentials(cc_index(token_url=""), SECRET, http=fake.client(), clock=clock)
    with pytest.raises(CraneError, match="no token endpoint and no issuer"):
        tokens.access_token()
    assert fake.sent == []


# -- static tokens and HTTP Basic ---------------------------------------------------------


def test_a_static_token_is_sent_and_a_refusal_is_final() -> None:
    token = StaticToken(INDEX, "tok-value", "$MY_TOKEN")
    assert token.authorization() == "Bearer tok-value"
    with pytest.raises(AuthError) as info:
        token.reauthorized("Bearer tok-value")
    assert info.value.exit_code == EXIT_AUTH
    assert f"{INDEX} refused the token from $MY_TOKEN" in str(info.value)
    assert "tok-value" not in str(info.value)
    assert "tok-value" not in repr(token)
    assert repr(token) == f"StaticToken({INDEX!r}, <redacted>, '$MY_TOKEN')"


def test_basic_sends_user_and_password_and_a_refusal_is_final() -> None:
    basic = BasicAuthorizer(INDEX, "alice", "pw:1", "$PW")
    assert basic_pair(basic.authorization(), form_encoded=False) == ("alice", "pw:1")
    with pytest.raises(AuthError) as info:
        basic.reauthorized(basic.authorization())
    assert "refused the username 'alice' with the password from $PW; check both" in str(info.value)
    assert "pw:1" not in repr(basic) + str(info.value)


def test_basic_with_a_stored_password_says_how_to_type_it_again() -> None:
    basic = BasicAuthorizer(INDEX, "alice", "pw", schemes.STORED)
    with pytest.raises(AuthError, match=rf"run `crane login {INDEX}` to type the password again"):
        basic.reauthorized(basic.authorization())


# -- reading secrets ----------------------------------------------------------------------


def test_read_secret_drops_surrounding_whitespace() -> None:
    assert read_secret({"V": "  value\n"}, "V", "token", INDEX) == "value"


@pytest.mark.parametrize("environ", [{}, {"V": ""}, {"V": " \n\t"}])
def test_a_missing_secret_variable_is_an_auth_error_naming_it(environ: dict[str, str]) -> None:
    with pytest.raises(AuthError) as info:
        read_secret(environ, "V", "client secret", INDEX)
    assert info.value.exit_code == EXIT_AUTH
    assert str(info.value) == (
        f"{INDEX}: the client secret is read from $V, which is not set; set it "
        "(in CI, as a masked secret variable)"
    )


@pytest.mark.parametrize("value", ["abc\x01hidden-part", "abc\x7fhidden-part", "a\nhidden-part"])
def test_a_secret_with_a_control_character_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(AuthError, match=r"\$V holds a control character") as info:
        read_secret({"V": value}, "V", "token", INDEX)
    assert "hidden-part" not in str(info.value)


def test_client_secret_for_a_public_client_is_none() -> None:
    assert client_secret_for(device_index(), {SECRET_VAR: SECRET}) is None
    index = device_index(client_secret_env=SECRET_VAR)
    assert client_secret_for(index, {SECRET_VAR: SECRET}) == SECRET
    with pytest.raises(AuthError, match=rf"\${SECRET_VAR}, which is not set"):
        client_secret_for(index, {})


@pytest.mark.parametrize(
    "value",
    ["abc", "a-b.c_d~e+f/g", "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl", "YWJj==", "0"],
)
def test_a_bearer_token_is_one_b64token(value: str) -> None:
    assert schemes._bearer_token(value, "$T", INDEX) == value


@pytest.mark.parametrize(
    ("value", "without_bearer"),
    [
        ("Bearer hidden-tok", True),
        ("bearer hidden-tok", True),
        ("hidden tok", False),
        ("hidden-tök", False),
        ("hidden=tok", False),
        ("=hidden", False),
        ('"hidden-tok"', False),
    ],
)
def test_what_is_not_a_bearer_token_is_refused_without_echoing_it(
    value: str, without_bearer: bool
) -> None:
    with pytest.raises(AuthError) as info:
        schemes._bearer_token(value, "$T", INDEX)
    message = str(info.value)
    assert message.startswith(f"{INDEX}: $T does not hold a bearer token")
    assert "RFC 6750" in message
    assert ("(without the word Bearer)" in message) is without_bearer
    assert "hidden" not in message


def test_a_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("file-token\n")
    assert schemes._read_token_file(str(path), INDEX) == "file-token"


def test_a_token_file_under_home_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "token").write_text("home-token")
    assert schemes._read_token_file("~/token", INDEX) == "home-token"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        (b"", "is empty"),
        (b" \n", "is empty"),
        (b"\xff\xfehidden", "is not UTF-8 text"),
        ("directory", "is not a regular file"),
    ],
)
def test_a_token_file_that_cannot_be_used_is_an_auth_error_naming_it(
    tmp_path: Path, content: bytes | str | None, problem: str
) -> None:
    path = tmp_path / "token"
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(AuthError) as info:
        schemes._read_token_file(str(path), INDEX)
    assert info.value.exit_code == EXIT_AUTH
    assert f"the token file {path} {problem}" in str(info.value)
    assert "hidden" not in str(info.value)


# -- describe_scheme ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "described"),
    [
        (device_index(), "OAuth device flow"),
        (device_index(client_secret_env="DEV_SECRET"), "OAuth device flow, confidential client"),
        (cc_index(), f"client credentials: client ci bot, secret from ${SECRET_VAR}"),
        (PrivateIndex(INDEX, auth="token", token_env="TOK"), "static token from $TOK"),
        (
            PrivateIndex(INDEX, auth="token", token_file="/secrets/tok"),
            "static token from file /secrets/tok",
        ),
        (
            PrivateIndex(INDEX, auth="basic", username="alice", password_env="PW"),
            "HTTP Basic: user alice, password from $PW",
        ),
        (
            PrivateIndex(INDEX, auth="basic", username="alice"),
            "HTTP Basic: user alice, password from crane's store",
        ),
    ],
)
def test_describe_scheme_names_where_the_secret_comes_from(
    index: PrivateIndex, described: str
) -> None:
    assert describe_scheme(index) == described


# -- authorizer_for -----------------------------------------------------------------------


def no_ask(prompt: str) -> str:
    raise AssertionError(f"asked: {prompt}")


def test_authorizer_for_a_token_variable(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="token", token_env="MY_TOKEN", scopes=())
    authorizer = authorizer_for(
        index, {"MY_TOKEN": "tok-1\n"}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask
    )
    assert isinstance(authorizer, StaticToken)
    assert authorizer.authorization() == "Bearer tok-1"
    with pytest.raises(AuthError, match=r"refused the token from \$MY_TOKEN"):
        authorizer.reauthorized("Bearer tok-1")


def test_authorizer_for_a_missing_token_variable_names_it(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="token", token_env="MY_TOKEN", scopes=())
    with pytest.raises(AuthError, match=r"read from \$MY_TOKEN, which is not set") as info:
        authorizer_for(index, {}, store=store, policy=LoginPolicy.RUN_PLAIN, ask=no_ask)
    assert info.value.exit_code == EXIT_AUTH


def test_authorizer_for_a_token_file(store: TokenStore, tmp_path: Path) -> None:
    path = tmp_path / "tok"
    path.write_text("file-tok\n")
    index = PrivateIndex(INDEX, auth="token", token_file=str(path), scopes=())
    authorizer = authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE)
    assert authorizer.authorization() == "Bearer file-tok"
    with pytest.raises(AuthError, match=f"refused the token from the file {path}"):
        authorizer.reauthorized("Bearer file-tok")


def test_authorizer_for_a_token_file_holding_the_whole_header(
    store: TokenStore, tmp_path: Path
) -> None:
    path = tmp_path / "tok"
    path.write_text("Bearer hidden-tok\n")
    index = PrivateIndex(INDEX, auth="token", token_file=str(path), scopes=())
    with pytest.raises(AuthError, match="without the word Bearer") as info:
        authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE)
    assert f"the file {path}" in str(info.value)
    assert "hidden-tok" not in str(info.value)


def test_authorizer_for_basic_from_a_variable(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="basic", username="alice", password_env="PW", scopes=())
    authorizer = authorizer_for(
        index, {"PW": "pw-1"}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask
    )
    assert isinstance(authorizer, BasicAuthorizer)
    assert basic_pair(authorizer.authorization(), form_encoded=False) == ("alice", "pw-1")
    with pytest.raises(AuthError, match=r"read from \$PW, which is not set"):
        authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask)


def test_authorizer_for_basic_from_the_store(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    store.save_password(INDEX, "stored-pw")
    authorizer = authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask)
    assert basic_pair(authorizer.authorization(), form_encoded=False) == ("alice", "stored-pw")
    with pytest.raises(AuthError, match="to type the password again"):
        authorizer.reauthorized(authorizer.authorization())


def test_basic_without_a_password_where_nobody_can_type_one(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(AuthError) as info:
        authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask)
    message = str(info.value)
    assert info.value.exit_code == EXIT_AUTH
    assert "no password is stored and nobody can type one here" in message
    assert f"`crane login {INDEX}`" in message
    assert "--password-env VAR" in message
    assert "CRANE_AUTH=basic" in message
    assert store.load_password(INDEX) is None


def test_basic_asks_once_and_keeps_the_password(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemes, "make_client", FakeIndex(200).client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return "typed-pw"

    authorizer = authorizer_for(
        index, {}, store=store, policy=LoginPolicy.RUN_LIVE, ask=ask, terminal=True
    )
    assert prompts == [f"crane: password for alice at {INDEX}: "]
    assert basic_pair(authorizer.authorization(), form_encoded=False) == ("alice", "typed-pw")
    assert store.load_password(INDEX) == "typed-pw"
    # The next run takes it from the store.
    authorizer_for(index, {}, store=store, policy=LoginPolicy.RUN_LIVE, ask=no_ask)


@pytest.mark.parametrize("answer", ["", EOFError()])
def test_no_typed_password_is_an_auth_error_and_stores_nothing(
    store: TokenStore, answer: str | EOFError
) -> None:
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())

    def ask(prompt: str) -> str:
        if isinstance(answer, EOFError):
            raise answer
        return answer

    with pytest.raises(AuthError, match="no password was typed"):
        authorizer_for(index, {}, store=store, policy=LoginPolicy.RUN_PLAIN, ask=ask, terminal=True)
    assert store.load_password(INDEX) is None


def test_basic_asks_only_on_a_terminal(store: TokenStore) -> None:
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(AuthError, match="nobody can type one here"):
        authorizer_for(
            index, {}, store=store, policy=LoginPolicy.RUN_PLAIN, ask=no_ask, terminal=False
        )


def test_a_typed_password_the_index_refuses_is_not_kept(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schemes, "make_client", FakeIndex(401).client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(AuthError, match="refused"):
        authorizer_for(
            index,
            {},
            store=store,
            policy=LoginPolicy.RUN_LIVE,
            ask=lambda _prompt: "wrong",
            terminal=True,
        )
    assert store.load_password(INDEX) is None


def test_client_credentials_fetch_their_first_token_at_once(
    store: TokenStore, provider: Provider
) -> None:
    authorizer = authorizer_for(
        cc_index(), {SECRET_VAR: SECRET}, store=store, policy=LoginPolicy.REFUSE, ask=no_ask
    )
    assert len(provider.token_requests()) == 1
    assert basic_pair(provider.sent[0].authorization) == ("ci bot", SECRET)
    assert authorizer.authorization() == "Bearer cc-1"
    assert len(provider.token_requests()) == 1
    assert not store.path_for(INDEX).exists()  # kept in memory only


def test_a_wrong_client_secret_fails_before_the_tool_runs(
    store: TokenStore, provider: Provider
) -> None:
    provider.replies = [(401, {"error": "invalid_client"})]
    with pytest.raises(AuthError, match=rf"\${SECRET_VAR}") as info:
        authorizer_for(cc_index(), {SECRET_VAR: SECRET}, store=store, policy=LoginPolicy.REFUSE)
    assert info.value.exit_code == EXIT_AUTH


def test_a_missing_client_secret_asks_nothing_of_the_provider(
    store: TokenStore, provider: Provider
) -> None:
    with pytest.raises(AuthError, match=rf"\${SECRET_VAR}, which is not set"):
        authorizer_for(cc_index(), {}, store=store, policy=LoginPolicy.REFUSE)
    with pytest.raises(AuthError, match="need --client-secret-env VAR"):
        authorizer_for(cc_index(client_secret_env=None), {}, store=store, policy=LoginPolicy.REFUSE)
    assert provider.sent == []


def test_a_device_login_nobody_can_answer_names_what_works_in_ci(
    store: TokenStore, provider: Provider
) -> None:
    with pytest.raises(LoginRequiredError) as info:
        authorizer_for(device_index(), {"CI": "true"}, store=store, policy=LoginPolicy.REFUSE)
    message = str(info.value)
    assert info.value.exit_code == EXIT_AUTH
    assert info.value.index_url == INDEX
    assert message.startswith(f"{INDEX}: not logged in; run `crane login {INDEX}`; ")
    assert message.endswith(CI_SCHEMES_HINT)
    for word in ("--auth client-credentials", "CRANE_INDEX_URL", "CRANE_TOKEN", "CRANE_PASSWORD"):
        assert word in CI_SCHEMES_HINT
    assert provider.sent == []


def test_a_device_login_uses_stored_tokens(store: TokenStore, provider: Provider) -> None:
    now = time.time()
    store.save(INDEX, TokenSet(access_token="acc-1", expires_at=now + 600, obtained_at=now))
    authorizer = authorizer_for(device_index(), {}, store=store, policy=LoginPolicy.REFUSE)
    assert isinstance(authorizer, BearerAuthorizer)
    assert authorizer.authorization() == "Bearer acc-1"
    assert provider.sent == []


def test_a_confidential_device_client_refreshes_with_its_secret(
    store: TokenStore, provider: Provider
) -> None:
    now = time.time()
    store.save(
        INDEX,
        TokenSet(access_token="old", expires_at=now - 10, obtained_at=now - 310, refresh_token="r"),
    )
    provider.replies = [(200, {"access_token": "acc-2", "refresh_token": "r2"})]
    index = device_index(client_secret_env=SECRET_VAR)
    authorizer = authorizer_for(index, {SECRET_VAR: SECRET}, store=store, policy=LoginPolicy.REFUSE)
    assert authorizer.authorization() == "Bearer acc-2"
    [sent] = provider.sent
    assert sent.form["grant_type"] == "refresh_token"
    assert "client_secret" not in sent.form
    assert basic_pair(sent.authorization) == ("crane-dev", SECRET)


def test_a_confidential_device_client_without_its_secret_names_the_variable(
    store: TokenStore, provider: Provider
) -> None:
    index = device_index(client_secret_env=SECRET_VAR)
    with pytest.raises(AuthError, match=rf"\${SECRET_VAR}, which is not set"):
        authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE)


# -- check_basic_password -----------------------------------------------------------------


@dataclass
class FakeIndex:
    status: int = 200
    seen: list[tuple[str, str | None]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        def handle(request: httpx.Request) -> httpx.Response:
            self.seen.append((str(request.url), request.headers.get("authorization")))
            return httpx.Response(self.status)

        return make_client(transport=httpx.MockTransport(handle))


def test_a_basic_password_the_index_accepts_is_kept(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIndex()
    monkeypatch.setattr(schemes, "make_client", fake.client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    store.save_password(INDEX, "pw")
    check_basic_password(index, "pw", store)
    [(url, authorization)] = fake.seen
    assert url == INDEX
    assert basic_pair(authorization, form_encoded=False) == ("alice", "pw")
    assert store.load_password(INDEX) == "pw"


def test_a_basic_password_is_checked_at_the_probe_path(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeIndex()
    monkeypatch.setattr(schemes, "make_client", fake.client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", probe_path="/api/ping", scopes=())
    check_basic_password(index, "pw", store)
    assert fake.seen[0][0] == "https://index.example/api/ping"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_basic_password_is_not_stored(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setattr(schemes, "make_client", FakeIndex(status).client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(AuthError) as info:
        check_basic_password(index, "wrong-pw", store)
    assert info.value.exit_code == EXIT_AUTH
    assert f"(HTTP {status}); nothing was stored" in str(info.value)
    assert "wrong-pw" not in str(info.value)
    assert store.load_password(INDEX) is None


def test_an_unreachable_index_is_an_upstream_error(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(
        schemes, "make_client", lambda: make_client(transport=httpx.MockTransport(refuse))
    )
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(UpstreamError, match="Connection refused"):
        check_basic_password(index, "pw", store)


# -- the confidential device client -------------------------------------------------------


def recording(idp: ScriptedIdP, headers: list[str | None]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get("authorization"))
        return idp.handle(request)

    return make_client(transport=httpx.MockTransport(handle))


class QuietUI:
    def prompt(self, *args: Any) -> None:
        pass

    def waiting(self, remaining_seconds: float) -> None:
        pass

    def finished(self, ok: bool) -> None:
        pass


def test_a_confidential_device_flow_authenticates_every_request(
    index: PrivateIndex, idp: ScriptedIdP, clock: FakeClock
) -> None:
    headers: list[str | None] = []
    flow = DeviceFlow(
        index,
        recording(idp, headers),
        sleep=clock.sleep,
        clock=clock,
        browser=lambda url: True,
        environ={},
        platform="linux",
        client_secret=SECRET,
    )
    idp.polls = [(400, {"error": "authorization_pending"}), (200, {"access_token": "acc-1"})]
    assert flow.run(QuietUI()).access_token == "acc-1"
    assert idp.paths() == ["/device", "/token", "/token"]
    assert [basic_pair(header) for header in headers] == [("crane-test", SECRET)] * 3
    assert idp.forms("/token")[0] == {
        "grant_type": DEVICE_CODE_GRANT,
        "device_code": "dev-code-secret",
        "client_id": "crane-test",
    }


def test_a_public_device_client_sends_no_authorization(
    index: PrivateIndex, idp: ScriptedIdP, clock: FakeClock
) -> None:
    headers: list[str | None] = []
    flow = DeviceFlow(
        index, recording(idp, headers), sleep=clock.sleep, clock=clock, browser=lambda u: True
    )
    flow.run(QuietUI(), open_browser=False)
    assert headers == [None, None]


def test_a_confidential_client_revokes_with_its_secret(
    index: PrivateIndex, store: TokenStore, idp: ScriptedIdP, clock: FakeClock
) -> None:
    headers: list[str | None] = []
    store.save(
        index.url,
        TokenSet(access_token="acc-1", expires_at=clock() + 60, obtained_at=clock(),
                 refresh_token="ref-1"),
    )  # fmt: skip
    credentials = Credentials(
        index, store, http=recording(idp, headers), clock=clock, client_secret=SECRET
    )
    result = credentials.logout()
    assert result.revoked
    assert idp.paths() == ["/revoke", "/revoke"]
    assert [basic_pair(header) for header in headers] == [("crane-test", SECRET)] * 2
    assert all("client_secret" not in form for form in idp.forms("/revoke"))


def test_a_refresh_refused_for_the_client_names_the_client(
    index: PrivateIndex, store: TokenStore, idp: ScriptedIdP, clock: FakeClock
) -> None:
    index = dataclasses.replace(index, client_secret_env=SECRET_VAR)
    store.save(
        index.url,
        TokenSet(access_token="acc-1", expires_at=clock() - 1, obtained_at=clock() - 301,
                 refresh_token="ref-1"),
    )  # fmt: skip
    idp.refresh_reply = (401, {"error": "invalid_client"})
    credentials = Credentials(index, store, http=idp.client(), clock=clock, client_secret=SECRET)
    with pytest.raises(AuthError) as info:
        credentials.access_token()
    message = str(info.value)
    assert "refreshing the login failed: invalid_client; check the client id 'crane-test'" in (
        message
    )
    assert f"${SECRET_VAR}" in message
    assert message.endswith(f"run `crane login {index.url}`")


def test_a_device_login_refused_for_its_scope_names_the_scopes(
    index: PrivateIndex, idp: ScriptedIdP, clock: FakeClock
) -> None:
    idp.device_reply = (400, {"error": "invalid_scope"})
    flow = DeviceFlow(index, idp.client(), sleep=clock.sleep, clock=clock, browser=lambda u: True)
    with pytest.raises(AuthError) as info:
        flow.run(QuietUI())
    assert "refused to start a login: invalid_scope; crane asked for the scopes " in str(info.value)
    assert "'openid offline_access'" in str(info.value)
    assert "--scope S" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "error", "hint"),
    [
        (
            {"scopes": ("a", "b")},
            "invalid_scope",
            f"; crane asked for the scopes 'a b': register the index again with the scopes "
            f"this provider offers, e.g. `crane index register {INDEX} --scope S`",
        ),
        ({"scopes": ()}, "invalid_scope", "(none)"),
        ({}, "invalid_client", "; check the client id 'crane-dev'"),
        (
            {"client_secret_env": "S"},
            "invalid_client",
            "; check the client id 'crane-dev' and the secret in $S",
        ),
        (
            {"client_secret_env": "S"},
            "unauthorized_client",
            "; check the client id 'crane-dev' and the secret in $S",
        ),
        ({}, "invalid_grant", ""),
        ({}, None, ""),
    ],
)
def test_oauth_error_hint(fields: dict[str, Any], error: str | None, hint: str) -> None:
    given = oauth_error_hint(device_index(**fields), error)
    if hint in ("", "; check the client id 'crane-dev'"):
        assert given == hint
    else:
        assert hint in given


# -- discovery without a device endpoint --------------------------------------------------


def discovering(document: dict[str, Any]) -> httpx.Client:
    url = f"{IDP}/.well-known/openid-configuration"
    return Provider(documents={url: document}).client()


def test_discovery_for_client_credentials_needs_no_device_endpoint() -> None:
    document = {"issuer": IDP, "token_endpoint": TOKEN, "scopes_supported": ["read", "write"]}
    endpoints = discover(IDP, discovering(document), need_device=False)
    assert endpoints.token_url == TOKEN
    assert endpoints.device_url == ""
    assert endpoints.scopes_supported == ("read", "write")


def test_discovery_for_the_device_flow_names_the_missing_endpoint_and_the_way_out() -> None:
    document = {"issuer": IDP, "token_endpoint": TOKEN}
    with pytest.raises(ConfigError) as info:
        discover(IDP, discovering(document))
    message = str(info.value)
    assert info.value.exit_code == EXIT_CONFIG
    assert "has no device_authorization_endpoint" in message
    assert "--device-url URL" in message
    assert "--auth client-credentials" in message
    assert f"{IDP}/.well-known/openid-configuration" in message


def test_metadata_that_lists_the_device_grant_without_its_endpoint() -> None:
    document = {
        "issuer": IDP,
        "token_endpoint": TOKEN,
        "grant_types_supported": ["authorization_code", DEVICE_CODE_GRANT],
    }
    with pytest.raises(ConfigError) as info:
        discover(IDP, discovering(document))
    message = str(info.value)
    assert "lists the device authorization grant but no device_authorization_endpoint" in message
    assert f"--device-url URL (with --issuer {IDP})" in message
    assert "--auth client-credentials" not in message


@pytest.mark.parametrize("scopes", [None, [], "openid", ["openid", 3]])
def test_scopes_supported_is_none_unless_a_list_of_names(scopes: object) -> None:
    document: dict[str, Any] = {"issuer": IDP, "token_endpoint": TOKEN, "scopes_supported": scopes}
    assert discover(IDP, discovering(document), need_device=False).scopes_supported is None


# -- the stored Basic password ------------------------------------------------------------


def test_a_password_is_stored_private_and_read_back(store: TokenStore) -> None:
    assert store.load_password(INDEX) is None
    store.save_password("https://INDEX.example/simple", "pw-1")
    path = store.password_path_for(INDEX)
    assert path.name.endswith(".password.json")
    assert path.parent == store.path_for(INDEX).parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"version": 1, "index_url": INDEX, "password": "pw-1"}
    assert store.load_password(INDEX) == "pw-1"
    assert not store.path_for(INDEX).exists()  # the token file is another file


def test_a_password_is_replaced_atomically(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_password(INDEX, "old-pw")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(ConfigError) as info:
        store.save_password(INDEX, "new-pw")
    monkeypatch.undo()
    path = store.password_path_for(INDEX)
    assert str(path) in str(info.value)
    assert "new-pw" not in str(info.value)
    assert store.load_password(INDEX) == "old-pw"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_password_file_others_can_read_is_refused(store: TokenStore) -> None:
    store.save_password(INDEX, "leaky-pw")
    path = store.password_path_for(INDEX)
    os.chmod(path, 0o644)
    with pytest.raises(CorruptFileError) as info:
        store.load_password(INDEX)
    assert info.value.exit_code == EXIT_CONFIG
    assert info.value.path == path
    assert f"chmod 600 {path}" in str(info.value)
    assert "leaky-pw" not in str(info.value)
    assert path.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"version": 1, "index_url": "https://index.example/simple/"}',
        b'{"version": 1, "index_url": "https://index.example/simple/", "password": ""}',
        b'{"version": 1, "index_url": "https://index.example/simple/", "password": 7}',
        b'{"version": 1, "index_url": "https://other.example/simple/", "password": "hidden"}',
        b'{"version": 9, "index_url": "https://index.example/simple/", "password": "hidden"}',
    ],
)
def test_a_corrupt_password_file_is_named_and_left_alone(store: TokenStore, content: bytes) -> None:
    path = store.password_path_for(INDEX)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(CorruptFileError) as info:
        store.load_password(INDEX)
    assert str(path) in str(info.value)
    assert "hidden" not in str(info.value)
    assert path.read_bytes() == content


def test_delete_removes_the_tokens_and_the_password(store: TokenStore) -> None:
    now = time.time()
    store.save(INDEX, TokenSet(access_token="a", expires_at=now + 60, obtained_at=now))
    store.save_password(INDEX, "pw")
    assert store.delete(INDEX) is True
    assert not store.path_for(INDEX).exists()
    assert not store.password_path_for(INDEX).exists()
    assert store.delete(INDEX) is False
    store.save_password(INDEX, "pw")
    assert store.delete(INDEX) is True  # a password alone is something to delete
    assert store.load_password(INDEX) is None


# -- no secret in a message, a repr or a log record ---------------------------------------


Scenario = Callable[[TokenStore, Provider, Path], list[str]]


def _client_credentials(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    texts: list[str] = []
    environ = {SECRET_VAR: SECRET}
    authorizer = authorizer_for(cc_index(), environ, store=store, policy=LoginPolicy.REFUSE)
    texts += [repr(authorizer), authorizer.reauthorized(authorizer.authorization())]
    provider.replies = [
        (401, {"error": "invalid_client", "error_description": "client authentication failed"})
    ]
    with pytest.raises(AuthError) as info:
        authorizer_for(cc_index(), environ, store=store, policy=LoginPolicy.REFUSE)
    texts.append(str(info.value))
    provider.replies = [(500, "oops")]
    with pytest.raises(UpstreamError) as upstream:
        authorizer_for(cc_index(), environ, store=store, policy=LoginPolicy.REFUSE)
    texts.append(str(upstream.value))
    with pytest.raises(AuthError) as control:
        read_secret({SECRET_VAR: SECRET + "\x01"}, SECRET_VAR, "client secret", INDEX)
    texts.append(str(control.value))
    return texts


def _token_variable(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    index = PrivateIndex(INDEX, auth="token", token_env="TOK", scopes=())
    authorizer = authorizer_for(index, {"TOK": "s3cr-tok"}, store=store, policy=LoginPolicy.REFUSE)
    texts = [repr(authorizer), repr(index)]
    with pytest.raises(AuthError) as info:
        authorizer.reauthorized(authorizer.authorization())
    texts.append(str(info.value))
    with pytest.raises(AuthError) as malformed:
        authorizer_for(index, {"TOK": SECRET}, store=store, policy=LoginPolicy.REFUSE)
    texts.append(str(malformed.value))
    return texts


def _token_file(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    path = tmp / "tok"
    path.write_text(SECRET)
    index = PrivateIndex(INDEX, auth="token", token_file=str(path), scopes=())
    with pytest.raises(AuthError) as info:
        authorizer_for(index, {}, store=store, policy=LoginPolicy.REFUSE)
    return [str(info.value), repr(index)]


def _basic(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    index = PrivateIndex(INDEX, auth="basic", username="alice", password_env="PW", scopes=())
    authorizer = authorizer_for(index, {"PW": SECRET}, store=store, policy=LoginPolicy.REFUSE)
    texts = [repr(authorizer), repr(index)]
    with pytest.raises(AuthError) as info:
        authorizer.reauthorized(authorizer.authorization())
    texts.append(str(info.value))
    return texts


def _basic_stored(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    store.save_password(INDEX, SECRET)
    authorizer = authorizer_for(index, {}, store=store, policy=LoginPolicy.RUN_PLAIN, ask=no_ask)
    texts = [repr(authorizer), repr(store)]
    with pytest.raises(AuthError) as info:
        authorizer.reauthorized(authorizer.authorization())
    texts.append(str(info.value))
    os.chmod(store.password_path_for(INDEX), 0o640)
    with pytest.raises(CorruptFileError) as insecure:
        store.load_password(INDEX)
    texts.append(str(insecure.value))
    return texts


def _confidential_device(store: TokenStore, provider: Provider, tmp: Path) -> list[str]:
    now = time.time()
    store.save(
        INDEX,
        TokenSet(access_token="old", expires_at=now - 1, obtained_at=now - 301, refresh_token="r"),
    )
    index = device_index(client_secret_env=SECRET_VAR)
    environ = {SECRET_VAR: SECRET}
    provider.replies = [(200, {"access_token": "acc-2", "refresh_token": "r2"})]
    authorizer = authorizer_for(index, environ, store=store, policy=LoginPolicy.REFUSE)
    texts = [repr(authorizer), authorizer.authorization()]
    store.save(
        INDEX,
        TokenSet(access_token="old", expires_at=now - 1, obtained_at=now - 301, refresh_token="r"),
    )
    provider.replies = [(401, {"error": "invalid_client"})]
    with pytest.raises(AuthError) as info:
        authorizer_for(index, environ, store=store, policy=LoginPolicy.REFUSE)
    texts.append(str(info.value))
    return texts


SCENARIOS: dict[str, Scenario] = {
    "client-credentials": _client_credentials,
    "token-variable": _token_variable,
    "token-file": _token_file,
    "basic-variable": _basic,
    "basic-stored": _basic_stored,
    "device-confidential": _confidential_device,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_secret_reaches_a_message_a_repr_or_a_log_record(
    name: str,
    store: TokenStore,
    provider: Provider,
    tmp_path: Path,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    texts = SCENARIOS[name](store, provider, tmp_path)
    records = logged(debug_log)
    assert texts
    if name in ("client-credentials", "device-confidential"):
        assert debug_log.records  # crane's debug lines were captured, and are checked
    assert_nowhere(texts + records, SECRET, "alice", "ci bot", "crane-dev")
    if name == "token-variable":
        assert_nowhere(texts + records, "s3cr-tok")


@pytest.mark.parametrize("status", [302, 500, 404])
def test_a_password_check_that_proves_nothing_stores_nothing(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setattr(schemes, "make_client", FakeIndex(status).client)
    index = PrivateIndex(INDEX, auth="basic", username="alice", scopes=())
    with pytest.raises(UpstreamError, match=f"HTTP {status}"):
        check_basic_password(index, "pw", store)
    assert store.load_password(INDEX) is None


def test_a_fifo_or_a_huge_token_file_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AuthError, match="is not a regular file"):
        authorizer_for(
            PrivateIndex(INDEX, auth="token", token_file=str(fifo), scopes=()),
            {},
            store=TokenStore(tmp_path / "tokens"),
            policy=LoginPolicy.REFUSE,
        )
    huge = tmp_path / "huge"
    huge.write_bytes(b"a" * (64 * 1024 + 1))
    with pytest.raises(AuthError, match="larger than 64 KiB"):
        authorizer_for(
            PrivateIndex(INDEX, auth="token", token_file=str(huge), scopes=()),
            {},
            store=TokenStore(tmp_path / "tokens"),
            policy=LoginPolicy.REFUSE,
        )
