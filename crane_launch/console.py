"""The one owner of crane's own output: `crane:` lines, `-v`, redaction and the logger tree.

Every line crane itself prints goes to stderr with the `crane: ` prefix (the child's
stdout and stderr pass through untouched), through `say`. Every module logs
under the `crane_launch` logger tree (`logging.getLogger(__name__)`); `setup` gives that
tree one stderr handler whose formatter redacts anything shaped like a credential, so a
token cannot reach the terminal through a log line whichever module wrote it.

This module sits below every room: it imports nothing from crane.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

__all__ = ["LOGGER", "PREFIX", "Redacting", "redact", "say", "setup"]

PREFIX = "crane: "
LOGGER = "crane_launch"

_SECRETS = re.compile(
    r"(?P<head>\b(?:Bearer|Basic)\s+)[^\s\"',;]+"
    r"|(?P<key>\b(?:access_token|refresh_token|id_token|device_code|client_secret|password)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with bearer and basic credentials and token-named values replaced."""
    return _SECRETS.sub(
        lambda m: (m.group("head") or m.group("key")) + "[redacted]",
        text,
    )


class Redacting(logging.Formatter):
    """Formats a record, traceback included, then redacts it: no log line leaves crane with
    something shaped like a credential."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup(verbose: int) -> None:
    """Configure the `crane_launch` logger tree: debug lines with `-v`, warnings otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Redacting(PREFIX + "%(message)s"))
    root = logging.getLogger(LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False


def say(message: str, *, stream: TextIO | None = None) -> None:
    """One `crane: message` line on stderr (or `stream`), flushed at once."""
    print(PREFIX + message, file=stream if stream is not None else sys.stderr, flush=True)
