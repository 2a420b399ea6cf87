"""Whether a login may run now, and how: a pure function of the command and its setting.

Never wait where nobody can answer. In CI (the `CI` variable set to anything but empty,
"0" or "false") or with `--no-input`, a login that another command needs fails at once
with `LoginRequiredError`, which names the command to run. Without a terminal but outside
CI (a notebook cell, an IDE console) the flow prints its URL and code plainly and waits.
An explicit `crane login` always runs the flow.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["LoginPolicy", "in_ci", "login_policy"]


class LoginPolicy(enum.Enum):
    RUN_LIVE = "live"  # run the device flow with a live countdown (a terminal)
    RUN_PLAIN = "plain"  # run it, printing the URL and code plainly, no countdown
    REFUSE = "refuse"  # do not start a login; fail with LoginRequiredError


def in_ci(environ: Mapping[str, str]) -> bool:
    value = environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false")


def login_policy(
    *,
    explicit: bool,
    no_input: bool,
    environ: Mapping[str, str],
    stderr_isatty: bool,
) -> LoginPolicy:
    """How to handle a login that is needed now.

    `explicit`: the command is `crane login`. The live countdown goes to stderr, so "a
    terminal" means stderr is one (the device flow reads nothing from stdin, so stdin
    does not matter).
    """
    if not explicit and (no_input or in_ci(environ)):
        return LoginPolicy.REFUSE
    return LoginPolicy.RUN_LIVE if stderr_isatty else LoginPolicy.RUN_PLAIN
