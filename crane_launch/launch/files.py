"""Reading the user's files for the planners: one contract for every reader.

Planners never open a file themselves; they are handed a `ReadText` (by default
`Path.read_text`), so tests can give them a fake file system.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crane_launch.errors import ConfigError

__all__ = ["ReadText", "display_path", "read_optional", "read_unless_missing"]

ReadText = Callable[[Path], str]
"""Reads a whole text file; raises `FileNotFoundError` (or another `OSError`) like
`Path.read_text`."""


def read_optional(read_text: ReadText, path: Path) -> tuple[bool, str | None]:
    """(exists, text): a file that exists but cannot be read is (True, None).

    Tools skip unreadable config files rather than fail, and so does crane.
    """
    try:
        return True, read_text(path)
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot be decoded ({exc.reason})") from None
    except OSError:
        return True, None


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else absolute: how users name files."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def read_unless_missing(read_text: ReadText, path: Path) -> str | None:
    """The file's text; None when there is no such file (a directory in its place is none).

    Unlike `read_optional`, a file that exists but cannot be read is a `ConfigError` naming
    it: for a file that may name a private index or pin a project (a project file, a lock
    file), going on without it could send a private project elsewhere.
    """
    try:
        return read_text(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
