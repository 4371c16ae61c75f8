"""Benchmarks: measured side by side in one run, results as ratios (the machine is shared)."""
