"""Report tests on synthetic records with known values (no training, no judge).

The synthetic sweep (``make_sweep``): losses dpo, ipo, ropo x noise random, length x rates 0, .2, .4 x seeds 0-2.
    dpo:  gold_reward = 1 - 2 * rate + E[seed],  E = (-0.1, 0, 0.1)   -> slope -2, AUC 0.6, crosses 0.5 at 0.25
    ipo:  dpo + 0.1 + J[seed],                   J = (-0.02, 0, 0.02)  -> paired diff 0.1, d_z = 0.1 / 0.02 = 5
    ropo: 0.8 - 0.5 * rate + E[seed]                                   -> never falls below the reference 0.5
    gold_reward_ref = 0.5; length = 20 + 10 * rate (+ seed); kl lower-is-better.
One cell is deleted (missing) and one fails.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.core.options import ConfigError
from bench.core.records import write_record
from bench.report import build_report
from bench.report.__main__ import main
from bench.report.aggregate import hp_of, load_results, robustness_table
from bench.report.plots import REF_GID, plot_curves, plot_gain_heatmap
from bench.report.stats import crossing_rate, holm, paired_test, paired_vs_baseline, summary_table

RATES, SEEDS, NOISES = (0.0, 0.2, 0.4), (0, 1, 2), ("random", "length")
E, J = (-0.1, 0.0, 0.1), (-0.02, 0.0, 0.02)
INFO = {
    "gold_reward": {"higher_is_better": True, "evaluator": "gold"},
    "gold_reward_ref": {"higher_is_better": True, "evaluator": "gold"},
    "length": {"higher_is_better": None, "evaluator": "length"},
    "kl": {"higher_is_better": False, "evaluator": "kl"},
}
MISSING = ("ropo", "random", 0.4, 2)
FAILED = ("ipo", "length", 0.2, 1)


def gold(loss, rate, seed):
    dpo = 1 - 2 * rate + E[seed]
    return {"dpo": dpo, "ipo": dpo + 0.1 + J[seed], "ropo": 0.8 - 0.5 * rate + E[seed]}[loss]


def record(loss, noise, rate, seed, metrics=None, sweep="syn", status="ok", **extra):
    metrics = metrics if metrics is not None else {
        "gold_reward": gold(loss, rate, seed), "gold_reward_ref": 0.5,
        "length": 20 + 10 * rate + seed, "kl": 0.1 + rate + 0.01 * seed}
    return {"cell_id": f"{sweep}-{loss}-{noise}-{rate}-{seed}", "sweep": sweep, "status": status, "loss": loss,
            "noise": noise, "rate": rate, "seed": seed, "data": "embedded", "model": "tiny",
            "metrics": metrics if status == "ok" else {}, "metric_info": INFO,
            "noise_stats": {"target_rate": rate, "realized_rate": rate}, "loss_params": {"beta": 0.1},
            "eps_source": None, "config": {"loss": {"name": loss, "beta": 0.1}, "train": {"lr": 1e-4, "steps": 50},
                                           "noise": {"name": noise, "rate": rate}, "seed": seed},
            "versions": {"torch": "2.13.0", "trl": "1.16.0"}, "timings": {"train": 60.0, "eval": 10.0},
            "error": None, **extra}


def make_sweep(root):
    for loss in ("dpo", "ipo", "ropo"):
        for noise in NOISES:
            for rate in RATES:
                for seed in SEEDS:
                    if (loss, noise, rate, seed) == MISSING:
                        continue
                    if (loss, noise, rate, seed) == FAILED:
                        write_record(root, record(loss, noise, rate, seed, status="failed", error={
                            "type": "OutOfMemoryError", "message": "CUDA out of memory", "where": "train"}))
                        continue
                    write_record(root, record(loss, noise, rate, seed))
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return make_sweep(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def report(sweep):
    return build_report(sweep)


# ------------------------------------------------------------------------------------------------ tables
def test_table_means_and_intervals_equal_direct_computation(report):
    t = report["table"].set_index(["label", "noise", "rate", "metric"])
    for loss in ("dpo", "ipo", "ropo"):
        for noise in NOISES:
            for rate in RATES:
                seeds = [s for s in SEEDS if (loss, noise, rate, s) not in (MISSING, FAILED)]
                x = np.array([gold(loss, rate, s) for s in seeds])
                lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
                row = t.loc[(loss, noise, rate, "gold_reward")]
                assert row["n_seeds"] == len(x)
                assert row["mean"] == pytest.approx(x.mean())
                assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
                assert row["direction"] == "higher"
    assert t.loc[("dpo", "random", 0.0, "length"), "direction"] == "none"
    assert t.loc[("dpo", "random", 0.0, "kl"), "direction"] == "lower"


def test_tables_written(report):
    out = report["out"]
    for name in ("robustness.csv", "robustness.parquet", "summary.csv", "paired_vs_dpo.csv", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0
    back = pd.read_parquet(out / "robustness.parquet")
    assert len(back) == len(report["table"]) == 3 * 2 * 3 * 4  # every (loss, noise, rate) has a value for 4 metrics


def test_missing_cell_appears_as_missing(report):
    miss = report["results"].missing
    assert list(miss[["label", "noise", "rate", "seed"]].itertuples(index=False, name=None)) == [MISSING]
    row = report["table"].set_index(["label", "noise", "rate", "metric"]).loc[("ropo", "random", 0.4, "gold_reward")]
    assert (row["n_seeds"], row["n_missing"]) == (2, 1)
    md = (report["out"] / "report.md").read_text()
    section = md.split("## Missing cells")[1]
    assert "| ropo | random | 0.4 | 2 |" in section
    assert "[1 missing]" in md


def test_report_lists_failed_cells(report):
    failed = report["results"].failed
    assert list(failed[["label", "noise", "rate", "seed"]].itertuples(index=False, name=None)) == [FAILED]
    for path in ("report.md", "report.html"):
        text = (report["out"] / path).read_text()
        assert "OutOfMemoryError" in text and "CUDA out of memory" in text
    assert "**1 failed**, **1 missing**" in (report["out"] / "report.md").read_text()


def test_report_shows_config_and_versions(report):
    md = (report["out"] / "report.md").read_text()
    assert "| train.lr | 0.0001 |" in md  # shared config
    assert "loss.name" in md.split("vary between records")[1].split("### Shared config")[0]  # swept key
    assert "| trl | 1.16.0 |" in md


# ----------------------------------------------------------------------------------------------- summary
def test_summary_slope_auc_and_reference_crossing(report):
    s = report["summary"].set_index(["label", "noise", "metric"])
    dpo = s.loc[("dpo", "random", "gold_reward")]
    assert dpo["slope"] == pytest.approx(-2.0)
    assert dpo["auc"] == pytest.approx(0.6)  # mean of 1 - 2r over [0, 0.4]
    assert dpo["at_rate0"] == pytest.approx(1.0)
    assert dpo["below_ref_at"] == pytest.approx(0.25)  # 1 - 2r = 0.5 (gold_reward_ref)
    ropo = s.loc[("ropo", "length", "gold_reward")]
    assert ropo["slope"] == pytest.approx(-0.5) and ropo["auc"] == pytest.approx(0.7)
    assert np.isnan(ropo["below_ref_at"]) and ropo["below_ref_note"].startswith("never")
    assert ropo["at_rate0_vs_baseline"] == pytest.approx(-0.2)
    assert s.loc[("dpo", "random", "length"), "below_ref_note"] == "no direction"
    assert s.loc[("dpo", "random", "length"), "slope"] == pytest.approx(10.0)


def test_crossing_rate_cases():
    assert crossing_rate([0, 0.2, 0.4], [0.4, 0.2, -0.2]) == (pytest.approx(0.3), "interpolated")
    assert crossing_rate([0, 0.2], [-0.1, 0.2])[0] == 0
    r, note = crossing_rate([0, 0.2], [0.1, 0.2])
    assert np.isnan(r) and note.startswith("never")


def test_gain_and_win_rate_metrics_use_generic_references(tmp_path):
    for seed in SEEDS:
        for rate in RATES:
            m = {"gold_gain": 0.3 - rate, "gold_win_rate": 0.7 - rate}  # cross 0 at 0.3 and 0.5 at 0.2
            write_record(tmp_path, record("dpo", "random", rate, seed, metrics=m, metric_info={
                "gold_gain": {"higher_is_better": True}, "gold_win_rate": {"higher_is_better": True}}))
    res = load_results(tmp_path)
    s = summary_table(res, robustness_table(res), "dpo").set_index("metric")
    assert s.loc["gold_gain", "below_ref_at"] == pytest.approx(0.3)
    assert s.loc["gold_win_rate", "below_ref_at"] == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------- paired
def test_paired_known_effect_small_p_and_holm(report):
    p = report["paired"]
    g = p[p["metric"] == "gold_reward"].set_index(["label", "noise", "rate"])
    row = g.loc[("ipo", "random", 0.2)]
    assert row["test"] == "paired t-test" and row["n_pairs"] == 3
    assert row["mean_diff"] == pytest.approx(0.1)
    assert row["d_z"] == pytest.approx(5.0)
    assert row["p"] == pytest.approx(stats.ttest_rel([gold("ipo", 0.2, s) for s in SEEDS], [gold("dpo", 0.2, s) for s in SEEDS]).pvalue)
    assert row["p"] < 0.05 and row["better"] == "yes"
    gr = p[p["metric"] == "gold_reward"]
    assert np.allclose(gr["p_holm"], holm(gr["p"].to_numpy()), equal_nan=True)
    assert (gr["p_holm"] >= gr["p"]).all() and (gr["p_holm"] > gr["p"]).any()
    assert g.loc[("ipo", "length", 0.2), "n_pairs"] == 2  # the failed seed is not paired
    assert "no Wilcoxon" in row["note"]


def test_holm_known_values():
    out = holm([0.01, 0.04, 0.03, np.nan])
    assert np.allclose(out[:3], [0.03, 0.06, 0.06]) and np.isnan(out[3])
    assert np.allclose(holm([0.02, 0.9]), [0.04, 0.9]) and np.allclose(holm([0.5, 0.9]), [1.0, 1.0])


def test_paired_test_small_n_and_constant_difference():
    one = paired_test([0.3])
    assert one["n_pairs"] == 1 and np.isnan(one["p"]) and "no test" in one["note"]
    const = paired_test([0.2] * 4)
    assert const["mean_diff"] == pytest.approx(0.2) and const["d_z"] == np.inf and const["p"] == 0.0
    six = paired_test([0.1, 0.2, 0.15, 0.12, 0.3, 0.25])
    assert six["p_wilcoxon"] == pytest.approx(0.03125)


def test_single_seed_cells_give_nan_p(tmp_path):
    for loss in ("dpo", "ipo"):
        write_record(tmp_path, record(loss, "random", 0.2, 0))
    res = load_results(tmp_path)
    p = paired_vs_baseline(res, "dpo")
    assert np.isnan(p["p"]).all() and p["note"].str.contains("no test").all()
    t = robustness_table(res)
    assert t["ci_low"].isna().all() and (t["n_seeds"] == 1).all()


# ----------------------------------------------------------------------------------------------- plots
def test_curve_figure_axes_and_one_line_per_loss(report):
    res = report["results"]
    from bench.report.stats import reference_curve
    ref, _ = reference_curve(res.values, "gold_reward", res.metric_info)
    fig = plot_curves(report["table"], "gold_reward", "dpo", ref)
    axes = list(fig.axes)
    assert [a.get_title() for a in axes] == ["noise: length", "noise: random"]
    assert axes[0].get_ylabel() == "gold_reward (higher is better)"
    for ax in axes:
        assert ax.get_xlabel() == "noise rate"
        losses = [ln.get_label() for ln in ax.get_lines() if ln.get_gid() != REF_GID]
        assert sorted(losses) == ["dpo", "ipo", "ropo"]
        refs = [ln for ln in ax.get_lines() if ln.get_gid() == REF_GID]
        assert len(refs) == 1 and refs[0].get_linestyle() == "--"
        dpo = next(ln for ln in ax.get_lines() if ln.get_label() == "dpo")
        assert np.allclose(dpo.get_xdata(), RATES) and np.allclose(dpo.get_ydata(), [1.0, 0.6, 0.2])
        assert len(ax.collections) == 3  # one CI band per loss


def test_heatmap_figure(report):
    fig = plot_gain_heatmap(report["paired"], "gold_reward", "dpo")
    panels = [a for a in fig.axes if a.get_title().startswith("noise:")]
    assert len(panels) == 2
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["ipo", "ropo"]
    assert panels[0].images[0].get_array().shape == (2, 3)
    assert any(t.get_text().startswith("+0.1") for t in panels[1].texts)


def test_figures_written(report):
    out = report["out"]
    for f in ("curves_gold_reward.png", "curves_length.png", "curves_kl.png", "gain_vs_dpo_gold_reward.png"):
        assert (out / f).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "curves_gold_reward_ref.png").exists()
    md = (out / "report.md").read_text()
    assert "![gold_reward vs noise rate](curves_gold_reward.png)" in md


# ------------------------------------------------------------------------------------------ edge cases
def test_loss_label_clean_broadcast_and_partial(tmp_path):
    for seed in SEEDS:
        write_record(tmp_path, record("ropo", "none", 0.0, seed, loss_label="ROPO (loss only)"))
        write_record(tmp_path, record("ropo", "random", 0.4, seed, loss_label="ROPO (loss only)"))
    write_record(tmp_path, record("ropo", "random", 0.2, 0, metrics={}, loss_label="ROPO (loss only)"))
    out = build_report(tmp_path, metric="judge_win_rate")
    t = out["table"]
    assert set(t["label"]) == {"ROPO (loss only)"}
    assert sorted(set(t.loc[t["noise"] == "random", "rate"])) == [0.0, 0.4]  # clean rate-0 cells start the curve
    assert out["baseline"] is None and out["headline"] == "gold_reward"
    assert any("judge_win_rate" in n for n in out["notes"]) and any("carry no metric values" in n for n in out["notes"])
    md = (out["out"] / "report.md").read_text()
    assert "baseline 'dpo' not found" in md
    missing = out["results"].missing
    assert sorted(missing["seed"]) == [1, 2] and set(missing["rate"]) == {0.2}  # rate 0 of random is not missing
    assert "| ROPO (loss only) | random | 0.2 | 1 |" in md


def test_clean_from_starts_a_secondary_sweep_at_the_primary_clean_cells(tmp_path, capsys):
    """A secondary sweep trains no rate 0: --clean-from takes the primary sweep's clean cells of the same seeds and
    curves (no pair flipped or dropped) as rate 0 of every noise type, so each slope starts from clean labels."""
    unchanged = {"n_flipped": 0, "n_pairs": 100, "n_trained_pairs": 100}
    for loss in ("dpo", "ipo"):
        for seed in SEEDS:
            write_record(tmp_path, record(loss, "random", 0.0, seed, sweep="main", noise_stats=unchanged))
            write_record(tmp_path, record(loss, "random", 0.4, seed, sweep="main"))  # not rate 0: never taken
            for noise, rate in (("random", 0.2), ("length", 0.4)):
                write_record(tmp_path, record(loss, noise, rate, seed, sweep="second"))
    write_record(tmp_path, record("dpo", "random", 0.0, 5, sweep="main", noise_stats=unchanged,  # another seed
                                  metrics={"gold_reward": 0.0}))
    write_record(tmp_path, record("ropo", "random", 0.0, 0, sweep="main", noise_stats=unchanged))  # another curve
    write_record(tmp_path, record("ipo", "skip", 0.0, 1, sweep="main", cell_id="dropped",  # a pair dropped
                                  noise_stats={"n_flipped": 0, "n_pairs": 100, "n_trained_pairs": 90}))
    res = load_results(tmp_path, "second", clean_from="main")
    clean = res.cells[res.cells["sweep"] == "main"]
    assert sorted(zip(clean["loss"], clean["seed"])) == [(l, s) for l in ("dpo", "ipo") for s in SEEDS]
    assert any("6 clean rate-0 cell(s) of sweep 'main' (random at rate 0, no pair flipped or dropped; seeds 0, 1, 2)"
               in n for n in res.notes)
    v = res.values[res.values["metric"] == "gold_reward"]
    for noise in ("random", "length"):  # rate 0 of each noise type is the clean cell's value
        at0 = v[(v["noise"] == noise) & (v["rate"] == 0)].set_index(["loss", "seed"])["value"]
        assert at0.to_dict() == {(l, s): gold(l, 0.0, s) for l in ("dpo", "ipo") for s in SEEDS}
    assert res.missing.empty
    alone = load_results(tmp_path, "second")
    assert set(alone.values["rate"]) == {0.2, 0.4}  # without it, no clean point
    assert any("no complete rate-0 cell of sweep 'nope'" in n
               for n in load_results(tmp_path, "second", clean_from="nope").notes)
    assert not [n for n in res.notes if "sweeps are pooled" in n or "of the clean condition" in n]  # said once
    assert load_results(tmp_path, "second", {"rate": ["0.2"]}, clean_from="main").values["rate"].eq(0.2).all()
    with pytest.raises(ConfigError, match="the reported sweep itself"):
        load_results(tmp_path, "main", clean_from="main")
    # the copies of one clean comparison are one test in the Holm family, not one per noise type
    paired = paired_vs_baseline(res, "dpo")
    gr = paired[paired["metric"] == "gold_reward"].set_index(["noise", "rate"])
    assert gr.loc[("random", 0.0), "p_holm"] == gr.loc[("length", 0.0), "p_holm"]
    distinct = gr.drop(("length", 0.0))
    assert np.allclose(distinct["p_holm"], holm(distinct["p"].to_numpy()))
    for argv, said in ((["--clean-from", "main"], "--clean-from needs --sweep"),
                       (["--sweep", "main", "--clean-from", "main"], "the reported sweep itself")):
        with pytest.raises(SystemExit):
            main(["--results", str(tmp_path), *argv])
        assert said in capsys.readouterr().err
    assert main(["--results", str(tmp_path), "--where", "sweep=second", "--clean-from", "main", "--archives", "none",
                 "--out", str(tmp_path / "rep")]) == 0
    assert "6 clean rate-0 cell(s) of sweep 'main'" in capsys.readouterr().out


def test_duplicate_records_keep_latest_ok(tmp_path):
    write_record(tmp_path, record("dpo", "random", 0.2, 0, cell_id="old", finished_at="2024-01-01"))
    write_record(tmp_path, record("dpo", "random", 0.2, 0, cell_id="new", metrics={"gold_reward": 9.0}))
    res = load_results(tmp_path)
    assert list(res.cells["cell_id"]) == ["new"] and res.values["value"].tolist() == [9.0]
    assert any("superseded" in n for n in res.notes)


def test_cli(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "empty"), "--archives", "none"]) == 0  # the repo's archives: not here
    assert "no records" in capsys.readouterr().out
    for loss in ("dpo", "ropo"):
        for seed in (0, 1):
            write_record(tmp_path, record(loss, "random", 0.2, seed, metrics={"gold_reward": gold(loss, 0.2, seed)}))
    write_record(tmp_path, record("dpo", "random", 0.2, 0, sweep="other"))
    assert main(["--results", str(tmp_path), "--out", str(tmp_path / "rep"), "--sweep", "syn", "--archives", "none"]) == 0
    text = capsys.readouterr().out
    assert "report.md" in text and "4 ok, 0 failed, 0 missing" in text and "ropo" in text
    assert (tmp_path / "rep" / "report.html").exists()


def test_where_filter_keeps_only_matching_records():
    from bench.report.aggregate import matches

    rec = {"loss": "dpo", "noise": "random_flip", "rate": 0.2, "seed": 1, "method": "standard"}
    assert matches(rec, {"loss": ["dpo", "ropo"], "rate": ["0", "0.2"]})
    assert not matches(rec, {"rate": ["0.4"]})
    assert not matches(rec, {"noise": ["length_biased"]})
    assert matches(rec, None)
    # tuning: the <sweep>/<rule> behind the record's source of values; a cell reused by two sweeps answers to both
    a = {"source": "tuning", "criterion": "oracle", "sweep": "tune", "tuning": "tune/oracle"}
    b = {"source": "tuning", "criterion": "oracle", "sweep": "tune_seed", "tuning": "tune_seed/oracle"}
    v = {"source": "tuning", "criterion": "val_acc", "sweep": "tune"}
    tuned = {**rec, "hp_source": a, "hp_sources": [a, b, v], "hp": "oracle"}
    assert matches(tuned, {"tuning": ["tune_seed/oracle"]}) and matches(tuned, {"tuning": ["tune/oracle"]})
    assert not matches(tuned, {"tuning": ["tune/val_acc", "default"]})
    assert matches(rec, {"tuning": ["default"]}) and not matches(rec, {"tuning": ["tune/oracle"]})
    assert matches({**rec, "hp_source": v, "hp_sources": [a, v], "hp": "val_acc"}, {"tuning": ["tune/val_acc"]})


# ----------------------------------------------------------------------------------------- honest directions
def test_counters_and_train_loss_get_no_tests_or_verdicts(tmp_path):
    """A counter (judge calls) and each loss's own training loss are shown, never tested or called better."""
    info = {**INFO, "judge_calls": {"higher_is_better": None, "compare": False, "evaluator": "llm_judge"},
            "train_loss": {"higher_is_better": None, "compare": False, "evaluator": "train"}}
    for loss in ("dpo", "ipo"):
        for seed in SEEDS:
            m = {"gold_reward": gold(loss, 0.2, seed), "judge_calls": 10.0 + seed + (loss == "ipo"),
                 "train_loss": 0.69 + 0.1 * seed + (5.0 if loss == "ipo" else 0.0)}
            write_record(tmp_path, record(loss, "random", 0.2, seed, metrics=m, metric_info=info))
    out = build_report(tmp_path)
    paired = out["paired"]
    assert set(paired["metric"]) == {"gold_reward"}  # no paired test on a counter or on train_loss
    s = out["summary"].set_index(["label", "metric"])
    assert s.loc[("ipo", "train_loss"), "below_ref_note"] == "not compared"
    assert s.loc[("ipo", "judge_calls"), "direction"] == "none"
    assert "train_loss" in set(out["table"]["metric"])  # still shown
    text = (out["out"] / "report.md").read_text()
    assert "### train_loss" in text


