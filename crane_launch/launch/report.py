"""`crane --report FILE`: the run's provenance record, written as JSON at its end.

The record is the ledger's (`proxy.provenance`, where the format is described) with what
the launcher knows added: the tool and its command words, whether crane's doors guarded
the run, the exit codes, crane's error, the indexes of the run and the guard's refusals.

`Report.at` checks the path before anything runs (exit 2 for what cannot be a report: a
directory, a special file, a symbolic link, a directory that does not exist or cannot be
written). Every end of a tool command writes the record once: a run through the doors,
a run crane left unchanged (`guarded` false), and a run crane stopped before the tool
started (`error`), so that an old report never stands for a new run. It is written
atomically, with the mode a new file gets under the user's umask.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crane_launch import __version__
from crane_launch.config import atomic_write_text
from crane_launch.errors import CraneError, UsageError, without_secrets

if TYPE_CHECKING:
    from crane_launch.proxy.provenance import Ledger

__all__ = ["Report", "subcommand"]

log = logging.getLogger(__name__)

_COMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*")


@dataclass
class Report:
    """Where one run's record goes, and whether it has been written."""

    path: Path
    written: bool = False

    @classmethod
    def at(cls, value: str | None) -> Report | None:
        """The report for `--report VALUE` / `CRANE_REPORT` (None: no report), checked
        now: UsageError (exit 2) for a path that cannot take one."""
        if not value:
            return None
        path = Path(value).expanduser().absolute()
        shown = f"report file {value}"
        try:
            found = path.lstat()
        except FileNotFoundError:
            found = None
        except OSError as exc:
            raise UsageError(f"{shown}: {exc.strerror or exc}") from None
        if found is not None and stat.S_ISDIR(found.st_mode):
            raise UsageError(f"{shown}: is a directory; give a file name")
        if found is not None and not stat.S_ISREG(found.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(found.st_mode) else "not a regular file"
            raise UsageError(f"{shown}: is {kind}; give the path of a regular file")
        if not path.parent.is_dir():
            raise UsageError(f"{shown}: directory {path.parent} does not exist")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise UsageError(f"{shown}: directory {path.parent} cannot be written")
        return cls(path)

    def write(
        self,
        ledger: Ledger,
        *,
        command: Sequence[str],
        tool: str,
        guarded: bool,
        outcome: int | None,
        child: int | None,
        error: CraneError | None,
        indexes: list[dict[str, str]],
        refusals: Iterable[str] = (),
    ) -> None:
        """Write the record. A record that cannot be written is an error (exit 1) only
        where it would otherwise end in success (`outcome` 0): a failure's own code, and
        crane's own error, stay the ones reported."""
        self.written = True
        record = ledger.as_json(
            crane=__version__,
            tool=tool,
            command=subcommand(command),
            guarded=guarded,
            exit_code=outcome,
            child_exit_code=child,
            error=without_secrets(str(error)) if error is not None else None,
            indexes=indexes,
            refusals=list(dict.fromkeys(refusals)),
        )
        try:
            atomic_write_text(self.path, json.dumps(record, indent=2) + "\n", mode=_new_file_mode())
        except OSError as exc:
            message = f"cannot write the report {self.path}: {exc.strerror or exc}"
            if outcome == 0:
                raise CraneError(message) from None
            log.warning("%s", message)

    def write_failure(self, tool: str, command: Sequence[str], error: CraneError) -> None:
        """The record of a run crane stopped before the tool started."""
        from crane_launch.proxy.provenance import Ledger

        self.write(
            Ledger(),
            command=command,
            tool=tool,
            guarded=False,
            outcome=None,
            child=None,
            error=error,
            indexes=[],
        )


def subcommand(command: Sequence[str]) -> str:
    """`pip install`, `uv pip install`, `uv sync`, `poetry lock`: the tool and its
    command words, without options or their values (a value may be a URL or a secret)."""
    words = list(command)
    if not words:
        return ""
    tool = Path(words[0]).name
    if words[1:3] == ["-m", "pip"]:
        tool, words = "pip", words[2:]
    # Command words only: an option's value (a path, a URL) is never one of these.
    positional = [word for word in words[1:] if _COMMAND_WORD.fullmatch(word)]
    wanted = 2 if positional[:1] == ["pip"] else 1
    return " ".join([tool, *positional[:wanted]])


def _new_file_mode() -> int:
    """0666 under the process's umask (read without changing it: other threads run)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644
