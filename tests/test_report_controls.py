"""The report's controls (``bench.report.controls``) on synthetic records with known answers.

The study: seeds 0-4; the clean condition (noise none, rate 0: rate 0 of every noise type) and noise random and
length at rates 0.2 and 0.4. DPO scores 1 - rate + E[seed]; every other curve is DPO plus a known difference:
    oracle cleaner (positive control): 0 at rate 0, SYM[seed] at 0.2 (mean 0), 0.1 + N[seed] at 0.4 (mean 0.1)
    random cleaner (negative control): R[seed] at rates above 0 (mean 0)
    cDPO: 0.125 * rate (half the headroom at 0.4)     rDPO: 0.5 * rate (slope 0.5, every seed)
    IPO:  0.03 + J[seed] at every rate (slope 0)       ROPO: (0.3 + K[seed]) * rate (slopes 0.3 + K, mean 0.3)
cDPO's random @ 0.2 cell of seed 4 is missing (that seed is left out of cDPO's random slope).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import record

from bench.core.records import write_record
from bench.report import build_report
from bench.report.aggregate import load_results
from bench.report.controls import controls_of, seed_slopes
from bench.report.stats import holm

SEEDS = range(5)
E = (-0.2, -0.1, 0.0, 0.1, 0.2)
SYM = (-0.05, -0.02, 0.0, 0.02, 0.05)
N = (-0.01, 0.005, 0.0, -0.005, 0.01)
R = (0.002, -0.002, 0.001, -0.001, 0.0)
J = (-0.02, -0.01, 0.0, 0.01, 0.02)
K = (-0.1, -0.05, 0.0, 0.05, 0.1)
ORACLE, RANDOM = "DPO + oracle cleaner (remove)", "DPO + random cleaner (remove)"
CONDITIONS = (("none", 0.0), ("random", 0.2), ("random", 0.4), ("length", 0.2), ("length", 0.4))
DROPPED = ("cDPO", "random", 0.2, 4)


def diff(label, rate, s):
    """Each curve minus DPO on seed ``s`` at ``rate``."""
    oracle = 0.0 if rate == 0 else SYM[s] if rate == 0.2 else 0.1 + N[s]
    return {"DPO": 0.0, ORACLE: oracle, RANDOM: R[s] if rate > 0 else 0.0, "cDPO": 0.125 * rate,
            "rDPO": 0.5 * rate, "IPO": 0.03 + J[s], "ROPO": (0.3 + K[s]) * rate}[label]


ARMS = {"DPO": ("dpo", {}), ORACLE: ("dpo", {"method": "clean", "control": "positive",
                                             "clean": {"config": {"detector": "oracle", "action": "remove"}}}),
        RANDOM: ("dpo", {"method": "clean", "control": "negative",
                         "clean": {"config": {"detector": "random", "action": "remove"}}}),
        "cDPO": ("cdpo", {}), "rDPO": ("rdpo", {}), "IPO": ("ipo", {}), "ROPO": ("ropo", {})}


def write_study(root, labels=tuple(ARMS), conditions=CONDITIONS):
    for label in labels:
        loss, extra = ARMS[label]
        for noise, rate in conditions:
            for s in SEEDS:
                if (label, noise, rate, s) == DROPPED:
                    continue
                m = {"gold_reward": 1 - rate + E[s] + diff(label, rate, s)}
                write_record(root, record(loss, noise, rate, s, metrics=m, loss_label=label, **extra,
                                          cell_id=f"{label}-{noise}-{rate}-{s}"))
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_study(tmp_path_factory.mktemp("controls"))


@pytest.fixture(scope="module")
def controls(study):
    return controls_of(load_results(study), "DPO", "gold_reward")


# --------------------------------------------------------------------------------------------------- headroom
def test_the_positive_control_is_the_oracle_cleaner_wrapping_dpo(controls):
    assert controls["positive"] == ORACLE and controls["controls_note"] == ""


def test_headroom_interval_and_mde_where_the_oracle_gains(controls):
    h = controls["headroom"].set_index(["noise", "rate"])
    row = h.loc[("random", 0.4)]
    d = np.array([0.1 + n for n in N])
    lo, hi = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert row["n_pairs"] == 5 and row["headroom"] == pytest.approx(0.1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi)) and row["ci_low"] > 0
    assert row["mde_80"] == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * d.std(ddof=1) / 5 ** 0.5)
    assert row["p"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    assert not row["no_gain_detectable"]


def test_headroom_interval_holding_zero_flags_the_condition(controls):
    h = controls["headroom"].set_index(["noise", "rate"])
    sym = h.loc[("random", 0.2)]  # oracle - DPO symmetric around 0
    assert sym["headroom"] == pytest.approx(0.0, abs=1e-12) and sym["ci_low"] < 0 < sym["ci_high"]
    assert sym["no_gain_detectable"]
    zero = h.loc[("random", 0.0)]  # the clean cells, rate 0 of every noise type: the oracle names no pair
    assert zero["headroom"] == 0 and zero["no_gain_detectable"] and "identical" in zero["note"]
    assert set(h.index) == {(n, r) for n in ("length", "random") for r in (0.0, 0.2, 0.4)}


def test_share_of_the_headroom(controls):
    s = controls["share"].set_index(["noise", "rate", "label"])
    assert s.loc[("random", 0.4, "cDPO"), "share"] == pytest.approx(0.5)
    assert s.loc[("random", 0.4, "rDPO"), "share"] == pytest.approx(2.0)
    assert s.loc[("random", 0.4, "IPO"), "share"] == pytest.approx(0.3)
    rnd = s.loc[("random", 0.4, RANDOM)]
    assert rnd["control"] == "negative" and abs(rnd["share"]) < 0.01
    assert ORACLE not in set(controls["share"]["label"]) and "DPO" not in set(controls["share"]["label"])
    no_room = s.loc[("random", 0.2, "cDPO")]  # DPO's seed 4 has no cDPO partner: 4 pairs
    assert np.isnan(no_room["share"]) and "interval holds 0" in no_room["note"] and no_room["n_pairs"] == 4


def test_no_oracle_cleaner_no_headroom_one_line(tmp_path):
    write_study(tmp_path, labels=("DPO", "IPO"), conditions=(("random", 0.4),))
    out = build_report(tmp_path)
    a = out["analyses"][0]
    assert a["headroom"].empty and a["share"].empty and "no oracle cleaner" in a["controls_note"]
    text = (out["out"] / "report.md").read_text()
    section = text.split("### Could this condition show a gain? (gold_reward)")[1].split("###")[0]
    assert section.strip() == ("no oracle cleaner (the positive control) wrapping DPO among these cells: no "
                               "headroom.")
    section = text.split("### Does the gap to DPO grow with the noise rate? (gold_reward)")[1].split("###")[0]
    assert "two or more rates" in section and "|" not in section  # one rate: no slope, one line
    assert pd.read_csv(out["out"] / "interaction.csv")["slope"].isna().all()


# ------------------------------------------------------------------------------------------ interaction contrast
def test_slope_of_the_gap_per_arm(controls):
    t = controls["interaction"]
    t = t[t["metric"] == "gold_reward"].set_index(["noise", "label"])
    r = t.loc[("random", "rDPO")]  # 0.5 * rate on every seed: the interval collapses on 0.5
    assert r["slope"] == pytest.approx(0.5) and r["ci_low"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5)
    assert r["rates"] == "0,0.2,0.4" and r["n_seeds"] == 5 and r["p"] == 0.0
    ipo = t.loc[("random", "IPO")]  # constant gap: zero slope
    assert ipo["slope"] == pytest.approx(0.0, abs=1e-9) and ipo["p"] == 1.0
    ropo = t.loc[("length", "ROPO")]
    slopes = 0.3 + np.array(K)
    lo, hi = stats.t.interval(0.95, 4, loc=slopes.mean(), scale=stats.sem(slopes))
    assert ropo["slope"] == pytest.approx(0.3) and (ropo["ci_low"], ropo["ci_high"]) == pytest.approx((lo, hi))
    assert ropo["p"] == pytest.approx(stats.ttest_1samp(slopes, 0).pvalue)
    c = t.loc[("random", "cDPO")]  # seed 4 lacks random @ 0.2: left out, not fitted on two rates
    assert (c["n_seeds"], c["n_dropped"]) == (4, 1) and "1 seed(s) lacking a rate" in c["note"]
    assert t.loc[("length", "cDPO"), "n_seeds"] == 5 and t.loc[("random", RANDOM), "control"] == "negative"


def test_the_slope_is_read_with_where_the_loss_stands_at_the_lowest_and_highest_rate(controls):
    """A slope in a loss's favour is an advantage that grows only if the loss is better at the highest rate; from a
    loss that is worse on the cleanest labels and level at the highest, it is a gap that closes."""
    from bench.report.controls import _reading, _stand

    t = controls["interaction"]
    t = t[t["metric"] == "gold_reward"].set_index(["noise", "label"])
    r = t.loc[("random", "rDPO")]  # 0 at rate 0, +0.2 at 0.4 on every seed
    assert (r["at_lowest"], r["at_highest"]) == ("level", "better")
    assert r["reading"] == "gains on DPO as the noise grows: level at 0, better at 0.4"
    assert t.loc[("random", "IPO"), "reading"] == "no trend shown"  # a constant gap: slope 0
    assert _stand(pd.Series([-0.3, -0.2, -0.25]), 1.0) == "worse" and _stand(pd.Series([-0.3, -0.2, -0.25]), -1.0) == "better"
    assert _stand(pd.Series([-0.1, 0.1, 0.05]), 1.0) == "level" and _stand(pd.Series([0.1]), 1.0) == ""
    assert _stand(pd.Series([0.1, 0.2]), None) == ""  # no better direction
    row = dict(rates="0,0.2,0.4", slope=0.5, p_holm=0.001, baseline="DPO", at_lowest="worse", at_highest="level",
               n_seeds=5)
    assert _reading(row, 1.0) == "the gap closes: worse at 0, level at 0.4"
    assert _reading({**row, "at_highest": "better"}, 1.0) == "gains on DPO as the noise grows: worse at 0, better at 0.4"
    assert _reading({**row, "at_lowest": "better"}, 1.0) == "trends its way: better at 0, level at 0.4"
    assert _reading({**row, "p_holm": 0.2}, 1.0) == "no trend shown"
    assert _reading(row, None) == "" and _reading({**row, "n_seeds": 1}, 1.0) == ""
    # a lower-is-better metric: a rising difference is against the loss
    assert _reading({**row, "at_lowest": "better", "at_highest": "level"}, -1.0) == "its lead shrinks: better at 0, level at 0.4"
    assert _reading({**row, "at_lowest": "level", "at_highest": "worse"}, -1.0) == \
        "loses ground as the noise grows: level at 0, worse at 0.4"
    assert _reading({**row, "at_lowest": "worse", "at_highest": "level"}, -1.0) == "trends against it: worse at 0, level at 0.4"


def test_holm_over_the_arms_of_one_noise_type_only(controls):
    t = controls["interaction"]
    assert len(t) == 2 * 6  # two noise types x six curves besides DPO, one contrast each
    for noise in ("random", "length"):
        g = t[t["noise"] == noise]
        assert np.allclose(g["p_holm"], holm(g["p"].to_numpy()))
    both = dict(zip(zip(t["noise"], t["label"]), holm(t["p"].to_numpy())))
    ropo = t[(t["noise"] == "random") & (t["label"] == "ROPO")]
    assert ropo["p_holm"].iloc[0] < both[("random", "ROPO")]  # not one family over both noise types


def test_seed_slopes_by_hand():
    pairs = pd.DataFrame({"seed": [0, 0, 0, 1, 1], "rate": [0.0, 0.2, 0.4, 0.0, 0.4], "diff": [0, 0.1, 0.2, 1, 1]})
    slopes, rates, dropped = seed_slopes(pairs)
    assert rates == [0.0, 0.2, 0.4] and dropped == 1 and slopes.to_dict() == {0: pytest.approx(0.5)}
    none, rates, _ = seed_slopes(pairs[pairs["rate"] == 0.4])
    assert none.empty and rates == [0.4]


# ------------------------------------------------------------------------------------------------ the report
def test_report_has_both_sections_before_the_per_rate_tests_and_their_csvs(study, tmp_path):
    out = build_report(study, tmp_path / "rep")
    md = (out["out"] / "report.md").read_text()
    gain = md.index("### Could this condition show a gain? (gold_reward)")
    grow = md.index("### Does the gap to DPO grow with the noise rate? (gold_reward)")
    assert gain < grow < md.index("### Paired tests vs DPO")
    assert "no: no loss can be declared better" in md and "| random | 0.4 | 5 | 0.1 [" in md
    assert "| rDPO |  | 0,0.2,0.4 | 5 | 0.5 [0.5, 0.5] |" in md
    html = (out["out"] / "report.html").read_text()
    assert "Could this condition show a gain?" in html and "Does the gap to DPO grow" in html
    h = pd.read_csv(out["out"] / "headroom.csv")
    assert len(h) == 6 and set(h["hp"]) == {"default"} and set(h["control"]) == {ORACLE}
    share = pd.read_csv(out["out"] / "headroom_share.csv")
    row = share[(share["noise"] == "length") & (share["rate"] == 0.4) & (share["label"] == "cDPO")]
    assert row["share"].iloc[0] == pytest.approx(0.5)
    inter = pd.read_csv(out["out"] / "interaction.csv")
    assert len(inter) == 12 and {"slope", "ci_low", "ci_high", "p", "p_holm", "n_seeds"} <= set(inter.columns)
    assert "`headroom.csv`" in md and "`interaction.csv`" in md


def test_the_primary_table_joins_the_slope_the_per_rate_differences_and_the_shares(study, tmp_path):
    """One row per noise type and curve: the interaction contrast, the paired difference at each rate and the share
    of the headroom, each as the report's own tables give it; in the report before its parts."""
    out = build_report(study, tmp_path / "rep")
    p = pd.read_csv(out["out"] / "primary.csv").set_index(["noise", "label"])
    inter = pd.read_csv(out["out"] / "interaction.csv")
    inter = inter[inter["metric"] == "gold_reward"].set_index(["noise", "label"])
    assert len(p) == 2 * 6 and set(p["control"].fillna("")) == {"", "positive", "negative"}
    r = p.loc[("random", "rDPO")]  # 0.5 * rate on every seed; the headroom at 0.4 is 0.1 (mean over seeds)
    assert r["slope"] == pytest.approx(0.5) and r["reading"] == inter.loc[("random", "rDPO"), "reading"]
    assert r["diff@0.4"] == pytest.approx(0.2) and r["diff@0.2"] == pytest.approx(0.1) and r["diff@0.0"] == 0
    assert r["share@0.4"] == pytest.approx(2.0) and pd.isna(r.get("share@0.2"))  # no headroom at 0.2 (mean 0)
    assert p.loc[("length", "cDPO"), "share@0.4"] == pytest.approx(0.5)
    assert p.loc[("random", "IPO"), "slope_p_holm"] == inter.loc[("random", "IPO"), "p_holm"]
    md = (out["out"] / "report.md").read_text()
    first = md.index("### The primary table (gold_reward, against DPO)")
    assert first < md.index("### Could this condition show a gain? (gold_reward)")
    assert "**random**: headroom (DPO + oracle cleaner (remove) minus DPO) at " in md