def test_files_are_named_after_the_baseline_used(sweep, tmp_path):
    out = build_report(sweep, tmp_path / "rep", baseline="ipo")
    assert out["baseline"] == "ipo" and (tmp_path / "rep" / "paired_vs_ipo.csv").exists()
    assert not (tmp_path / "rep" / "paired_vs_dpo.csv").exists()
    assert (tmp_path / "rep" / "gain_vs_ipo_gold_reward.png").exists()
    assert "paired_vs_ipo.csv" in (tmp_path / "rep" / "report.md").read_text()


# ------------------------------------------------------------------------------------------------ tuning
def _tuned_results(root):
    """A tuning sweep (dpo, ipo x random@0.4, lr x beta/tau grids, seed 0, rules oracle and val_acc) and final
    cells on seeds 100-102 at the defaults, under the oracle's picks and under val_acc's."""
    import json

    from bench.core.files import write_jsonl
    from bench.tune import selection as sel

    folder = sel.tuning_dir(root, "tz")
    folder.mkdir(parents=True)
    knobs = {"dpo": ("loss.beta", [0.05, 0.1, 0.2], 0.1), "ipo": ("loss.tau", [0.1, 0.3, 1.0], 0.1)}
    plan = {"sweep": "tz", "seeds": [0], "criteria": ["oracle", "val_acc"], "lr": [1e-4, 2e-4, 4e-4],
            "budgets": {"dpo": 5, "ipo": 5}, "conditions": [{"key": "c", "noise": "random", "rate": 0.4}],
            "losses": {lo: {"stages": [{"key": "train.learning_rate", "values": [1e-4, 2e-4, 4e-4], "default": 2e-4},
                                       {"key": k, "values": v, "default": d}], "budget": 5}
                       for lo, (k, v, d) in knobs.items()}}
    (folder / sel.PLAN).write_text(json.dumps(plan))
    jobs = []
    for lo, (k, values, _) in knobs.items():
        for lr in (1e-4, 2e-4, 4e-4):
            for v in values:
                cid = f"tz-{lo}-{lr}-{v}"
                # the oracle's val gold peaks at lr 4e-4; val_acc prefers lr 1e-4; test gold follows val gold
                m = {"val_gold_reward": lr * 1e3 + v, "val_implicit_acc": -lr, "gold_reward": lr * 1e3 + v + 0.01}
                write_record(root, {**record(lo, "random", 0.4, 0, metrics=m, sweep="tz"), "cell_id": cid,
                                    "config": {"eval": {"validation": {"enabled": True}}}})
                jobs.append({"loss": lo, "condition": "c", "point": {"train.learning_rate": lr, k: v}, "seed": 0,
                             "cell_id": cid, "status": "ok"})
    write_jsonl(folder / sel.JOBS, jobs)
    for lo in ("dpo", "ipo"):
        for seed in (100, 101, 102):
            base = gold(lo, 0.4, seed % 3)
            srcs = {"default": {"source": "default"}, "oracle": {"source": "tuning", "criterion": "oracle", "sweep": "tz"},
                    "val_acc": {"source": "tuning", "criterion": "val_acc", "sweep": "tz"}}
            for h, shift in (("default", 0.0), ("oracle", 0.3), ("val_acc", 0.1)):
                m = {"gold_reward": base + shift, "gold_reward_ref": 0.5}
                write_record(root, {**record(lo, "random", 0.4, seed, metrics=m, sweep=f"final_{h}"),
                                    "cell_id": f"f-{lo}-{seed}-{h}", "hp_source": srcs[h]})
    return root


