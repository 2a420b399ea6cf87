"""A headless user for django-oauth-toolkit's device flow pages (test-only).

DOT's device pages (``oauth2_provider.views.device``) are plain Django forms behind
Django's login, so a test can play the person at the browser with httpx, a cookie jar
and ``html.parser`` (``parse_forms`` from ``stack.user``):

1. ``GET verification_uri`` (``.../o/device/``, or ``verification_uri_complete`` with
   ``?user_code=...``, which pre-fills the form) -> not signed in: a redirect to Django's
   login form (``csrfmiddlewaretoken``, ``username``, ``password``, ``next``);
2. post the login -> back to the user-code form (``user_code``); fill it in unless the
   complete URI pre-filled it, post it -> a redirect to
   ``.../o/device-confirm/<client_id>/<user_code>``;
3. the approval form: two buttons ``action=accept`` / ``action=deny``; press one ->
   ``.../o/device-grant-status/...``: "Device Authorized" (or "Device Denied").

Every form carries Django's CSRF token; the cookie jar holds the CSRF and session cookies.
``complete_device_flow`` raises ``DeviceFlowUserError`` with the page text when it cannot
get to the status page: a refused login, a refused or reused user code, a 404.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from stack.user import DeviceFlowUserError, Form, parse_forms

__all__ = ["DeviceFlowUserError", "complete_device_flow", "deny_device_flow"]

MAX_STEPS = 8


def _summary(resp: httpx.Response, text: str) -> str:
    flat = re.sub(r"\s+", " ", text).strip()
    return f"HTTP {resp.status_code} at {resp.url}: {flat[:1500]}"


def _post_form(forms: list[Form]) -> Form | None:
    return next((form for form in forms if form.method == "post"), None)


def _run(
    url: str, user_code: str | None, *, username: str, password: str, deny: bool, timeout: float
) -> str:
    if user_code is None:
        query = parse_qs(urlsplit(url).query)
        if query.get("user_code"):
            user_code = query["user_code"][0]
    sent: set[str] = set()
    with httpx.Client(follow_redirects=True, timeout=timeout, trust_env=False) as client:
        resp = client.get(url, headers={"Accept": "text/html"})
        for _ in range(MAX_STEPS):
            if "html" in resp.headers.get("content-type", ""):
                forms, text = parse_forms(resp.text)
            else:
                forms, text = [], resp.text
            summary = _summary(resp, text)
            if "Device Authorized" in text:
                if deny:
                    raise DeviceFlowUserError(f"expected to deny, but it was authorized: {summary}")
                return text
            if "Device Denied" in text:
                if deny:
                    return text
                raise DeviceFlowUserError(f"the device was denied: {summary}")
            if resp.status_code >= 400:
                raise DeviceFlowUserError(f"device flow page failed: {summary}")
            form = _post_form(forms)
            if form is None:
                raise DeviceFlowUserError(f"no form to submit: {summary}")
            data = dict(form.fields)
            if "username" in form.names and "password" in form.names:
                if "login" in sent:
                    raise DeviceFlowUserError(f"the login was refused: {summary}")
                data.update(username=username, password=password)
                sent.add("login")
            elif "user_code" in form.names:
                if "code" in sent:
                    raise DeviceFlowUserError(f"the user code was refused: {summary}")
                if not data.get("user_code"):
                    if not user_code:
                        raise DeviceFlowUserError(
                            f"the page asks for the user code, none was given: {summary}"
                        )
                    data["user_code"] = user_code
                sent.add("code")
            elif any(name == "action" for name, _ in form.buttons):
                data["action"] = "deny" if deny else "accept"
            else:
                raise DeviceFlowUserError(f"an unexpected form: {summary}")
            action = urljoin(str(resp.url), form.action or str(resp.url))
            resp = client.post(action, data=data, headers={"Accept": "text/html"})
        raise DeviceFlowUserError(f"device flow did not finish in {MAX_STEPS} steps: {summary}")


def complete_device_flow(
    url: str,
    user_code: str | None = None,
    *,
    username: str,
    password: str,
    timeout: float = 10.0,
) -> str:
    """Sign in as ``username`` and approve the pending device authorization.

    ``url`` is ``verification_uri`` with ``user_code``, or ``verification_uri_complete``
    (the user code is read from its query). Returns the status page's text.
    """
    return _run(url, user_code, username=username, password=password, deny=False, timeout=timeout)


def deny_device_flow(
    url: str,
    user_code: str | None = None,
    *,
    username: str,
    password: str,
    timeout: float = 10.0,
) -> str:
    """Sign in and press "Deny": the device's next poll gets ``access_denied``."""
    return _run(url, user_code, username=username, password=password, deny=True, timeout=timeout)
