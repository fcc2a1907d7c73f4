"""The regime scan's table (bench/report/regimes.py) on synthetic records with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.report import regimes

LABELS = {"dpo": "DPO", "ropo": "ROPO (loss only)", "oracle": "DPO + oracle cleaner (remove)",
          "random": "DPO + random cleaner (remove)"}


def _record(arm, rate, seed, lr, prompts, epochs, golds, i):
    curve = [{"step": 10 * (k + 1), "epoch": k + 1.0, "gold_reward": g, "gold_reward_ref": -0.1,
              "diag_memorized": 0.3 + 0.05 * k, "diag_fit": 0.7, **{f"diag_z_{grp}_q{q}": 0.1 * k
                                                                     for grp in ("flipped", "clean") for q in ("05", "50", "95")}}
             for k, g in enumerate(golds)]
    return {"cell_id": f"c{i}", "status": "ok", "loss_label": LABELS[arm], "rate": rate, "seed": seed,
            "n_train_pairs": prompts - 100, "timings": {"total": 100.0 + prompts / 100},
            "config": {"data": {"n_train_prompts": prompts}, "train": {"epochs": epochs, "learning_rate": lr}},
            "metrics": curve[-1], "curve": curve}


def _records():
    recs, i = [], 0
    noise = {0: 0.0, 1: 0.01, 2: -0.01, 3: 0.02, 4: -0.02}
    for prompts, epochs, lift in ((1500, 8.0, 0.0), (6000, 2.0, 0.2)):
        for seed in range(5):
            e = noise[seed]
            arms = {("dpo", 0.0): [0.1 + lift + e, 0.05 + lift + e], ("dpo", 0.4): [0.0 + e, -0.02 + e],
                    ("oracle", 0.4): [0.12 + lift + e + 0.01 * seed, 0.1 + e],
                    ("random", 0.4): [-0.01 + e, -0.03 + e], ("ropo", 0.0): [0.1 + e, 0.1 + e]}
            for (arm, rate), golds in arms.items():
                for lr, shift in ((5e-5, 0.0), (2e-4, -0.05)):  # 5e-5 is better for every arm
                    recs.append(_record(arm, rate, seed, lr, prompts, epochs, [g + shift for g in golds], i))
                    i += 1
    return recs


def test_each_arm_is_read_at_its_best_learning_rate_and_checkpoint():
    df = regimes.points(_records())
    best = regimes.best_points(df)
    dpo_clean = best[(best["prompts"] == 1500) & (best["arm"] == "dpo") & (best["rate"] == 0.0)]
    assert set(dpo_clean["lr"]) == {5e-5} and set(dpo_clean["step"]) == {10} and len(dpo_clean) == 5


def test_the_criteria_of_a_regime():
    t = regimes.table(_records()).set_index("prompts")
    small, large = t.loc[1500], t.loc[6000]
    assert small["a_gain_over_ref"] == pytest.approx(0.2) and not small["a_ok"]  # 0.1 - (-0.1)
    assert large["a_gain_over_ref"] == pytest.approx(0.4) and large["a_ok"]
    assert large["b_noise_cost"] == pytest.approx(-0.3) and large["b_ok"]  # constant: p = 0
    assert large["c_headroom"] == pytest.approx(0.32 + 0.02) and large["c_ok"]  # 0.12 + 0.2 + 0.01 seed - 0.0
    assert large["c_mde"] > 0 and large["c_p"] < 0.01
    assert large["d_random_minus_dpo"] == pytest.approx(-0.01) and large["d_ok"]
    assert small["e_median_cell_s"] == pytest.approx(115.0) and small["e_ok"]
    assert small["memorized_end_40"] == pytest.approx(0.35) and small["cells"] == 50
    assert np.isfinite(small["seed_sd_clean_dpo"]) and "| 1,400 pairs x 8 ep |" in regimes.markdown(t.reset_index())


def test_projection_to_the_study_seeds():
    """(b) and (c) projected to n seeds: the same mean and spread, a smaller MDE and p as n grows."""
    t3 = {"mean_diff": 0.07, "sd_diff": 0.04, "n_pairs": 3}
    p3, mde3 = regimes.projected(t3, 3)
    p10, mde10 = regimes.projected(t3, 10)
    assert p10 < p3 and mde10 < mde3
    assert p3 == pytest.approx(2 * stats.t.sf(0.07 / (0.04 / np.sqrt(3)), 2))
    assert regimes.projected({"mean_diff": 0.1, "sd_diff": 0.0}, 10)[0] == 0.0
    t = regimes.table(_records(), study_seeds=10).set_index("prompts")
    assert (t["study_seeds"] == 10).all() and t.loc[6000, "c_ok_projected"]
    assert "Projected to the study's seeds" in regimes.markdown(t.reset_index())


def test_ropo_minus_dpo_per_regime_and_rate():
    v = regimes.versus_dpo(regimes.best_points(regimes.points(_records())))
    row = v[(v["prompts"] == 1500) & (v["rate"] == 0.0)].iloc[0]
    assert row["diff"] == pytest.approx(0.0) and row["n"] == 5  # ROPO 0.1 + e against DPO's best, 0.1 + e
    large = v[(v["prompts"] == 6000) & (v["rate"] == 0.0)].iloc[0]
    assert large["diff"] == pytest.approx(-0.2)
    assert "ROPO minus DPO" in regimes.versus_markdown(v)


def test_the_cli_reads_an_archive_beside_the_results(tmp_path):
    """A fresh clone has no results/: the table comes from the archived scan alone."""
    from bench.core.files import atomic_write_json
    from bench.report import archive

    live = tmp_path / "live"
    for rec in _records():
        atomic_write_json(live / "cells" / rec["cell_id"] / "record.json", {**rec, "sweep": "regimes"})
    archive.pack(live, "regimes", tmp_path / "archives" / "regimes")
    out = tmp_path / "out"
    assert regimes.main(["--results", str(tmp_path / "empty"), "--archives", str(tmp_path / "archives"),
                         "--out", str(out)]) == 0
    assert "| 1,400 pairs x 8 ep |" in (out / "regimes.md").read_text()
    assert regimes.main(["--results", str(tmp_path / "empty"), "--archives", "none", "--out", str(out)]) == 1


def test_a_point_fewer_seeds_reached_is_not_picked():
    recs = _records()
    lucky = [r for r in recs if r["loss_label"] == "ROPO (loss only)" and r["seed"] == 0
             and r["config"]["train"]["learning_rate"] == 5e-5 and r["config"]["data"]["n_train_prompts"] == 1500]
    extra = []
    for i, r in enumerate(lucky):  # one seed at a third learning rate, far above every other point
        curve = [{**p, "gold_reward": 5.0} for p in r["curve"]]
        extra.append({**r, "cell_id": f"lucky{i}", "curve": curve, "metrics": curve[-1],
                      "config": {**r["config"], "train": {**r["config"]["train"], "learning_rate": 1e-3}}})
    best = regimes.best_points(regimes.points(recs + extra))
    ropo = best[(best["prompts"] == 1500) & (best["arm"] == "ropo")]
    assert 1e-3 not in set(ropo["lr"]) and len(ropo) == 5
