"""Fixtures for the proxy's tests: the fakes of `fakes.py`, fresh for each test."""

from __future__ import annotations

import pytest

from tests.proxy.fakes import FakeTokens, ScriptedOrigins


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def origins() -> ScriptedOrigins:
    return ScriptedOrigins()
