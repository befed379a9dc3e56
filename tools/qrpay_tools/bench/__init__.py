"""Benchmarks: commands that start real processes and print figures beside a baseline."""
