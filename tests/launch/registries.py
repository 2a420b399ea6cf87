"""Registered indexes for the index-door planner tests: a device-flow index at a URL, and
a registry holding some, written nowhere until a test saves it."""

from __future__ import annotations

from pathlib import Path

from crane_launch.config import PrivateIndex, Registry


def device_index(
    url: str, *, public_index: str | None = None, described: bool = False
) -> PrivateIndex:
    """A device-flow index at `url`; `described`: from `CRANE_INDEX_URL`."""
    return PrivateIndex(
        url,
        "client",
        "https://idp.example/token",
        "https://idp.example/device",
        public_index=public_index,
        from_environment=described,
    )


def registry_of(tmp_path: Path, *indexes: PrivateIndex | str) -> Registry:
    """A registry of `indexes` (a URL stands for `device_index(URL)`)."""
    found = [device_index(i) if isinstance(i, str) else i for i in indexes]
    return Registry(tmp_path / "r.json", {i.url: i for i in found})
