"""`crane ARGS...` run in-process for CLI tests: its exit code and what it printed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from crane_launch.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str


Crane = Callable[..., Result]


def in_process(capsys: pytest.CaptureFixture[str]) -> Crane:
    """A runner of `crane.cli.main` whose output `capsys` captures (the caller sets the
    environment: CRANE_HOME and the variables it must not inherit)."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as caught:
            main(list(args))
        code = caught.value.code
        captured = capsys.readouterr()
        return Result(code if isinstance(code, int) else int(code is not None), *captured)

    return run
