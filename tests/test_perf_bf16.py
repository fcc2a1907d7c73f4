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


def test_the_cells_of_a_multirun_are_read_through_its_jobs_whatever_sweep_they_ran_under(tmp_path):
    import json

    from bench.core.records import write_record
    from bench.perf.bf16 import cell_ids, rows_of

    run = tmp_path / "multiruns" / "t"
    for job, (cid, sweep, bf16) in enumerate([("a", "controls", None), ("b", "bf16_cpu", "bfloat16")]):
        (run / str(job)).mkdir(parents=True)
        (run / str(job) / "cell_status.json").write_text(json.dumps({"cell_id": cid, "status": "ok"}))
        write_record(tmp_path / "results", {
            "cell_id": cid, "sweep": sweep, "status": "ok", "provenance": {"dtype": bf16 or "float32"},
            "config": {"loss": {"name": "dpo"}, "noise": {"rate": 0.4}, "seed": 3},
            "metrics": {"gold_reward": 0.1}, "timings": {"train": 2.0}})
    rows = rows_of(tmp_path / "results", cell_ids(run), "gold_reward")
    assert [(r["bf16"], r["seed"]) for r in rows] == [(False, 3), (True, 3)]
