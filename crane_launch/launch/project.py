"""Plans for `crane poetry ...` and `crane uv <project command> ...`: which registered
indexes a project uses, and whether its configuration lets another index shadow them.

Poetry and uv record index URLs in their lock files, so crane rewrites nothing here: the
child runs with its argv unchanged and reaches the private hosts through the transparent
door (design section 7). Planning only has to find the private indexes (for the door's
certificate name constraints and `NO_PROXY`) and warn when the tool's own priority rules
could take a private project from another index. Everything is a function of argv, an
environment mapping, a working directory and a file reader; nothing runs or connects.

This module is the entry point the launcher imports; the planners live in their own rooms:

- `launch.poetry`: `plan_poetry`, poetry 2.x sources and priorities;
- `launch.uv_project`: `plan_uv_project`, `is_uv_project_command`, uv project discovery
  and workspaces;
- `launch.uv_settings`: uv's settings files, index order and index strategy (uv 0.13.x);
- `launch.project_scan`: what both share (the tool's options, TOML files, the registered
  indexes found).

Not covered: inline script metadata (`uv run script.py` with a `# /// script` block),
abbreviated long options (`poetry --dir`), and uv's system-level configuration file.
"""

from __future__ import annotations

from crane_launch.launch.poetry import plan_poetry
from crane_launch.launch.uv_project import (
    UV_PROJECT_COMMANDS,
    is_uv_project_command,
    plan_uv_project,
)

__all__ = ["UV_PROJECT_COMMANDS", "is_uv_project_command", "plan_poetry", "plan_uv_project"]
