"""Fixtures for crane's integration tests: a real IdP, real indexes, an auth gate.

Session-scoped ``stack`` (started once, about 1 s):
- a public pypiserver (``public_url``) with ``public-only-dep 1.0``, ``decoy-pkg 99.0``,
  ``public-other 2.0``;
- a private pypiserver with ``crane-private-app 1.0`` (requires ``public-only-dep``) and
  ``decoy-pkg 1.0``, reachable only through a ``Gate`` (``private_url``) that demands a
  bearer JWT from the IdP;
- oidc-provider (``issuer``) with client ``crane-test``, device flow, rotating refresh tokens,
  access tokens that live ``ACCESS_TTL`` = 300 s.

Function-scoped ``short_stack``: a second IdP with 3-second access tokens and its own Gate
in front of the same private pypiserver (for refresh tests). ``short_stack_factory`` makes
more, with any TTLs.

``tool_env``: a clean environment for child tools (pip, uv, poetry, crane) under tmp_path,
with the project's own bin directory first on PATH (see ``toolpath``).

The IdP needs ``npm install`` in ``integration/stack`` once (``oidc-provider`` 8.8.1).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from stack import servers  # noqa: E402
from stack.compose import Stack, make_stack, running_indexes  # noqa: E402
from stack.gate import Gate  # noqa: E402
from stack.testca import make_test_ca  # noqa: E402
from toolpath import child_path, missing_project_tools, node_binary  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _project_tools() -> None:
    """Every end-to-end test needs the project's own pip, uv, poetry and pypi-server, and
    Node.js for the IdP: a missing one fails the suite here, it never skips a test or lets
    a child find the machine's own copy further down PATH."""
    missing = missing_project_tools()
    if missing:
        pytest.fail(
            f"not installed in the project's environment: {', '.join(missing)}; run `task deps`",
            pytrace=False,
        )
    node_binary()


@pytest.fixture(scope="session")
def _indexes(tmp_path_factory, announce):
    """The two pypiservers (shared by every stack of the session)."""
    announce("starting two pypiservers on 127.0.0.1 (the private index and the public one)")
    with running_indexes(tmp_path_factory.mktemp("indexes")) as indexes:
        yield indexes


@pytest.fixture(scope="session")
def stack(_indexes, announce) -> Stack:
    """The whole stack, once per session. Tests must not leave ``stack.gate`` knobs changed
    (use ``gate.reset()`` in a ``finally``)."""
    announce("starting oidc-provider (node) and the bearer gate in front of the private index")
    s = make_stack(idp_ttl=300, **_stack_args(_indexes))
    announce(f"stack up: issuer {s.issuer}, private {s.private_url}, public {s.public_url}")
    try:
        yield s
    finally:
        s.gate.stop()
        s.idp.stop()


def _stack_args(indexes: dict) -> dict:
    return {
        "private_upstream": indexes["private_upstream"],
        "public_url": indexes["public_url"],
        "private_dir": indexes["private_dir"],
        "public_dir": indexes["public_dir"],
    }


@pytest.fixture
def short_stack_factory(_indexes):
    """``make(access_ttl=3, refresh_ttl=86400, device_ttl=600) -> Stack``: a new IdP + Gate
    in front of the session's private pypiserver; all stopped at the end of the test."""
    made: list[Stack] = []

    def make(access_ttl: int = 3, refresh_ttl: int = 86400, device_ttl: int = 600) -> Stack:
        s = make_stack(
            idp_ttl=access_ttl,
            refresh_ttl=refresh_ttl,
            device_ttl=device_ttl,
            **_stack_args(_indexes),
        )
        made.append(s)
        return s

    try:
        yield make
    finally:
        for s in made:
            s.gate.stop()
        servers.stop_all(s.idp for s in made)


@pytest.fixture
def short_stack(short_stack_factory) -> Stack:
    """A stack whose access tokens live 3 seconds (own IdP and Gate, same private index)."""
    return short_stack_factory(access_ttl=3)


_DROP_EXACT = {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "NO_PROXY", "no_proxy"}
_DROP_PREFIXES = (
    "PIP_",
    "UV_",
    "POETRY_",
    "CRANE_",
    "PIPX_",
    "PDM_",
    "TOX_",
    "NOX_",
    "VIRTUALENV_",
)


