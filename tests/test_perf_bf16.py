"""bench.perf.bf16 pairs bf16 and fp32 cells by seed and sets the difference against the study's yardstick."""
import numpy as np
import pytest

from bench.perf.bf16 import table


def _rows(shift: float, noise_sd: float = 0.0):
    rng = np.random.default_rng(0)
    rows = []
    for loss, gap in (("dpo", 0.0), ("ropo", 0.05)):
        for seed in range(5):
            base = 0.1 * seed + gap + rng.normal(0, 0.01)
            rows.append({"loss": loss, "rate": 0.4, "seed": seed, "bf16": False, "value": base, "train_s": 10.0})
            rows.append({"loss": loss, "rate": 0.4, "seed": seed, "bf16": True, "train_s": 15.0,
                         "value": base + shift + rng.normal(0, noise_sd)})
    return rows


def test_a_constant_shift_is_found_exactly_with_its_time_ratio():
    out = {r["loss"]: r for r in table(_rows(shift=0.02))}
    assert out["dpo"]["n"] == 5 and out["dpo"]["diff"] == pytest.approx(0.02)
    assert out["dpo"]["time_ratio"] == pytest.approx(1.5)
    assert np.isnan(out["dpo"]["mde_vs_baseline"])  # the baseline has no yardstick against itself
    assert 0 < out["ropo"]["mde_vs_baseline"] < 0.1  # ropo - dpo spread (about 0.014 sd) over 5 seeds


def test_an_unpaired_seed_is_left_out_and_noise_gives_an_interval_around_zero():
    rows = [r for r in _rows(shift=0.0, noise_sd=0.01) if not (r["seed"] == 4 and r["bf16"])]
    out = {r["loss"]: r for r in table(rows)}
    assert out["dpo"]["n"] == 4
    low, high = out["dpo"]["ci"]
    assert low < 0 < high and out["dpo"]["p"] > 0.05
