"""Run the real `crane` command in tests, and play its user's browser.

`Crane(env)` runs `python -m crane_launch` as a child process with the test's clean
environment (its own CRANE_HOME). `login()` runs `crane login` and completes the device
flow headlessly from the URL crane prints, exactly as a person would from the terminal.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COMPLETE_LINE = re.compile(r"^crane: or open (\S+)$")
PROMPT_LINE = re.compile(r"^crane: to log in to (\S+), open (\S+) and enter the code (\S+)$")
CRANE = [sys.executable, "-m", "crane_launch"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class Crane:
    def __init__(self, env: dict[str, str], cwd: Path | None = None) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [*CRANE, *args],
            env=env or self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def register(self, stack, url: str | None = None, *extra: str) -> Result:
        result = self.run(
            "index",
            "register",
            url or stack.private_url,
            stack.client_id,
            stack.token_url,
            stack.device_url,
            "--scope",
            stack.scopes,
            "--revocation-url",
            stack.revocation_url,
            *extra,
        )
        assert result.code == 0, result.stderr
        return result

    def login(self, stack, url: str | None = None, *args: str) -> Result:
        """`crane login`, with the device flow completed from what crane prints."""
        return self.with_user(stack, ["login", url or stack.private_url, "--no-browser", *args])

    def with_user(
        self,
        stack,
        args: Sequence[str],
        *,
        deny: bool = False,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run crane; whenever it prints a device-flow URL, approve (or deny) it."""
        proc = subprocess.Popen(
            [*CRANE, *args],
            env=env or self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        err_lines: list[str] = []
        failures: list[BaseException] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                err_lines.append(line)
                match = COMPLETE_LINE.match(line.rstrip("\n"))
                if match:
                    try:
                        if deny:
                            stack.deny(match.group(1))
                        else:
                            stack.complete(match.group(1))
                    except BaseException as exc:
                        failures.append(exc)

        out_chunks: list[str] = []

        def read_stdout() -> None:
            assert proc.stdout is not None
            out_chunks.append(proc.stdout.read())

        readers = [
            threading.Thread(target=read_stderr, daemon=True),
            threading.Thread(target=read_stdout, daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        for reader in readers:
            reader.join(10)
        if failures:
            raise failures[0]
        return Result(proc.returncode, "".join(out_chunks), "".join(err_lines))


def credentialed(records: list, root_path: str) -> list:
    """The gate's records of requests that carried credentials. The others may only be
    crane's check that the index page refuses anonymous requests (a page anybody gets
    proves nothing of crane's credentials), answered 401."""
    anonymous = [r for r in records if not r.had_auth_header]
    assert all(r.status == 401 and r.path == root_path for r in anonymous), anonymous
    return [r for r in records if r.had_auth_header]


PACKAGES = ("crane-private-app", "public-only-dep", "decoy-pkg")
"""The test packages an install checks: a private one, its public dependency, the decoy."""


def origins(target: Path) -> dict[str, str]:
    """{project: 'private'|'public'} for the test packages installed into `target`."""
    found = {}
    for name in PACKAGES:
        init = target / name.replace("-", "_") / "__init__.py"
        if init.exists():
            scope: dict[str, str] = {}
            exec(init.read_text(), scope)  # noqa: S102 - our own generated test module
            found[name] = scope["ORIGIN"]
    return found


def uv_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for uv against pypiserver, whose listen backlog is 5: uv's parallelism below it."""
    return {**env, "UV_CONCURRENT_DOWNLOADS": "2", "UV_CONCURRENT_BUILDS": "1"}


def pyproject(
    dependencies: Sequence[str],
    *,
    name: str = "demo-app",
    uv_indexes: Sequence[tuple[str, str, bool]] = (),
    poetry_sources: Sequence[tuple[str, str, str]] = (),
) -> str:
    """A pyproject.toml for a project that is not a package: `uv_indexes` are
    `[[tool.uv.index]]` (name, url, default), `poetry_sources` `[[tool.poetry.source]]`
    (name, url, priority)."""
    deps = ", ".join(f'"{dependency}"' for dependency in dependencies)
    text = (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{deps}]\n"
    )
    if uv_indexes:
        text += "\n[tool.uv]\npackage = false\n"
        for index, url, default in uv_indexes:
            text += f'\n[[tool.uv.index]]\nname = "{index}"\nurl = "{url}"\n'
            text += "default = true\n" if default else ""
    if poetry_sources:
        text += "\n[tool.poetry]\npackage-mode = false\n"
        for source, url, priority in poetry_sources:
            text += f'\n[[tool.poetry.source]]\nname = "{source}"\nurl = "{url}"\n'
            text += f'priority = "{priority}"\n'
    return text
