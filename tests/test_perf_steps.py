"""The per-step benchmark's statistic (paired ratios in blocks, bootstrap interval) and its peak-memory reading."""
from __future__ import annotations

import os

import pytest

from bench.perf import steps


def test_summary_resolves_a_clear_gap_and_not_noise():
    slower = steps.summary(steps.paired_ratios([1.2, 1.21, 1.19, 1.2, 1.22, 1.18], [1.0] * 6), blocks=3)
    assert slower["resolved"] and slower["ci95"][0] > 1.1 and len(slower["block_medians"]) == 3
    noise = steps.summary([0.9, 1.1, 1.0, 0.95, 1.05, 1.0], blocks=2)
    assert not noise["resolved"] and noise["ci95"][0] <= 1.0 <= noise["ci95"][1]
    assert noise["block_spread"] == [min(noise["block_medians"]), max(noise["block_medians"])]


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux peak-RSS reset")
def test_peak_memory_reset_starts_a_new_peak():
    first = steps._peak_gib(reset=True)
    blob = bytearray(200 * 2**20)  # 200 MiB touched
    blob[::4096] = b"x" * len(blob[::4096])
    with_blob = steps._peak_gib()
    del blob
    assert first > 0 and with_blob >= 0.15
    steps._peak_gib(reset=True)
    assert steps._peak_gib() < with_blob  # the 200 MiB no longer counts once reset


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux peak-RSS reset")
def test_a_phase_counts_what_it_allocates_not_an_earlier_peak():
    from bench.perf.memory import Phase

    big = bytearray(300 * 2**20)  # an earlier, larger peak (loading, say)
    big[::4096] = b"x" * len(big[::4096])
    del big
    with Phase() as m:
        blob = bytearray(100 * 2**20)
        blob[::4096] = b"x" * len(blob[::4096])
        del blob
    assert m.exact and 90 * 2**20 <= m.growth < 250 * 2**20  # the 100 MiB, not the 300 MiB before the phase
    assert m.peak >= m.start + m.growth - 1
