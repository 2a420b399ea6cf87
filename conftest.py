"""Suite-wide progress lines: what runs, so a long run is never a silent terminal.

pytest's quiet mode prints dots only; these hooks add one line when the suite is collected
(how many unit and end-to-end tests) and one when each phase starts. The `announce`
fixture lets a fixture say what it is starting (the integration stack).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable

import pytest

_PHASES = {
    "tests": "unit tests (tests/, no network, fakes where a test is not about the part)",
    "integration": "end-to-end tests (integration/): the real pip, uv and poetry against "
    "oidc-provider and pypiserver on 127.0.0.1",
}
_started: set[str] = set()


def _say(config: pytest.Config, text: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(f"== {text}")


def _phase(nodeid: str) -> str:
    return nodeid.split("/", 1)[0]


def pytest_collection_finish(session: pytest.Session) -> None:
    counts = Counter(_phase(item.nodeid) for item in session.items)
    parts = [f"{n} {_PHASES.get(p, p).split(' (')[0]}" for p, n in counts.items()]
    if parts:
        _say(session.config, "collected " + ", ".join(parts))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    phase = _phase(item.nodeid)
    if phase not in _started:
        _started.add(phase)
        _say(item.config, _PHASES.get(phase, phase))


@pytest.fixture(scope="session")
def announce(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """`announce(text)`: one `== text` line on the terminal, even under output capture."""
    return lambda text: _say(pytestconfig, text)
