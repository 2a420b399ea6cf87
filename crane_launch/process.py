"""What crane's own process guarantees about itself: its memory never lands in a core file.

crane's process holds access and refresh tokens, the index door's secret and the run's CA
key. A core dump (`ulimit -c unlimited`, then SIGQUIT or a crash) would write all of them
to disk. `harden` sets the core-file limit to 0 (inherited by the child, which holds the
door's proxy password) and, on Linux, marks the process not dumpable (`PR_SET_DUMPABLE`
0: no core file, and no ptrace attach or /proc/<pid>/mem read by the same non-root user).
Both are best effort where the platform lacks them; neither is a reason to fail.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys

__all__ = ["harden"]

_PR_SET_DUMPABLE = 4


def harden() -> None:
    """No core dumps of this process; call once, first thing."""
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
