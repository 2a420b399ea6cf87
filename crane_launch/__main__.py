"""`python -m crane_launch`: the same as the `crane` command."""

from __future__ import annotations

from crane_launch.entry import main

if __name__ == "__main__":
    main()
