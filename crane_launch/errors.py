"""Every error crane reports itself, and the exit code each one carries.

The tree::

    CraneError                      (1)  anything crane could not do
    ├── UsageError                  (2)  the command line is wrong
    ├── ConfigError                 (3)  crane's or a tool's configuration is wrong
    │   ├── CorruptFileError             a config or token file cannot be read
    │   ├── UnknownIndexError            an index URL that is not registered
    │   └── RejectedSettingError         --extra-index-url / --proxy found somewhere
    ├── AuthError                   (4)  authentication did not succeed
    │   └── LoginRequiredError           a login is needed and nobody can answer
    └── UpstreamError               (5)  an index or identity provider failed

    EXIT_CONFUSION                  (6)  `crane audit`: a project of the private index
                                         was (or would be) taken from elsewhere

A child tool's own exit code is passed through unchanged; the codes above are
crane's only when crane itself stopped the run. `cli.main` is the one place that
turns these into a `crane: ...` line and an exit status.
"""

from __future__ import annotations

import re
from typing import NewType

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFIG",
    "EXIT_CONFUSION",
    "EXIT_FAILURE",
    "EXIT_UPSTREAM",
    "EXIT_USAGE",
    "AuthError",
    "ConfigError",
    "CorruptFileError",
    "CraneError",
    "ExitCode",
    "LoginRequiredError",
    "RejectedSettingError",
    "UnknownIndexError",
    "UpstreamError",
    "UsageError",
    "without_secrets",
]

ExitCode = NewType("ExitCode", int)

EXIT_FAILURE = ExitCode(1)
EXIT_USAGE = ExitCode(2)
EXIT_CONFIG = ExitCode(3)
EXIT_AUTH = ExitCode(4)
EXIT_UPSTREAM = ExitCode(5)
EXIT_CONFUSION = ExitCode(6)


class CraneError(Exception):
    """An error with a one-line, user-facing message. Never carries a secret."""

    exit_code: ExitCode = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(CraneError):
    exit_code = EXIT_USAGE


class ConfigError(CraneError):
    exit_code = EXIT_CONFIG


class CorruptFileError(ConfigError):
    """A file crane owns exists but cannot be used. It is never replaced silently."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}; fix or remove the file")
        self.path = path


class UnknownIndexError(ConfigError):
    def __init__(self, url: str, suggestion: str | None = None) -> None:
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        shown = without_secrets(url)
        super().__init__(
            f"{shown} is not a registered index{hint}; register it with "
            f"`crane index register {shown} ...`"
        )
        self.url = url
        self.suggestion = suggestion


class RejectedSettingError(ConfigError):
    """A setting that would let a tool bypass crane's proxy (extra indexes, proxies)."""

    def __init__(self, place: str, setting: str, why: str) -> None:
        super().__init__(f"{place}: {setting} is not allowed under crane: {why}")
        self.place = place
        self.setting = setting


_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]*@")
_QUERY = re.compile(r"(://[^\s?#]*)[?#](?=[\w%~.=&+-])[^\s)]*")


def without_secrets(text: str) -> str:
    """`text` with every URL in it shown without user info, query or fragment (a
    password or a signed query a user typed must not reach a message or a report)."""
    return _QUERY.sub(r"\1", _USERINFO.sub(r"\1", text))


class AuthError(CraneError):
    exit_code = EXIT_AUTH


class LoginRequiredError(AuthError):
    def __init__(
        self, index_url: str, reason: str = "not logged in", hint: str | None = None
    ) -> None:
        tail = f"; {hint}" if hint else ""
        super().__init__(f"{index_url}: {reason}; run `crane login {index_url}`{tail}")
        self.index_url = index_url
        self.reason = reason


class UpstreamError(CraneError):
    exit_code = EXIT_UPSTREAM
