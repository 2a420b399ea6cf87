"""`crane --report FILE`: the run's provenance record, written as JSON at its end.

The record is the ledger's (`proxy.provenance`, where the format is described) with what
the launcher knows added: the tool and its command words, the exit codes, crane's error,
the indexes of the run and the guard's refusals. It is written atomically; the path was
checked before the run (`commands.tools.report_path`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from crane_launch import __version__
from crane_launch.config import atomic_write_text
from crane_launch.errors import CraneError
from crane_launch.launch.plan import Plan
from crane_launch.proxy.provenance import Ledger

__all__ = ["write_report"]

log = logging.getLogger(__name__)

_COMMAND_WORD = re.compile(r"[a-z][a-z0-9-]*")


def write_report(
    path: Path,
    ledger: Ledger,
    plan: Plan,
    *,
    outcome: int | None,
    child: int | None,
    error: CraneError | None,
    indexes: list[dict[str, str]],
    refusals: Iterable[str],
) -> None:
    """Write the record to `path`. Raises CraneError (exit 1) when it cannot be written
    and the run ended normally (`outcome` set); otherwise that is only logged, so that
    the error that ended the run is the one reported."""
    record = ledger.as_json(
        crane=__version__,
        tool=plan.tool,
        command=subcommand(plan.command),
        exit_code=outcome,
        child_exit_code=child,
        error=str(error) if error is not None else None,
        indexes=indexes,
        refusals=list(dict.fromkeys(refusals)),
    )
    try:
        atomic_write_text(path, json.dumps(record, indent=2) + "\n", mode=0o644)
    except OSError as exc:
        message = f"cannot write the report {path}: {exc.strerror or exc}"
        if outcome is not None:
            raise CraneError(message) from None
        log.warning("%s", message)


def subcommand(command: Sequence[str]) -> str:
    """`pip install`, `uv pip install`, `uv sync`, `poetry lock`: the tool and its
    command words, without options or their values (a value may be a URL or a secret)."""
    words = list(command)
    tool = Path(words[0]).name
    if words[1:3] == ["-m", "pip"]:
        tool, words = "pip", words[2:]
    # Command words only: an option's value (a path, a URL) is never one of these.
    positional = [word for word in words[1:] if _COMMAND_WORD.fullmatch(word)]
    wanted = 2 if positional[:1] == ["pip"] else 1
    return " ".join([tool, *positional[:wanted]])
