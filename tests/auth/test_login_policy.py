from __future__ import annotations

import pytest

from crane_launch.auth import LoginPolicy, login_policy

LIVE, PLAIN, REFUSE = LoginPolicy.RUN_LIVE, LoginPolicy.RUN_PLAIN, LoginPolicy.REFUSE


@pytest.mark.parametrize(
    ("explicit", "no_input", "ci", "stdin_tty", "stderr_tty", "expected"),
    [
        # a command that needs a login
        (False, False, None, True, True, LIVE),
        (False, False, None, False, True, LIVE),
        (False, False, None, True, False, PLAIN),  # stderr captured: no countdown
        (False, False, None, False, False, PLAIN),  # notebook cell, IDE console
        (False, False, "", False, False, PLAIN),
        (False, False, "0", True, True, LIVE),
        (False, False, "false", True, True, LIVE),
        (False, False, "FALSE", False, False, PLAIN),
        (False, False, "true", True, True, REFUSE),
        (False, False, "1", False, False, REFUSE),
        (False, False, "yes", True, True, REFUSE),
        (False, True, None, True, True, REFUSE),
        (False, True, None, False, False, REFUSE),
        # an explicit `crane login` always runs
        (True, False, "true", True, True, LIVE),
        (True, True, "true", False, False, PLAIN),
        (True, True, None, True, True, LIVE),
        (True, False, None, False, False, PLAIN),
    ],
)
def test_login_policy(
    *,
    explicit: bool,
    no_input: bool,
    ci: str | None,
    stdin_tty: bool,
    stderr_tty: bool,
    expected: LoginPolicy,
) -> None:
    environ = {"LANG": "C"} if ci is None else {"CI": ci}
    policy = login_policy(
        explicit=explicit,
        no_input=no_input,
        environ=environ,
        stdin_isatty=stdin_tty,
        stderr_isatty=stderr_tty,
    )
    assert policy is expected