def test_tuning_section_picks_regret_and_the_headline_side_by_side(tmp_path):
    out = build_report(_tuned_results(tmp_path / "results"))
    text = (out["out"] / "report.md").read_text()
    assert "## Tuning" in text and "### Selections (tz)" in text
    # oracle: lr 4e-4 (edge) then the largest knob value (edge); val_acc: lr 1e-4 (edge)
    assert "beta 0.2*, learning_rate 0.0004*" in text and "learning_rate 0.0001*" in text
    from bench.report.tuning import best_realistic, regret_table
    from bench.tune import selection as sel

    folder = sel.tuning_dir(tmp_path / "results", "tz")
    rows = pd.DataFrame(sel.select(sel.read_plan(folder), sel.scores_from(folder, tmp_path / "results")))
    reg = regret_table(rows).set_index(["criterion", "loss"])
    # val_acc picked lr 1e-4 with the default knob; the oracle lr 4e-4 with the top knob: test difference known
    assert reg.loc[("val_acc", "dpo"), "regret"] == pytest.approx((0.1 + 0.1) - (0.4 + 0.2))
    assert reg.loc[("val_acc", "ipo"), "regret"] == pytest.approx((0.1 + 0.1) - (0.4 + 1.0))
    assert not reg["same_pick"].any() and best_realistic(regret_table(rows)) == "val_acc"
    assert "### The headline, side by side (gold_reward, final seeds)" in text
    assert "| loss | paper defaults | tuned, rule oracle | tuned, rule val_acc |" in text
    assert any(p.name.startswith("sensitivity_tz_random_0.4") for p in out["out"].iterdir())
    # the picks' test gold on the tuning seed against their final seeds' mean: the oracle's dpo pick (lr 4e-4,
    # beta 0.2) scored 0.4 + 0.2 + 0.01 on the tuning seed; its finals are DPO's gold + 0.3 on seeds 100-102
    from bench.report.aggregate import load_results
    from bench.report.tuning import transfer_table

    moved = transfer_table(rows, load_results(tmp_path / "results"), "tz").set_index(["criterion", "loss"])
    final = np.mean([gold("dpo", 0.4, s % 3) + 0.3 for s in (100, 101, 102)])
    assert moved.loc[("oracle", "dpo"), "optimism"] == pytest.approx(0.61 - final)
    assert moved.loc[("oracle", "dpo"), "n_final"] == 3 and len(moved) == 4  # 2 rules x 2 losses
    assert "### Do the picks carry over?" in text


