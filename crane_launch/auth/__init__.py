"""Authentication to private indexes: discovery, device login, refresh, client
credentials, static tokens, HTTP Basic, token storage.

The room below `proxy` and above `config`. Callers normally need only `Credentials`
(one index's tokens: `access_token()`, `refreshed_token()`, `ensure()`, `login()`,
`logout()`, `status()`), `TokenStore`, `login_policy()` and, at registration, `discover()`.

Modules: `_tokens` (TokenSet), `_store` (files and locks), `_http` (client and error
translation), `_discovery`, `_device` (RFC 8628 and its UI), `_policy`, `_credentials`,
`_schemes` (one `Authorizer` per scheme, and `authorizer_for`, which the proxy's users call).
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
from ._schemes import (
    CI_SCHEMES_HINT,
    Authorizer,
    BasicAuthorizer,
    BearerAuthorizer,
    ClientCredentials,
    StaticToken,
    ask_password,
    authorizer_for,
    check_basic_password,
    client_secret_for,
    describe_scheme,
    read_secret,
)
from ._store import DEFAULT_LOCK_TIMEOUT, TokenStore
from ._tokens import DEFAULT_ACCESS_LIFETIME, TokenSet

__all__ = [
    "CI_SCHEMES_HINT",
    "DEFAULT_ACCESS_LIFETIME",
    "DEFAULT_INTERVAL",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_SKEW",
    "DEVICE_CODE_GRANT",
    "SLOW_DOWN_STEP",
    "Authorizer",
    "BasicAuthorizer",
    "BearerAuthorizer",
    "ClientCredentials",
    "Credentials",
    "DeviceAuthorization",
    "DeviceFlow",
    "DeviceFlowUI",
    "Endpoints",
    "LoginPolicy",
    "LogoutResult",
    "StaticToken",
    "TerminalUI",
    "TokenSet",
    "TokenStatus",
    "TokenStore",
    "ask_password",
    "authorizer_for",
    "browser_available",
    "check_basic_password",
    "client_secret_for",
    "describe_scheme",
    "discover",
    "discovery_urls",
    "format_remaining",
    "in_ci",
    "login_policy",
    "make_client",
    "read_secret",
]
