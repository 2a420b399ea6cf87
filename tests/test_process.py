"""crane's process never leaves a core file behind (it holds tokens and the door's secret)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crane_launch import cli

PROBE = """
import ctypes, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
from crane_launch.process import harden
harden()
libc = ctypes.CDLL(None)
print(resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0))
"""


def test_harden_turns_core_dumps_off() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["(0,", "0)", "0"]  # no core file, and not dumpable


def test_every_crane_command_hardens_first(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(cli, "harden", lambda: calls.append("harden"))
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert calls == ["harden"]