@pytest.fixture
def tool_env(tmp_path) -> dict[str, str]:
    """A clean environment for child tools, everything under ``tmp_path/env``.

    Drops every ``PIP_*``, ``UV_*``, ``POETRY_*``, ``CRANE_*``, ``PIPX_*``, ``PDM_*``,
    ``TOX_*``, ``NOX_*``, ``VIRTUALENV_*``, ``*_PROXY``/``*_proxy``,
    ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, ``CURL_CA_BUNDLE`` (requests' fallback for
    REQUESTS_CA_BUNDLE). Sets ``PIP_CONFIG_FILE=/dev/null`` (pip reads no config file),
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``PIP_NO_INPUT=1``, ``PIP_CACHE_DIR``,
    ``UV_CACHE_DIR``, ``POETRY_CONFIG_DIR``, ``POETRY_CACHE_DIR``, ``POETRY_DATA_DIR``,
    ``XDG_CONFIG_HOME``/``XDG_CACHE_HOME``/``XDG_DATA_HOME`` (so no user uv.toml or poetry
    config is read), ``CRANE_HOME``, ``CI=true``, ``NO_PROXY=127.0.0.1,localhost``,
    ``UV_PYTHON_DOWNLOADS=never``, ``CRANE_PUBLIC_CHECK=0`` (no run asks a public index
    about its private projects unless a test says so), and ``PATH`` with the project's
    bin directory first, so the pip, uv and poetry crane starts are the project's
    whatever PATH pytest had.
    uv's own config discovery is left on (tests may write a uv.toml / pyproject.toml).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(_DROP_PREFIXES)
        and not k.upper().endswith("_PROXY")
        and k not in _DROP_EXACT
    }
    base = tmp_path / "env"
    dirs = {
        "PIP_CACHE_DIR": base / "pip-cache",
        "UV_CACHE_DIR": base / "uv-cache",
        "POETRY_CONFIG_DIR": base / "poetry-config",
        "POETRY_CACHE_DIR": base / "poetry-cache",
        "POETRY_DATA_DIR": base / "poetry-data",
        "XDG_CONFIG_HOME": base / "xdg-config",
        "XDG_CACHE_HOME": base / "xdg-cache",
        "XDG_DATA_HOME": base / "xdg-data",
        "CRANE_HOME": base / "crane-home",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        CI="true",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONDONTWRITEBYTECODE="1",
        UV_PYTHON_DOWNLOADS="never",  # no network here: never fetch an interpreter
        # A run asks the public index about its private projects; where a test names no
        # public index that would be pip's default index on the network. The provenance
        # tests turn it on against the local public index.
        CRANE_PUBLIC_CHECK="0",
        PATH=child_path(),
    )
    return env


@pytest.fixture
def crane(tool_env, tmp_path):
    """The real crane command with the test's clean environment (its own CRANE_HOME)."""
    from harness import Crane

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Crane(tool_env, cwd=work)


@dataclass
class TLSFront:
    """The private index behind HTTPS on ``localhost``, signed by a test CA."""

    url: str  # https://localhost:T/simple/
    gate: Gate
    ca_path: Path


@pytest.fixture(scope="session")
def tls_front(stack, tmp_path_factory):
    """A second gate in front of the same private pypiserver, speaking HTTPS with a
    certificate from a test CA that the tests' environment trusts (a corporate CA)."""
    ca_path, context = make_test_ca(tmp_path_factory.mktemp("test-ca"))
    gate = Gate(stack.private_upstream_url, stack.issuer, stack.audience)
    url = gate.start(tls=context, host="localhost")
    try:
        yield TLSFront(url=url, gate=gate, ca_path=ca_path)
    finally:
        gate.stop()


@pytest.fixture
def project_env(tool_env, tls_front) -> dict[str, str]:
    """tool_env, trusting the test CA the way a machine trusts a corporate CA."""
    return {
        **tool_env,
        "SSL_CERT_FILE": str(tls_front.ca_path),
        "REQUESTS_CA_BUNDLE": str(tls_front.ca_path),
        "POETRY_VIRTUALENVS_IN_PROJECT": "true",
        "POETRY_INSTALLER_MAX_WORKERS": "2",
        "UV_CONCURRENT_DOWNLOADS": "2",
    }