def test_each_noise_types_primary_table_shows_its_own_rates_and_a_missing_headroom_says_so(tmp_path):
    root = tmp_path / "uneven"
    write_study(root, conditions=(("none", 0.0), ("random", 0.2), ("random", 0.4), ("length", 0.2)))
    out = build_report(root, tmp_path / "rep")
    md = (out["out"] / "report.md").read_text()
    block = md[md.index("### The primary table"):md.index("### Could this condition show a gain?")]
    length, random = block[block.index("**length**"):block.index("**random**")], block[block.index("**random**"):]
    assert "diff at 0.2" in length and "diff at 0.4" not in length and "diff at 0.4" in random
    p = pd.read_csv(out["out"] / "primary.csv")
    cols = [c for c in p.columns if c.startswith("diff@") and "_" not in c]
    assert cols == ["diff@0.0", "diff@0.2", "diff@0.4"]  # by rate, whatever order the rows came in
    bare = tmp_path / "bare"
    write_study(bare, labels=("DPO", "cDPO"))  # no oracle cleaner: no headroom, said once
    md = (build_report(bare, tmp_path / "rep2")["out"] / "report.md").read_text()
    block = md[md.index("### The primary table"):md.index("### Could this condition show a gain?")]
    assert "[, ]" not in block and "**random**: no oracle cleaner" in block


