"""Authentication to private indexes: discovery, device login, refresh, token storage.

The room below `proxy` and above `config`. Callers normally need only `Credentials`
(one index's tokens: `access_token()`, `refreshed_token()`, `ensure()`, `login()`,
`logout()`, `status()`), `TokenStore`, `login_policy()` and, at registration, `discover()`.

Modules: `_tokens` (TokenSet), `_store` (files and locks), `_http` (client and error
translation), `_discovery`, `_device` (RFC 8628 and its UI), `_policy`, `_credentials`.
No token ever appears in a repr, an exception message or a log line.
"""

from __future__ import annotations

from ._credentials import DEFAULT_SKEW, Credentials, LogoutResult, TokenStatus
from ._device import (
    DEFAULT_INTERVAL,
    DEVICE_CODE_GRANT,
    SLOW_DOWN_STEP,
    DeviceAuthorization,
    DeviceFlow,
    DeviceFlowUI,
    TerminalUI,
    browser_available,
    format_remaining,
)
from ._discovery import Endpoints, discover, discovery_urls
from ._http import make_client
from ._policy import LoginPolicy, in_ci, login_policy
from ._store import DEFAULT_LOCK_TIMEOUT, TokenStore
from ._tokens import DEFAULT_ACCESS_LIFETIME, TokenSet

__all__ = [
    "DEFAULT_ACCESS_LIFETIME",
    "DEFAULT_INTERVAL",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_SKEW",
    "DEVICE_CODE_GRANT",
    "SLOW_DOWN_STEP",
    "Credentials",
    "DeviceAuthorization",
    "DeviceFlow",
    "DeviceFlowUI",
    "Endpoints",
    "LoginPolicy",
    "LogoutResult",
    "TerminalUI",
    "TokenSet",
    "TokenStatus",
    "TokenStore",
    "browser_available",
    "discover",
    "discovery_urls",
    "format_remaining",
    "in_ci",
    "login_policy",
    "make_client",
]
