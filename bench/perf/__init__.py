"""Benchmarks (scripts, not tests): speed and memory measured as interleaved, repeated ratios with their spread."""
