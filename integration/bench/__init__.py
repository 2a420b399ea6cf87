"""crane's benchmarks (not timed tests): see README.md and run.py."""
