from __future__ import annotations

from pathlib import Path

import pytest

from tests.launch.fakefiles import Files


@pytest.fixture
def files(tmp_path: Path) -> Files:
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    return Files(tmp_path)
