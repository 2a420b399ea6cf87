"""Where the tests, the demo and the benchmarks take their tools from.

Every tool a test drives (pip, uv, poetry, pypi-server) comes from the project's own
environment: the bin directory of the interpreter running the suite, which `task deps`
fills. Children get that directory first on their PATH (`child_path`), whatever PATH the
suite was started with, and `missing_project_tools` names any tool that is absent there,
so a missing install step fails the suite instead of falling back to a copy the machine
happens to have. Node.js is the one tool the machine itself provides (README: what a
machine needs beforehand); `node_binary` checks its version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "NODE_MIN",
    "PROJECT_BIN",
    "PROJECT_TOOLS",
    "ToolError",
    "child_path",
    "missing_project_tools",
    "node_binary",
    "project_tool",
]

# sys.prefix, not the resolved executable: a venv's python is a symlink to the base
# interpreter, whose bin directory holds the machine's own tools.
PROJECT_BIN = Path(sys.prefix) / "bin"
PROJECT_TOOLS = ("pip", "uv", "uvx", "poetry", "pipx", "pdm", "tox", "nox", "pypi-server", "crane")
NODE_MIN = 18


class ToolError(RuntimeError):
    """A tool the suite needs is missing or too old; the message says how to install it."""


def child_path(path: str | None = None) -> str:
    """PATH for a child: the project's bin directory first, then `path` (default: ours)
    without any other copy of the project's bin directory."""
    given = path if path is not None else os.environ.get("PATH", "")
    rest = [d for d in given.split(os.pathsep) if d and Path(d) != PROJECT_BIN]
    return os.pathsep.join([str(PROJECT_BIN), *rest])


def project_tool(name: str) -> str:
    """The absolute path of `name` in the project's environment; ToolError if absent."""
    found = shutil.which(name, path=str(PROJECT_BIN))
    if found is None:
        raise ToolError(
            f"{name} is not installed in the project's environment ({PROJECT_BIN}); "
            "run `task deps` (it installs the test extras of pyproject.toml)"
        )
    return found


def missing_project_tools() -> list[str]:
    """The project tools absent from the project's bin directory."""
    return [name for name in PROJECT_TOOLS if shutil.which(name, path=str(PROJECT_BIN)) is None]


def node_binary() -> str:
    """`node` from PATH (a machine prerequisite), checked to be Node.js >= NODE_MIN."""
    node = shutil.which("node")
    if node is None:
        raise ToolError(f"node is not on PATH: install Node.js >= {NODE_MIN} (with npm)")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    version = out.stdout.strip().lstrip("v")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise ToolError(f"{node} --version printed {out.stdout.strip()!r}") from None
    if major < NODE_MIN:
        raise ToolError(f"{node} is Node.js {version}; the identity provider needs >= {NODE_MIN}")
    return node
