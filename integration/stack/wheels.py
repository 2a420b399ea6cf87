"""Test wheels, written directly as zip files (no build backend, no network).

Each wheel holds one module named after the project (dashes -> underscores) with
``ORIGIN`` ("private" or "public"), ``NAME`` and ``VERSION``, plus a ``.dist-info`` with
METADATA (Metadata-Version 2.1, Requires-Dist), WHEEL and RECORD (sha256 + size). Zip entry
times are fixed, so the same inputs always give byte-identical wheels (stable hashes).

Sets:
- private: ``crane-private-app 1.0`` (requires ``public-only-dep``), ``decoy-pkg 1.0``
  (ORIGIN "private");
- public: ``public-only-dep 1.0``, ``decoy-pkg 99.0`` (ORIGIN "public": the
  dependency-confusion decoy, a much higher version than the private one),
  ``public-other 2.0``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PRIVATE_SET",
    "PUBLIC_SET",
    "build_private",
    "build_public",
    "build_wheel",
    "module_name",
    "wheel_filename",
]

# (name, version, requires)
PRIVATE_SET: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("crane-private-app", "1.0", ("public-only-dep",)),
    ("decoy-pkg", "1.0", ()),
)
PUBLIC_SET: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("public-only-dep", "1.0", ()),
    ("decoy-pkg", "99.0", ()),
    ("public-other", "2.0", ()),
)

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_name(name: str) -> str:
    """The importable module a test wheel installs: ``decoy-pkg`` -> ``decoy_pkg``."""
    return _normalize(name).replace("-", "_")


def wheel_filename(name: str, version: str) -> str:
    return f"{module_name(name)}-{version}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _pad_bytes(size: int) -> bytes:
    # Deterministic and incompressible enough for streaming tests; stored, not deflated.
    out = bytearray()
    block = hashlib.sha256(b"crane-test-pad").digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


def build_wheel(
    directory: str | Path,
    name: str,
    version: str,
    requires: Iterable[str] = (),
    origin: str = "private",
    *,
    summary: str | None = None,
    pad_bytes: int = 0,
    scripts: Iterable[str] = (),
) -> Path:
    """Write ``<module>-<version>-py3-none-any.whl`` into ``directory`` and return its path.

    ``pad_bytes`` adds a stored (uncompressed) data file of that size, for tests that need
    a big download. ``scripts`` are console scripts (a command-line package): each runs the
    module's ``main``, which prints ``name version origin`` of the project and of each
    project it requires, joined by ``; ``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mod = module_name(name)
    dist_info = f"{mod}-{version}.dist-info"

    files: list[tuple[str, bytes, int]] = []
    module_src = (
        f'"""Test package {name} {version} ({origin} index)."""\n'
        f"ORIGIN = {origin!r}\n"
        f"NAME = {name!r}\n"
        f"VERSION = {version!r}\n"
    ).encode()
    scripts = tuple(scripts)
    if scripts:
        depends = [
            module_name(re.split(r"[^A-Za-z0-9._-]", req, maxsplit=1)[0]) for req in requires
        ]
        module_src += (
            f"DEPENDS = {depends!r}\n\n\n"
            "def main():\n"
            "    import importlib\n\n"
            "    found = [importlib.import_module(name) for name in [__name__, *DEPENDS]]\n"
            '    print("; ".join(f"{m.NAME} {m.VERSION} {m.ORIGIN}" for m in found))\n'
        ).encode()
    files.append((f"{mod}/__init__.py", module_src, zipfile.ZIP_DEFLATED))
    if scripts:
        entry_points = "[console_scripts]\n" + "".join(f"{s} = {mod}:main\n" for s in scripts)
        files.append((f"{dist_info}/entry_points.txt", entry_points.encode(), zipfile.ZIP_DEFLATED))
    if pad_bytes:
        files.append((f"{mod}/_pad.bin", _pad_bytes(pad_bytes), zipfile.ZIP_STORED))

    metadata_lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary or f'crane integration test package ({origin})'}",
    ]
    metadata_lines += [f"Requires-Dist: {req}" for req in requires]
    metadata = ("\n".join(metadata_lines) + "\n\n").encode()
    wheel_meta = (
        b"Wheel-Version: 1.0\n"
        b"Generator: crane-integration-wheels\n"
        b"Root-Is-Purelib: true\n"
        b"Tag: py3-none-any\n\n"
    )
    files.append((f"{dist_info}/METADATA", metadata, zipfile.ZIP_DEFLATED))
    files.append((f"{dist_info}/WHEEL", wheel_meta, zipfile.ZIP_DEFLATED))

    record_path = f"{dist_info}/RECORD"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data, _ in files)
    record += f"{record_path},,\n"
    files.append((record_path, record.encode(), zipfile.ZIP_DEFLATED))

    target = directory / wheel_filename(name, version)
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for path, data, compression in files:
            info = zipfile.ZipInfo(path, date_time=_FIXED_TIME)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(target)
    return target


def build_private(directory: str | Path) -> list[Path]:
    """The private index's wheels (ORIGIN "private")."""
    return [build_wheel(directory, n, v, r, origin="private") for n, v, r in PRIVATE_SET]


def build_public(directory: str | Path) -> list[Path]:
    """The public index's wheels (ORIGIN "public"), including the ``decoy-pkg 99.0`` decoy."""
    return [build_wheel(directory, n, v, r, origin="public") for n, v, r in PUBLIC_SET]


if __name__ == "__main__":  # python wheels.py PRIVATE_DIR PUBLIC_DIR
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python wheels.py PRIVATE_DIR PUBLIC_DIR")
    for p in build_private(sys.argv[1]) + build_public(sys.argv[2]):
        print(p)
