"""crane: run pip, uv and poetry against private Python package indexes behind OAuth 2.0."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
