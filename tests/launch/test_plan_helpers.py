"""`plan.local_location`: a find-links value as the local path pip and uv read."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.launch.plan import local_location


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("wheels", "/proj/wheels"),
        ("/srv/w", "/srv/w"),
        ("file:///srv/w", "/srv/w"),
        ("file://localhost/srv/w", "/srv/w"),
        ("FILE://LOCALHOST/srv/w", "/srv/w"),
        ("file:/srv/w", "/srv/w"),
        ("file:///srv/f%6C", "/srv/fl"),
        ("file:////srv/w", "/srv/w"),
        ("file://otherhost/srv/w", None),
        ("https://host/links/", None),
        ("", None),
    ],
)
def test_local_location(value: str, expected: str | None) -> None:
    found = local_location(value, Path("/proj"))
    assert found == (None if expected is None else Path(expected))
