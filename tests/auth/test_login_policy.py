from __future__ import annotations

import pytest

from crane_launch.auth import LoginPolicy, login_policy

LIVE, PLAIN, REFUSE = LoginPolicy.RUN_LIVE, LoginPolicy.RUN_PLAIN, LoginPolicy.REFUSE


@pytest.mark.parametrize(
    ("explicit", "no_input", "ci", "stderr_tty", "expected"),
    [
        # a command that needs a login
        (False, False, None, True, LIVE),
        (False, False, None, False, PLAIN),  # stderr captured, notebook cell, IDE console
        (False, False, "", False, PLAIN),
        (False, False, "0", True, LIVE),
        (False, False, "false", True, LIVE),
        (False, False, "FALSE", False, PLAIN),
        (False, False, "true", True, REFUSE),
        (False, False, "1", False, REFUSE),
        (False, False, "yes", True, REFUSE),
        (False, True, None, True, REFUSE),
        (False, True, None, False, REFUSE),
        # an explicit `crane login` always runs
        (True, False, "true", True, LIVE),
        (True, True, "true", False, PLAIN),
        (True, True, None, True, LIVE),
        (True, False, None, False, PLAIN),
    ],
)
def test_login_policy(
    *,
    explicit: bool,
    no_input: bool,
    ci: str | None,
    stderr_tty: bool,
    expected: LoginPolicy,
) -> None:
    environ = {"LANG": "C"} if ci is None else {"CI": ci}
    policy = login_policy(
        explicit=explicit,
        no_input=no_input,
        environ=environ,
        stderr_isatty=stderr_tty,
    )
    assert policy is expected
