"""`python -m integration.bench [--quick]`: the same as `python integration/bench/run.py`."""

import sys

from integration.bench.run import main

sys.exit(main())
