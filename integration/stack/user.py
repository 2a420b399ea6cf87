"""A headless user for oidc-provider's device flow pages (test-only).

Every page of the device flow in oidc-provider 8 (with ``devInteractions``) is a plain HTML
form, so a test can play the person at the browser with httpx and a cookie jar:

1. ``GET verification_uri_complete`` -> an auto-submitting "form_post" page carrying the
   ``xsrf`` secret and the ``user_code`` (or, for the bare ``verification_uri``, the
   user-code input form ``op.deviceInputForm``, which we fill in);
2. post it -> the confirm page with ``op.deviceConfirmForm`` (``xsrf``, ``user_code``,
   ``confirm=yes``; its "[ Abort ]" button adds ``abort=yes``);
3. post confirm -> redirect to ``/interaction/<uid>``: the dev login form (any login and
   password work);
4. post login -> redirect to the consent form (``prompt=consent``): posting it grants every
   scope that was asked for (``openid``, ``offline_access``, ``index:read``);
5. -> ``/device/<uid>/...`` -> the "Sign-in Success" page.

No JavaScript is involved. ``complete_device_flow`` raises ``DeviceFlowUserError`` with the
page text when it cannot get to the success page; ``deny_device_flow`` presses "Abort" on the
confirm page, after which the device's next token poll gets ``access_denied``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

__all__ = ["DeviceFlowUserError", "complete_device_flow", "deny_device_flow", "parse_forms"]

MAX_STEPS = 12


class DeviceFlowUserError(RuntimeError):
    """The headless user could not finish the flow; the message carries the page text."""


@dataclass
class Form:
    id: str | None
    action: str | None
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    # input names present (including text inputs without a value), in order
    names: list[str] = field(default_factory=list)
    # submit buttons that carry a name: [(name, value)]
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._by_id: dict[str, Form] = {}
        self._current: Form | None = None
        self._orphan_buttons: list[tuple[str, str, str]] = []  # (form id, name, value)
        self._text: list[str] = []
        self._skip = 0  # inside <style>/<script>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            form = Form(
                id=a.get("id"), action=a.get("action"), method=(a.get("method") or "get").lower()
            )
            self.forms.append(form)
            if form.id:
                self._by_id[form.id] = form
            self._current = form
        elif tag == "input":
            form = self._by_id.get(a["form"]) if "form" in a else self._current
            name = a.get("name")
            if form is None or not name:
                return
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                form.names.append(name)
                return
            if kind == "submit":
                form.buttons.append((name, a.get("value", "")))
                return
            form.names.append(name)
            form.fields[name] = a.get("value", "")
        elif tag == "button":
            name = a.get("name")
            if not name:
                return
            if "form" in a:
                self._orphan_buttons.append((a["form"], name, a.get("value", "")))
            elif self._current is not None:
                self._current.buttons.append((name, a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._current = None

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self._text.append(data.strip())

    def close(self) -> None:
        super().close()
        for form_id, name, value in self._orphan_buttons:
            form = self._by_id.get(form_id)
            if form is not None:
                form.buttons.append((name, value))

    @property
    def text(self) -> str:
        return " ".join(self._text)


def parse_forms(html: str) -> tuple[list[Form], str]:
    """Return the page's forms and its visible text (without style/script)."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.text


def _page_summary(resp: httpx.Response, text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    # drop the dev interactions' DEBUG block, it is long and not useful here
    text = text.split("(Click to expand) DEBUG information")[0].strip()
    return f"HTTP {resp.status_code} at {resp.url}: {text[:1500]}"


def _run(url: str, user_code: str | None, *, login: str, deny: bool, timeout: float) -> str:
    if user_code is None:
        query = parse_qs(urlsplit(url).query)
        if query.get("user_code"):
            user_code = query["user_code"][0]
    with httpx.Client(follow_redirects=True, timeout=timeout, trust_env=False) as client:
        resp = client.get(url, headers={"Accept": "text/html"})
        code_sent = False
        for _ in range(MAX_STEPS):
            forms, text = _parse(resp)
            summary = _page_summary(resp, text)
            if "Sign-in Success" in text or "was successful" in text:
                if deny:
                    raise DeviceFlowUserError(f"expected to deny, but sign-in succeeded: {summary}")
                return text
            if deny and "Sign-in request was interrupted" in text:
                return text
            if resp.status_code >= 400 or "something went wrong" in text:
                raise DeviceFlowUserError(f"device flow page failed: {summary}")
            if "code you entered is incorrect" in text or "error processing your request" in text:
                raise DeviceFlowUserError(f"device flow page refused the code: {summary}")
            if "Sign-in request was interrupted" in text:
                raise DeviceFlowUserError(f"device flow was aborted: {summary}")

            form = _pick(forms)
            if form is None:
                raise DeviceFlowUserError(f"no form to submit: {summary}")
            data = dict(form.fields)
            if form.id == "op.deviceInputForm" or (
                "user_code" in form.names and not data.get("user_code")
            ):
                if not user_code:
                    raise DeviceFlowUserError(
                        f"the page asks for the user code, none was given: {summary}"
                    )
                if code_sent and form.id == "op.deviceInputForm":
                    raise DeviceFlowUserError(f"the user code was asked for again: {summary}")
                data["user_code"] = user_code
                code_sent = True
            elif form.id == "op.deviceConfirmForm":
                if deny:
                    abort = next(
                        ((n, v) for n, v in form.buttons if n == "abort"), ("abort", "yes")
                    )
                    data[abort[0]] = abort[1] or "yes"
            elif data.get("prompt") == "login" or "login" in form.names:
                data["login"] = login
                data["password"] = data.get("password") or "any-password"
            # consent and the auto-submitting form_post page: post as they are
            action = urljoin(str(resp.url), form.action or str(resp.url))
            if form.method == "post":
                resp = client.post(action, data=data, headers={"Accept": "text/html"})
            else:
                resp = client.get(action, params=data, headers={"Accept": "text/html"})
        forms, text = _parse(resp)
        raise DeviceFlowUserError(
            f"device flow did not finish in {MAX_STEPS} steps: {_page_summary(resp, text)}"
        )


def _parse(resp: httpx.Response) -> tuple[list[Form], str]:
    if "html" not in resp.headers.get("content-type", ""):
        return [], resp.text
    return parse_forms(resp.text)


def _pick(forms: list[Form]) -> Form | None:
    if not forms:
        return None
    for preferred in ("op.deviceConfirmForm", "op.deviceInputForm"):
        for form in forms:
            if form.id == preferred:
                return form
    for form in forms:
        if form.method == "post":
            return form
    return forms[0]


def complete_device_flow(
    url: str, user_code: str | None = None, *, login: str = "alice", timeout: float = 10.0
) -> None:
    """Approve a pending device authorization as a user would in a browser.

    ``url`` is ``verification_uri_complete`` (the user code is read from its query), or
    ``verification_uri`` together with ``user_code``. ``login`` becomes the token's ``sub``.
    """
    _run(url, user_code, login=login, deny=False, timeout=timeout)


def deny_device_flow(url: str, user_code: str | None = None, *, timeout: float = 10.0) -> None:
    """Press "Abort" on the confirm page: the device's next poll gets ``access_denied``."""
    _run(url, user_code, login="nobody", deny=True, timeout=timeout)
