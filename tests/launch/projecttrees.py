"""What the project planner tests share: registered indexes, project trees written under
tmp_path, and reading a plan's private indexes back."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from crane_launch.config import PrivateIndex, Registry
from crane_launch.launch.plan import Plan, TransparentDoorMode, Unchanged

PRIVATE = "https://private.example/simple/"
PRIVATE_2 = "https://private2.example:8443/pypi/simple/"
PUBLIC = "https://public.example/simple/"
MIRROR = "https://mirror.example/simple/"
HOSTS = {PRIVATE: "private.example", PRIVATE_2: "private2.example"}


def two_private_indexes(tmp_path: Path) -> Registry:
    """A registry holding PRIVATE and PRIVATE_2."""
    registry = Registry(tmp_path / "crane" / "indexes.json")
    for url in (PRIVATE, PRIVATE_2):
        registry.put(
            PrivateIndex(
                url=url,
                client_id="crane",
                token_url="https://idp.example/token",
                device_url="https://idp.example/device",
            )
        )
    return registry


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write each file (its text dedented) under `root`, with its parent directories."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def private_urls(plan: Plan) -> list[str]:
    """The plan's private index URLs in plan order; [] when it runs the tool unchanged.

    Also checks that the two modes are used as `Plan` promises: the transparent door only
    with at least one private index.
    """
    if isinstance(plan.mode, TransparentDoorMode):
        assert plan.mode.privates
        return [index.url for index in plan.mode.privates]
    assert isinstance(plan.mode, Unchanged)
    return []


def private_hosts(plan: Plan) -> list[str]:
    """The hosts the transparent door authenticates for; [] when the tool runs unchanged."""
    return plan.mode.private_hosts if isinstance(plan.mode, TransparentDoorMode) else []
