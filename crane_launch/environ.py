"""What crane reads of its environment before anything else: where it keeps its files,
and which variables hold secrets that a child process must never see.

Kept free of imports beyond `os` and `pathlib`: the console script's entry (`entry.py`)
reads it before deciding whether the rest of crane is needed at all. (platformdirs costs
4 ms of start-up; on Linux the config directory follows the XDG rule it follows, and a
test holds the two together.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["ALWAYS_HIDDEN", "SECRET_VARIABLE_FIELDS", "cache_dir", "config_dir", "state_dir"]

ALWAYS_HIDDEN: frozenset[str] = frozenset({"CRANE_CLIENT_SECRET", "CRANE_TOKEN", "CRANE_PASSWORD"})
"""The secrets of an index described by the environment (`config.environment_index`)."""

SECRET_VARIABLE_FIELDS = ("client_secret_env", "token_env", "password_env")
"""The fields of a registered index that name a variable holding one of its secrets."""


def config_dir() -> Path:
    home = os.environ.get("CRANE_HOME")
    if home:
        return Path(home) / "config"
    if sys.platform == "linux":
        # platformdirs' rule on Linux (XDG Base Directory): $XDG_CONFIG_HOME unless blank.
        configured = os.environ.get("XDG_CONFIG_HOME", "")
        base = configured if configured.strip() else os.path.expanduser("~/.config")
        return Path(base) / "crane"
    import platformdirs

    return Path(platformdirs.user_config_dir("crane", appauthor=False))


def state_dir() -> Path:
    home = os.environ.get("CRANE_HOME")
    if home:
        return Path(home) / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir("crane", appauthor=False))


def cache_dir() -> Path:
    """Where crane keeps the private files its index door has served."""
    home = os.environ.get("CRANE_HOME")
    if home:
        return Path(home) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("crane", appauthor=False))
