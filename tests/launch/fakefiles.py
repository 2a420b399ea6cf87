"""A stand-in file system for the pure planners: files under tmp_path are real, other
absolute paths (/etc/pip.conf, /etc/uv/uv.toml) are made up in memory."""

from __future__ import annotations

from pathlib import Path


class Files:
    """A read_text for the planner: tmp_path for real, other absolute paths made up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fake: dict[Path, str] = {}

    def write(self, path: str | Path, text: str) -> Path:
        target = Path(path)
        if target.is_absolute() and not target.is_relative_to(self.root):
            self.fake[target] = text
            return target
        if not target.is_absolute():
            target = self.root / "work" / target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def __call__(self, path: Path) -> str:
        if path in self.fake:
            return self.fake[path]
        if path.is_relative_to(self.root):
            return path.read_text()
        raise FileNotFoundError(path)
