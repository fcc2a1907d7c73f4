"""The report's margin diagnostics (bench/report/margins.py) on synthetic records and margins.json files.

Losses dpo and ropo x conditions none @ 0, random_flip @ 0.2, 0.4 x seeds 0-2; each cell's curve has three points
(steps 10, 20, 30, the last the end; seed 2 trained 33 steps, so its checkpoints sit at 11, 22, 33):
    diag_memorized = M[loss] * rate * k + D[seed]   (k = 1, 2, 3; absent at rate 0: no flipped pairs)
    diag_fit       = 0.5 + 0.1 * k + D[seed],        D = (-0.05, 0, 0.05)
so the mean over seeds drops D and the min-max band is +-0.05. margins.json: 8 pairs, the first 3 flipped (none at
rate 0); its first point all z = 0, its last z = -1 - seed on flipped pairs and 2 + seed on clean ones. An ipo cell
carries neither a curve nor a margins file and is in no figure.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_report import record

from bench.core.files import atomic_write_json
from bench.core.records import cell_dir, write_record
from bench.report import archive, build_report
from bench.report.aggregate import load_results
from bench.report.margins import MARGINS_FILE, final_margins, progress_points, progress_table
from bench.report.plots import plot_margin_progress

M, D, SEEDS = {"dpo": 0.75, "ropo": 0.5, "ipo": 0.0}, (-0.05, 0.0, 0.05), (0, 1, 2)
CONDITIONS = (("none", 0.0), ("random_flip", 0.2), ("random_flip", 0.4))
N_PAIRS, N_FLIPPED = 8, 3


def diag(loss, rate, k, seed) -> dict:
    out = {"diag_fit": 0.5 + 0.1 * k + D[seed]}
    return out if rate == 0 else {**out, "diag_memorized": M[loss] * rate * k + D[seed]}


def cell(root, loss, noise, rate, seed, curve=True, margins=True):
    steps = [11, 22, 33] if seed == 2 else [10, 20, 30]
    points = [{"step": s, "epoch": float(k), "gold_reward": 0.5, **diag(loss, rate, k, seed)}
              for k, s in enumerate(steps, start=1)]
    rec = record(loss, noise, rate, seed, metrics={"gold_reward": 0.5 + 0.1 * seed, "gold_reward_ref": 0.4,
                                                   **diag(loss, rate, 3, seed)},
                 **({"curve": points} if curve else {}))
    write_record(root, rec)
    if margins:
        flipped = [i < N_FLIPPED and rate > 0 for i in range(N_PAIRS)]
        end = [-1.0 - seed if f else 2.0 + seed for f in flipped]
        atomic_write_json(cell_dir(root, rec["cell_id"]) / MARGINS_FILE, {
            "rows": list(range(N_PAIRS)), "is_flipped": flipped,
            "points": [{"step": steps[0], "epoch": 1.0, "z": [0.0] * N_PAIRS},
                       {"step": steps[-1], "epoch": float("nan"), "z": end}]})


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for loss in ("dpo", "ropo"):
        for noise, rate in CONDITIONS:
            for seed in SEEDS:
                cell(root, loss, noise, rate, seed)
    cell(root, "ipo", "random_flip", 0.2, 0, curve=False, margins=False)
    return root


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    return build_report(results, tmp_path_factory.mktemp("report"))


def test_the_plotted_means_and_bands_are_the_seeds(results):
    t = progress_table(progress_points(load_results(results)))
    assert set(t["label"]) == {"dpo", "ropo"}  # ipo has no curve
    assert set(t["fraction"]) == {0.33, 0.67, 1.0}  # seed 2's 11/33 shares the checkpoint of 10/30
    for loss in ("dpo", "ropo"):
        for noise, rate in CONDITIONS:
            for k, frac in enumerate((0.33, 0.67, 1.0), start=1):
                at = t[(t["label"] == loss) & (t["noise"] == noise) & (t["rate"] == rate) & (t["fraction"] == frac)]
                fit = at[at["metric"] == "diag_fit"].iloc[0]
                assert fit["mean"] == pytest.approx(0.5 + 0.1 * k) and fit["n_seeds"] == 3
                assert (fit["min"], fit["max"]) == pytest.approx((0.45 + 0.1 * k, 0.55 + 0.1 * k))
                mem = at[at["metric"] == "diag_memorized"]
                if rate == 0:
                    assert mem.empty  # no flipped pairs: nothing memorized to draw
                else:
                    assert mem["mean"].iloc[0] == pytest.approx(M[loss] * rate * k)
                    assert mem["sd"].iloc[0] == pytest.approx(0.05)


def test_the_figure_draws_the_table(results):
    t = progress_table(progress_points(load_results(results)))
    fig = plot_margin_progress(t, "dpo")
    lines = {(ax.get_title(), ln.get_gid()): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}
    line = lines[("random_flip @ 0.4", "ropo|diag_memorized")]
    np.testing.assert_allclose(line.get_xdata(), [0.33, 0.67, 1.0])
    np.testing.assert_allclose(line.get_ydata(), [0.2, 0.4, 0.6])
    assert ("none @ 0", "dpo|diag_memorized") not in lines and ("none @ 0", "dpo|diag_fit") in lines


def test_the_end_margins_are_the_last_point_pooled_over_seeds(results):
    z = final_margins(load_results(results), results)
    assert set(z["label"]) == {"dpo", "ropo"}
    g = z[(z["label"] == "dpo") & (z["noise"] == "random_flip") & (z["rate"] == 0.4)]
    assert len(g) == 3 * N_PAIRS and g["flipped"].sum() == 3 * N_FLIPPED
    assert sorted(g.loc[g["flipped"], "z"].unique()) == [-3.0, -2.0, -1.0]
    assert sorted(g.loc[~g["flipped"], "z"].unique()) == [2.0, 3.0, 4.0]
    assert not z.loc[z["rate"] == 0, "flipped"].any()


def test_the_report_has_the_section_and_its_figures(report):
    out, figures = report["out"], report["figures"]
    assert figures["margins:progress"] == "margins_progress.png" and figures["margins:z"] == "margins_z_end.png"
    for name in ("margins_progress.png", "margins_z_end.png"):
        assert (out / name).stat().st_size > 1000
    md = (out / "report.md").read_text()
    assert "### Margin diagnostics" in md
    assert "![memorization and fit against training progress](margins_progress.png)" in md
    assert "minimum to their maximum" in md and "rescaled learning rate" in md
    assert "margins_z_end.png" in (out / "report.html").read_text()


def test_no_curve_and_no_margins_no_section(tmp_path):
    for seed in SEEDS:
        cell(tmp_path / "results", "dpo", "random_flip", 0.2, seed, curve=False, margins=False)
    got = build_report(tmp_path / "results", tmp_path / "report")
    assert not any(k.startswith("margins:") for k in got["figures"])
    assert not list((tmp_path / "report").glob("margins_*"))
    assert "Margin diagnostics" not in (tmp_path / "report" / "report.md").read_text()


def test_curves_without_diagnostics_draw_no_progress(tmp_path):
    root = tmp_path / "results"
    for seed in SEEDS:
        write_record(root, record("dpo", "random_flip", 0.2, seed, metrics={"gold_reward": 0.1 * seed},
                                  curve=[{"step": 10, "epoch": 1.0, "gold_reward": 0.0},
                                         {"step": 20, "epoch": 2.0, "gold_reward": 0.1 * seed}]))
    assert progress_table(progress_points(load_results(root))).empty
    assert final_margins(load_results(root), root).empty


def test_the_archive_view_keeps_a_live_cells_margins(tmp_path):
    old, live = tmp_path / "old", tmp_path / "results"
    cell(old, "ropo", "random_flip", 0.2, 0, margins=False)
    archive.pack(old, "syn", tmp_path / "docs" / "syn")
    cell(live, "dpo", "random_flip", 0.2, 0)
    with archive.viewed(live, archive.archived(tmp_path / "docs")) as view:
        z = final_margins(load_results(view), view)
    assert set(z["label"]) == {"dpo"} and len(z) == N_PAIRS  # the archived cell kept no margins


def test_a_noise_model_without_a_rate_is_one_panel_with_its_margins():
    """NaN is not equal to itself: every row without a rate once made a condition of its own (a figure of tens of
    thousands of empty panels on a results folder with such a study), and no panel found its rows."""
    import pandas as pd

    from bench.report.plots import conditions, plot_margin_histograms

    rows = [dict(label=lab, noise=noise, rate=rate, seed=s, flipped=i % 2 == 0, z=float(i))
            for lab in ("dpo", "ropo") for noise, rate in (("random_flip", 0.4), ("gaussian_reward", float("nan")))
            for s in (0, 1) for i in range(6)]
    z = pd.DataFrame(rows)
    assert [c[0] for c in conditions(z)] == ["random_flip", "gaussian_reward"]
    fig = plot_margin_histograms(z, "dpo")
    assert len(fig.axes) == 4  # 2 losses x 2 conditions
    gauss = [ax for ax in fig.axes if ax.get_subplotspec().colspan.start == 1]
    assert all(ax.patches and not ax.texts for ax in gauss)  # its rows found: bars, no "no cells"
    assert gauss[0].get_title() == "gaussian_reward"


def test_a_tuned_cell_is_drawn_to_its_rules_checkpoint_whether_its_run_went_on_or_ended_there(tmp_path):
    """Rule "oracle" picked epoch 1 of 3: seed 0's run went on to the end, seed 1's ended at the pick
    (eval.checkpoints.stop_after). Both are drawn to epoch 1 (a third of the planned steps) with their z there."""
    root = tmp_path / "results"
    source = {"source": "tuning", "criterion": "oracle", "checkpoint": 1.0}
    points = [{"step": 10 * k, "epoch": float(k), "gold_reward": 0.1 * k, **diag("dpo", 0.4, k, 0)} for k in (1, 2, 3)]
    for seed, curve, extra in ((0, points, {}), (1, points[:1], {"stopped": {"step": 10, "epoch": 1.0,
                                                                            "stop_after": 1.0, "planned_steps": 30}})):
        rec = record("dpo", "random_flip", 0.4, seed, metrics={"gold_reward": curve[-1]["gold_reward"]}, curve=curve,
                     hp_source=source, hp_sources=[source], **extra)
        write_record(root, rec)
        z = [[float(seed) + k] * N_PAIRS for k in (1, 2, 3)][:len(curve)]
        atomic_write_json(cell_dir(root, rec["cell_id"]) / MARGINS_FILE, {
            "rows": list(range(N_PAIRS)), "is_flipped": [i < N_FLIPPED for i in range(N_PAIRS)],
            "points": [{"step": p["step"], "epoch": p["epoch"], "z": zk} for p, zk in zip(curve, z)]})
    res = load_results(root)
    pts = progress_points(res)
    assert set(pts["fraction"]) == {0.33} and sorted(pts["seed"].unique()) == [0, 1]
    zs = final_margins(res, root)
    assert sorted(zs["z"].unique()) == [1.0, 2.0]  # each seed's z at epoch 1, not seed 0's end (3.0)