def test_the_answer_names_the_arms_whose_advantage_grows_and_the_gaps_that_only_close(study, tmp_path):
    """The primary question in words, per noise type: 'yes' with the arms whose slope is theirs and who lead at the
    highest rate; 'no' when the only slopes in an arm's favour come from a gap that closes (each with where it
    stands at the ends); the best share of the headroom, and none when the best is not above 0."""
    md = (build_report(study, tmp_path / "rep")["out"] / "report.md").read_text()
    said = md[md.index("*The answer (random)*"):].split("\n")[0]
    assert "**yes** for 3 of 4 arms" in said and "ROPO (slope 0.3 [" in said and "No trend shown: 1 of 4." in said
    assert "IPO" not in said.split("No trend shown")[0] and "at 0.4, 2 (rDPO: 0.2 [0.2, 0.2], significant after Holm)" in said
    closing = tmp_path / "closing"  # SimPO: 0.2 below DPO on clean labels, level at 0.4 (a gap that closes);
    write_study(closing, labels=("DPO", ORACLE), conditions=CONDITIONS[:3])  # SLiC: 0.3 below, still below at 0.4
    for noise, rate in CONDITIONS[:3]:
        for s in SEEDS:
            for loss, label, d in (("simpo", "SimPO", -0.2 + 0.5 * rate + 0.1 * J[s]),
                                   ("hinge", "SLiC", -0.3 + 0.5 * rate + 0.1 * J[s])):
                m = {"gold_reward": 1 - rate + E[s] + d}
                write_record(closing, record(loss, noise, rate, s, metrics=m, loss_label=label,
                                             cell_id=f"{loss}-{noise}-{rate}-{s}"))
    md = (build_report(closing, tmp_path / "rep2")["out"] / "report.md").read_text()
    said = md[md.index("*The answer (random)*"):].split("\n")[0]
    assert said.startswith("*The answer (random)*: **no** arm's advantage over DPO grows with the rate (a slope read for 2 of 2 arms;")
    assert ("Other slopes with Holm p < 0.05: SLiC (the gap closes: worse at 0, worse at 0.4); SimPO (the gap "
            "closes: worse at 0, level at 0.4). No trend shown: 0 of 2.") in said
    assert said.endswith("recovers: at 0.4, none (the best, SimPO: 0, 0 [-0.001963, 0.001963]).")


def test_the_answer_without_arms_or_with_one_seed(tmp_path):
    bare = tmp_path / "bare"  # the controls alone: nothing to answer, said so (and a headroom is still shown)
    write_study(bare, labels=("DPO", ORACLE, RANDOM), conditions=CONDITIONS[:3])
    md = (build_report(bare, tmp_path / "rep")["out"] / "report.md").read_text()
    assert "*The answer (random)*: no arm but the controls is paired with the baseline." in md
    one = tmp_path / "one"  # one seed: no intervals, no slopes read; the table and the answer still stand
    for label in ("DPO", "IPO", "cDPO"):
        loss, extra = ARMS[label]
        for noise, rate in CONDITIONS[:3]:
            m = {"gold_reward": 1 - rate + diff(label, rate, 0)}
            write_record(one, record(loss, noise, rate, 0, metrics=m, loss_label=label, **extra,
                                     cell_id=f"{label}-{noise}-{rate}-0"))
    md = (build_report(one, tmp_path / "rep1")["out"] / "report.md").read_text()
    said = md[md.index("*The answer (random)*"):].split("\n")[0]
    assert "No slope read (too few seeds or rates, or no better direction): IPO, cDPO." in said
    assert "| cDPO |  |" in md[md.index("### The primary table"):]