def test_each_source_of_values_is_its_own_analysis_against_its_own_baseline(tmp_path):
    out = build_report(_tuned_results(tmp_path / "results"))
    by = {a["hp"]: a for a in out["analyses"]}
    assert set(by) == {"default", "oracle", "val_acc"}
    assert by["oracle"]["baseline"] == "DPO [oracle]" or by["oracle"]["baseline"] == "dpo [oracle]"
    p = by["oracle"]["paired"]
    assert set(p["label"]) == {"ipo [oracle]"} and set(p["baseline"]) == {by["oracle"]["baseline"]}
    # ipo - dpo paired at rate 0.4 under the oracle's values: 0.1 + J, mean 0.1 (the shift is the same for both)
    assert p.loc[p["metric"] == "gold_reward", "mean_diff"].iloc[0] == pytest.approx(0.1)
    assert (out["out"] / "paired_vs_dpo_gold_reward_oracle.png").exists()
    csv = pd.read_csv(out["out"] / "robustness.csv")
    assert set(csv["hp"]) == {"default", "oracle", "val_acc"}
    assert "tuning cell(s)" in " ".join(out["notes"])  # the 18 tuning cells stay out of the robustness tables
    assert "tz" not in set(out["results"].cells["sweep"])


def test_a_cell_reused_by_a_rule_counts_for_it_too(tmp_path):
    from bench.core.records import note_hp_source, read_record

    write_record(tmp_path, record("dpo", "random", 0.4, 2))
    note_hp_source(tmp_path, "syn-dpo-random-0.4-2", {"source": "tuning", "criterion": "oracle"})
    rec = read_record(tmp_path, "syn-dpo-random-0.4-2")
    assert [hp_of({"hp_source": s}) for s in rec["hp_sources"]] == ["default", "oracle"]
    assert rec["metrics"] == record("dpo", "random", 0.4, 2)["metrics"]  # results untouched
    res = load_results(tmp_path)
    assert sorted(res.cells["label"]) == ["dpo", "dpo [oracle]"]


