"""Benchmarks (see docs/PERFORMANCE.md). Run from the repository root, e.g. ``python -m bench.train_step --quick``."""
