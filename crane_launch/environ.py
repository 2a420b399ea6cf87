"""What crane reads of its environment before anything else: where it keeps its files,
and which variables hold secrets that a child process must never see.

Kept free of imports beyond `os` and `pathlib`: the console script's entry (`entry.py`)
reads it before deciding whether the rest of crane is needed at all. (platformdirs costs
4 ms of start-up; where its answer for the config directory is plain, crane computes it,
and a test holds the two together; anything less plain is left to platformdirs.)
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
    fast = _plain_xdg_config_home()
    if fast is not None:
        return Path(fast) / "crane"
    import platformdirs

    return Path(platformdirs.user_config_dir("crane", appauthor=False))


def _plain_xdg_config_home() -> str | None:
    """The XDG config home where every platformdirs version agrees on it without asking
    it (on Linux: an absolute `$XDG_CONFIG_HOME`, else `$HOME/.config` for an absolute
    `$HOME`); None for anything less plain (relative values, no HOME, other systems),
    which platformdirs decides."""
    if sys.platform != "linux" or hasattr(sys, "getandroidapilevel"):
        return None
    if "ANDROID_DATA" in os.environ or "ANDROID_ROOT" in os.environ:
        return None  # platformdirs may take this for Android
    configured = os.environ.get("XDG_CONFIG_HOME", "")
    if os.path.isabs(configured):
        return configured
    home = os.environ.get("HOME", "").rstrip("/")
    if configured or not home.startswith("/"):
        return None  # a relative or blank XDG value, no usable HOME: platformdirs decides
    return home + "/.config"


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