def test_paired_differences_figure_has_one_panel_per_condition(report):
    from bench.report.plots import plot_paired_differences

    fig = plot_paired_differences(report["paired"], "gold_reward", "dpo")
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["random @ 0", "random @ 0.2", "random @ 0.4", "length @ 0", "length @ 0.2", "length @ 0.4"]
    assert {"ci_low", "ci_high", "mde_80"} <= set(report["paired"].columns)
    row = report["paired"].query("metric == 'gold_reward' and label == 'ipo' and noise == 'random' and rate == 0.2")
    assert row["ci_low"].iloc[0] < 0.1 < row["ci_high"].iloc[0]
    # MDE at 80% power for n=3, sd 0.02: (t_.975 + t_.8) * 0.02 / sqrt(3)
    assert row["mde_80"].iloc[0] == pytest.approx((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * 0.02 / 3 ** 0.5)


def test_missing_cells_follow_the_union_of_conditions(tmp_path):
    # random flips at 0 and 0.2, length-biased at 0.4 only: length-biased at 0 or 0.2 was never a cell of the design
    for loss in ("dpo", "ipo"):
        for seed in (0, 1):
            for noise, rate in (("random", 0.0), ("random", 0.2), ("length_biased", 0.4)):
                if (loss, noise, seed) != ("ipo", "length_biased", 1):
                    write_record(tmp_path, record(loss, noise, rate, seed))
    missing = load_results(tmp_path).missing
    assert missing[["label", "noise", "rate", "seed"]].values.tolist() == [["ipo", "length_biased", 0.4, 1]]


def test_a_final_cell_on_values_its_rule_no_longer_selects_is_left_out(tmp_path):
    """A tuning sweep re-run (a wider grid) picks new values: cells of the old pick are stale, not pooled."""
    from bench.tune import selection as sel

    folder = sel.tuning_dir(tmp_path, "tz")
    folder.mkdir(parents=True)
    sel.write(folder, [{"loss": "dpo", "noise": "random", "rate": 0.4, "criterion": "oracle",
                        "train.learning_rate": 4e-4, "loss.beta": 0.1, "val_score": 1.0}])
    m = {"gold_reward": 0.1, "gold_reward_ref": 0.0}
    for seed, lr in ((100, 4e-4), (101, 4e-4), (102, 1e-4)):  # seed 102 ran when the pick was lr 1e-4
        src = {"source": "tuning", "tuning": "tz/oracle", "sweep": "tz", "criterion": "oracle",
               "values": {"train.learning_rate": lr, "loss.beta": 0.1}}
        write_record(tmp_path, {**record("dpo", "random", 0.4, seed, metrics=m), "cell_id": f"f-{seed}",
                                "hp_source": src})
    write_record(tmp_path, {**record("dpo", "random", 0.4, 103, metrics=m), "cell_id": "d-103"})  # never stale
    res = load_results(tmp_path)
    assert sorted(res.cells["cell_id"]) == ["d-103", "f-100@oracle", "f-101@oracle"]
    assert any("1 tuned cell(s) ran on values their rule no longer selects" in n and "f-102@oracle" in n
               for n in res.notes)
    # a key the rule no longer tunes (or newly tunes) also makes it stale
    from bench.tune.apply import is_current

    rows = sel.read(folder)
    assert is_current({"source": "tuning", "criterion": "oracle", "values": {"train.learning_rate": 4e-4,
                                                                             "loss.beta": 0.1}}, rows, "dpo", "random", 0.4)
    assert not is_current({"source": "tuning", "criterion": "oracle", "values": {"train.learning_rate": 4e-4}},
                          rows, "dpo", "random", 0.4)
    assert not is_current({"source": "tuning", "criterion": "val_acc", "values": {}}, rows, "dpo", "random", 0.4)


def test_regret_skips_picks_whose_cells_have_not_run():
    """A tuning sweep still running has rows without a test score: they are no pick, not a same-pick tie."""
    from bench.report.tuning import regret_table

    nan = float("nan")
    rows = pd.DataFrame([
        {"loss": "dpo", "noise": "random", "rate": 0.4, "criterion": c, "train.learning_rate": lr,
         "test_gold_reward": t} for c, lr, t in (("oracle", 4e-4, 0.3), ("val_acc", 1e-4, 0.1))] + [
        {"loss": "ipo", "noise": "random", "rate": 0.4, "criterion": c, "train.learning_rate": nan,
         "test_gold_reward": nan} for c in ("oracle", "val_acc")])
    reg = regret_table(rows)
    assert list(reg["loss"]) == ["dpo"] and reg["regret"].iloc[0] == pytest.approx(-0.2)


def test_cost_table_is_the_median_per_cell_over_the_baseline_without_one_off_steps(tmp_path):
    """Per loss: median of timings.total less the cached scorer step, over DPO's median; the longest one-off step."""
    totals = {"dpo": (10.0, 12.0, 20.0), "ropo": (30.0, 36.0, 90.0)}
    for loss, ts in totals.items():
        for seed, total in enumerate(ts):
            scores = 50.0 if (loss, seed) == ("ropo", 0) else 2.0 if loss == "ropo" else 0.0
            write_record(tmp_path, record(loss, "random", 0.2, seed, timings={"total": total + scores, "scores": scores}))
    write_record(tmp_path, record("ipo", "random", 0.2, 0, timings={"train": 5.0}))  # no total: not counted
    ens = {"total": 140.0, "train": 130.0, "train_parts": {"ensemble": 100.0}}  # a cached ensemble built in this cell
    write_record(tmp_path, record("dpo", "length", 0.2, 0, method="rm_ensemble", loss_label="DPO + ensemble", timings=ens))
    out = build_report(tmp_path, tmp_path / "rep")
    cost = pd.read_csv(out["out"] / "cost.csv").set_index("loss")
    assert cost.loc["dpo", "median s per cell"] == 12.0 and cost.loc["dpo", "x baseline"] == 1.0
    assert cost.loc["ropo", "median s per cell"] == 36.0 and cost.loc["ropo", "x baseline"] == 3.0
    assert cost.loc["ropo", "one-off s (most)"] == 50.0 and cost.loc["ropo", "cells"] == 3
    assert "ipo" not in cost.index
    assert cost.loc["DPO + ensemble", "median s per cell"] == 40.0 and cost.loc["DPO + ensemble", "one-off s (most)"] == 100.0
    text = (out["out"] / "report.md").read_text()
    assert "Recorded compute: 0.11 h over 8 records" in text  # each cell's total once (its parts are in it)
    assert "Compute per cell" in (out["out"] / "report.md").read_text()


def test_a_borrowed_cell_costs_its_twins_run_and_the_report_says_which_cells_borrowed(tmp_path):
    """A cleaner cell at rate 0 that took its DPO twin's results (bench.cell.borrow): its cost is the twin's run, the
    compute actually spent is its own few seconds, and a note names the arm."""
    for seed in (0, 1):
        write_record(tmp_path, record("dpo", "random", 0.0, seed, timings={"total": 100.0}))
        write_record(tmp_path, {**record("dpo", "random", 0.2, seed, timings={"total": 100.0}), "method": "clean",
                                "loss_label": "DPO + oracle cleaner (remove)",
                                "cell_id": f"clean-0.2-{seed}"})
        write_record(tmp_path, {**record("dpo", "random", 0.0, seed, timings={"total": 2.0}), "method": "clean",
                                "loss_label": "DPO + oracle cleaner (remove)", "cell_id": f"clean-0-{seed}",
                                "borrowed_from": {"cell_id": f"syn-dpo-random-0.0-{seed}", "sweep": "syn",
                                                  "timings": {"total": 100.0}}})
    out = build_report(tmp_path, tmp_path / "rep")
    cost = pd.read_csv(out["out"] / "cost.csv").set_index("loss")
    assert cost.loc["DPO + oracle cleaner (remove)", "median s per cell"] == 100.0  # not 2 s: the twin's run
    text = (out["out"] / "report.md").read_text()
    assert "Recorded compute: 0.11 h over 6 records" in text  # 4 runs of 100 s and two cells of 2 s: 404 s
    assert "2 cell(s) of DPO + oracle cleaner (remove) named no pair to clean" in text


def test_side_by_side_headline_keeps_a_method_apart_from_its_loss_and_shows_every_rule(tmp_path):
    """A method wrapping DPO (same loss key, its own label) gets its own row; a second realistic rule its column."""
    root = _tuned_results(tmp_path / "results")
    srcs = {"oracle": {"source": "tuning", "criterion": "oracle", "sweep": "tz"},
            "val_rm": {"source": "tuning", "criterion": "val_rm", "sweep": "tz"}}
    for seed in (100, 101, 102):
        for h, src in srcs.items():
            m = {"gold_reward": 5.0 + seed, "gold_reward_ref": 0.5}
            write_record(root, {**record("dpo", "random", 0.4, seed, metrics=m, sweep=f"m_{h}"), "method": "curriculum",
                                "loss_label": "DPO + curriculum", "cell_id": f"m-{seed}-{h}", "hp_source": src})
    text = (build_report(root)["out"] / "report.md").read_text()
    side = text[text.index("### The headline, side by side"):]
    assert "| loss | paper defaults | tuned, rule oracle | tuned, rule val_acc | tuned, rule val_rm |" in side
    row = next(line for line in side.splitlines() if line.startswith("| DPO + curriculum |"))
    assert "106 ± " in row and "(n=3)" in row  # mean of 5 + 100..102, not pooled with DPO's cells
    dpo = next(line for line in side.splitlines() if line.startswith("| dpo |"))
    assert "106" not in dpo


def test_a_tuned_baseline_is_the_loss_itself_not_a_method_wrapping_it():
    from bench.report.stats import resolve_baseline

    cells = pd.DataFrame({"loss": ["dpo", "dpo", "ipo"], "hp": ["oracle"] * 3,
                          "label": ["DPO + curriculum [oracle]", "DPO [oracle]", "IPO [oracle]"],
                          "curve": ["DPO + curriculum", "DPO", "IPO"]})
    base, note = resolve_baseline(cells, "dpo")
    assert base == "DPO [oracle]" and "DPO + curriculum [oracle]" in note
    assert resolve_baseline(cells.iloc[[0, 2]], "dpo")[0] == "DPO + curriculum [oracle]"  # the only dpo curve left


def test_a_tuned_variant_that_differs_between_conditions_stays_one_curve(tmp_path):
    """f-DPO's divergence picked per condition: one curve "f-DPO [oracle]", no missing cells; defaults keep the name."""
    for rate, div in ((0.0, "js"), (0.4, "alpha")):
        for seed in SEEDS:
            src = {"source": "tuning", "criterion": "oracle", "values": {"loss.divergence": div, "loss.beta": 0.1}}
            for loss, label in (("fdpo", f"f-DPO ({div})"), ("dpo", "DPO")):
                write_record(tmp_path, {**record(loss, "random", rate, seed, metrics={"gold_reward": 0.1 * seed}),
                                        "loss_label": label, "hp_source": src,
                                        "cell_id": f"{loss}-{rate}-{seed}"})
    write_record(tmp_path, {**record("fdpo", "random", 0.0, 0, metrics={"gold_reward": 0.0}, sweep="alone"), "loss_label": "f-DPO (js)",
                            "cell_id": "d"})
    res = load_results(tmp_path)
    assert set(res.cells["label"]) == {"f-DPO [oracle]", "DPO [oracle]", "f-DPO (js)"}
    assert res.missing.empty


def test_records_of_one_condition_with_different_settings_stay_apart(tmp_path):
    """Two experiments (8 epochs at lr 5e-5, 1 epoch at 2e-4) at the same loss, noise, rate and seed are two curves
    labelled by what differs, never one merged (or dropped) record; an older code version is superseded."""
    def cfg(epochs, lr, every=None):
        return {"train": {"epochs": epochs, "learning_rate": lr, "threads": 1}, "data": {"kind": "world"},
                "eval": {"checkpoints": {"every": every, "unit": "steps"}} if every else {}}
    for seed in (0, 1):
        write_record(tmp_path, record("dpo", "random", 0.4, seed, cell_id=f"long{seed}", config=cfg(8, 5e-5, every=86),
                                      metrics={"gold_reward": 0.3}))
        write_record(tmp_path, record("dpo", "random", 0.4, seed, cell_id=f"short{seed}", config=cfg(1, 2e-4),
                                      metrics={"gold_reward": 0.1}))
    write_record(tmp_path, record("dpo", "random", 0.4, 0, cell_id="oldcode", finished_at="2024-01-01",
                                  config=cfg(1, 2e-4), metrics={"gold_reward": 9.0}))
    res = load_results(tmp_path)
    labels = dict(zip(res.cells["cell_id"], res.cells["label"]))
    assert labels == {"long0": "dpo [epochs=8, lr=5e-05]", "long1": "dpo [epochs=8, lr=5e-05]",
                      "short0": "dpo [epochs=1, lr=0.0002]", "short1": "dpo [epochs=1, lr=0.0002]"}
    assert any("differ in their settings" in n for n in res.notes) and any("superseded" in n for n in res.notes)
    means = res.values.groupby("label")["value"].mean()
    assert means["dpo [epochs=8, lr=5e-05]"] == 0.3 and means["dpo [epochs=1, lr=0.0002]"] == 0.1


def test_a_scale_injectors_strengths_are_neither_merged_nor_split_into_curves(tmp_path):
    """Two strengths of an injector without a rate (gaussian_reward's sigma) are two records of the same (label,
    noise, no rate, seed): the tables leave both out and count both, no curve is named after sigma."""
    for sigma in (0.3, 1.0):
        cfg = {"noise": {"name": "gaussian_reward", "sigma": sigma, "rate": None}, "train": {"epochs": 1}}
        write_record(tmp_path, record("dpo", "gaussian_reward", None, 0, cell_id=f"s{sigma}", config=cfg,
                                      metrics={"gold_reward": sigma}, noise_stats={}))
    res = load_results(tmp_path)
    assert sorted(res.cells["cell_id"]) == ["s0.3", "s1.0"] and set(res.cells["label"]) == {"dpo"}
    assert any("2 record(s) of a noisy condition have no rate" in n for n in res.notes)
    assert not any("superseded" in n or "differ in their settings" in n for n in res.notes)


def test_a_report_on_cells_that_all_failed_lists_them(tmp_path):
    """Every cell failed (a sweep stopped by a bad setting): the report still says which and why, no crash."""
    for seed in range(2):
        write_record(tmp_path, record("dpo", "random", 0.2, seed, status="failed",
                                      error={"type": "OutOfMemoryError", "message": "CUDA out of memory", "where": "train"}))
    out = build_report(tmp_path, tmp_path / "rep")
    md = (out["out"] / "report.md").read_text()
    assert "**2 failed**" in md and "OutOfMemoryError" in md
