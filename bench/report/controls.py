"""Could a condition show a gain at all, and does a loss's gap to the baseline grow with the noise rate?

Headroom: the oracle cleaner (``method=clean``, detector ``oracle``: the record's ``control`` is ``positive``) trains
the baseline loss on exactly the pairs the injector left unflipped. What it gains over the baseline (DPO), paired
over seeds, is as much as removing the noise could give in that condition; where its interval holds 0, these seeds
cannot tell any loss from DPO there, whatever the loss. Every other curve's mean paired difference is then a share
of that headroom (the random cleaner, the negative control, should be near 0).

Interaction contrast: per curve and noise type, each seed's least-squares slope of (loss minus DPO) over the noise
rate; their mean over seeds is the one test of "robust to noise" per loss (Holm over the losses of a noise type and
metric), beside the per-rate paired tests (``stats.paired_vs_baseline``) that ask it once per rate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.core.metrics import compared
from bench.report import plots
from bench.report.aggregate import Results, direction, in_condition
from bench.report.analysis import Analysis
from bench.report.render import fmt, fmt_p
from bench.report.stats import holm, interval_and_mde, paired_differences, paired_test

HEADROOM_COLS = ["metric", "noise", "rate", "baseline", "control", "n_pairs", "headroom", "sd", "ci_low", "ci_high",
                 "mde_80", "p", "no_gain_detectable", "note"]
SHARE_COLS = ["metric", "noise", "rate", "label", "control", "n_pairs", "mean_diff", "headroom", "share", "note"]
INTERACTION_COLS = ["metric", "noise", "label", "control", "baseline", "rates", "n_seeds", "n_dropped", "slope", "sd",
                    "ci_low", "ci_high", "mde_80", "p", "p_holm", "at_lowest", "at_highest", "reading", "note"]
ALPHA = 0.05
SIGN = {"higher": 1.0, "lower": -1.0}
REMOVE = "remove"  # of several oracle cleaners wrapping the baseline (remove, flip, weight), the one that is the control


# ------------------------------------------------------------------------------------------------ the controls
def control_arms(res: Results) -> pd.DataFrame:
    """One row per curve: ``label``, ``loss`` (the loss key it trains with), ``control`` (``positive`` for the oracle
    cleaner, ``negative`` for the random one, empty for every other curve) and the cleaner's ``action``."""
    by_id = {r.get("cell_id"): (r.get("control") or "", ((r.get("clean") or {}).get("config") or {}).get("action"))
             for r in res.records}
    rows = [dict(label=lab, loss=loss, control=by_id.get(cid, ("", None))[0], action=by_id.get(cid, ("", None))[1])
            for cid, lab, loss in zip(res.cells["cell_id"], res.cells["label"], res.cells["loss"])]
    return pd.DataFrame(rows, columns=["label", "loss", "control", "action"]).drop_duplicates("label")


def positive_control(arms: pd.DataFrame, baseline: str | None) -> tuple[str | None, str]:
    """The oracle cleaner wrapping the baseline's loss (``DPO + oracle cleaner (remove)``), and a note when there is
    none or several (then the one that removes the named pairs, else the first by name)."""
    if baseline is None or baseline not in set(arms["label"]):
        return None, "no baseline: no headroom."
    loss = arms.loc[arms["label"] == baseline, "loss"].iloc[0]
    cand = arms[(arms["control"] == "positive") & (arms["loss"] == loss)]
    if cand.empty:
        return None, f"no oracle cleaner (the positive control) wrapping {baseline} among these cells: no headroom."
    cand = cand.assign(_rank=cand["action"] != REMOVE).sort_values(["_rank", "label"])
    chosen = cand["label"].iloc[0]
    note = f"several oracle cleaners ({', '.join(cand['label'])}); the headroom is {chosen!r}'s." if len(cand) > 1 else ""
    return chosen, note


def _mean_interval(x) -> dict:
    """Mean of per-seed figures with its 95% t interval, the 80%-power MDE for that many seeds, and the one-sample
    t-test p against 0 (``stats.paired_test``: a constant figure has sd 0, a zero-width interval and p 0; its
    Wilcoxon p is not used here, nor its note)."""
    t = paired_test(x)
    half, mde = interval_and_mde(t["sd_diff"], t["n_pairs"])
    return dict(n=t["n_pairs"], mean=t["mean_diff"], sd=t["sd_diff"], ci_low=t["mean_diff"] - half,
                ci_high=t["mean_diff"] + half, mde_80=mde, p=t["p"],
                note="; ".join(x for x in t["note"].split("; ") if x and "Wilcoxon" not in x))


# --------------------------------------------------------------------------------------------------- headroom
def headroom_table(res: Results, baseline: str | None, metric: str, positive: str | None) -> pd.DataFrame:
    """Per (noise, rate) of the baseline: the headroom, i.e. the mean over seeds of (oracle cleaner minus baseline),
    in the metric's better direction (baseline minus oracle for a lower-is-better metric), on the seeds both have;
    its 95% t interval, the smallest difference these seeds detect with 80% power (``mde_80``), and
    ``no_gain_detectable``: the interval holds 0, so no loss can be declared better than the baseline there (empty
    with fewer than 2 paired seeds: no interval)."""
    sign = SIGN.get(direction((res.metric_info.get(metric) or {}).get("higher_is_better")))
    v = res.values[res.values["metric"] == metric]
    if positive is None or sign is None or baseline not in set(v["label"]):
        return pd.DataFrame(columns=HEADROOM_COLS)
    d = paired_differences(v, baseline)
    d = d[d["label"] == positive]
    rows = []
    for noise, rate in v.loc[v["label"].isin([baseline, positive]), ["noise", "rate"]].drop_duplicates().itertuples(index=False):
        s = _mean_interval(sign * d.loc[in_condition(d, noise, rate), "diff"])
        flag = None if s["n"] < 2 else bool(not s["ci_low"] > 0 and not s["ci_high"] < 0)
        note = "no oracle cleaner and baseline cells on the same seed" if s["n"] == 0 else s["note"]
        rows.append(dict(metric=metric, noise=noise, rate=rate, baseline=baseline, control=positive, n_pairs=s["n"],
                         headroom=s["mean"], **{k: s[k] for k in ("sd", "ci_low", "ci_high", "mde_80", "p")},
                         no_gain_detectable=flag, note=note))
    return pd.DataFrame(rows, columns=HEADROOM_COLS).sort_values(["noise", "rate"]).reset_index(drop=True)


def share_table(res: Results, baseline: str | None, headroom: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """Per condition with a headroom and each other curve: ``share`` = its mean paired difference to the baseline
    (``mean_diff``, on its own seeds: the per-rate paired test's figure), in the better direction, over the headroom.
    1 is all the oracle cleaner gains, 0 nothing, below 0 worse than the baseline. NaN (said in ``note``) where the
    headroom's interval holds 0 or it is not above 0: there is no gain to take a share of."""
    if headroom.empty:
        return pd.DataFrame(columns=SHARE_COLS)
    metric, positive = headroom["metric"].iloc[0], headroom["control"].iloc[0]
    sign = SIGN[direction((res.metric_info.get(metric) or {}).get("higher_is_better"))]
    d = paired_differences(res.values[res.values["metric"] == metric], baseline)
    d = d[d["label"] != positive]
    kind = dict(zip(arms["label"], arms["control"]))
    rows = []
    for (noise, rate, label), g in d.groupby(["noise", "rate", "label"], sort=True, dropna=False):
        h = headroom[in_condition(headroom, noise, rate)]
        room, why = _room(h)
        rows.append(dict(metric=metric, noise=noise, rate=rate, label=label, control=kind.get(label, ""),
                         n_pairs=len(g), mean_diff=g["diff"].mean(), headroom=room,
                         share=sign * g["diff"].mean() / room if not why else np.nan, note=why))
    return pd.DataFrame(rows, columns=SHARE_COLS)


def _room(h: pd.DataFrame) -> tuple[float, str]:
    """(the headroom of one condition's row, why it cannot be divided by: empty when it can)."""
    if h.empty:
        return np.nan, "no headroom measured in this condition"
    room, flag = float(h["headroom"].iloc[0]), h["no_gain_detectable"].iloc[0]
    if flag is None or pd.isna(flag):
        return room, "no headroom interval (fewer than 2 paired seeds)"
    if bool(flag):
        return room, "no headroom: its interval holds 0"
    return room, "" if room > 0 else "headroom not above 0 (the oracle cleaner does worse)"


# ------------------------------------------------------------------------------------------ interaction contrast
def seed_slopes(pairs: pd.DataFrame) -> tuple[pd.Series, list[float], int]:
    """(each seed's least-squares slope of ``diff`` on ``rate``, the rates, seeds dropped) for one curve, noise type
    and metric. The rates are every rate the curve is paired with the baseline at; a seed lacking one of them is
    dropped, so every slope is fitted on the same design. Fewer than 2 rates: no slope."""
    rates = sorted(pairs["rate"].unique())
    if len(rates) < 2:
        return pd.Series(dtype=float), rates, pairs["seed"].nunique()
    slopes = {seed: float(np.polyfit(g["rate"], g["diff"], 1)[0])
              for seed, g in pairs.groupby("seed") if sorted(g["rate"]) == rates}
    return pd.Series(slopes, dtype=float), rates, pairs["seed"].nunique() - len(slopes)


def interaction_table(res: Results, baseline: str | None, arms: pd.DataFrame) -> pd.DataFrame:
    """Per compared metric, noise type and curve other than the baseline: ``slope`` = the mean over seeds of each
    seed's slope of (loss minus baseline) over the noise rate (metric units per unit of rate: 0.5 is +0.05 per 0.1 of
    rate), its 95% t interval and MDE (80% power), ``p`` (one-sample t-test of the slopes against 0) and ``p_holm``:
    Holm over the curves of one noise type and metric, one contrast each. The clean condition's rate-0 cells are rate
    0 of every noise type (``aggregate._broadcast_clean``)."""
    v = res.values
    if baseline is None or v.empty or baseline not in set(v["label"]):
        return pd.DataFrame(columns=INTERACTION_COLS)
    v = v[v["metric"].isin({m for m in v["metric"].unique() if compared(res.metric_info.get(m), m)})]
    kind = dict(zip(arms["label"], arms["control"]))
    rows = []
    for (metric, noise, label), g in paired_differences(v, baseline).groupby(["metric", "noise", "label"], sort=True):
        slopes, rates, dropped = seed_slopes(g)
        s = _mean_interval(slopes)
        note = s["note"] if len(rates) >= 2 else f"fewer than 2 rates paired with {baseline}: no slope"
        if dropped and len(rates) >= 2:
            note = "; ".join(filter(None, [note, f"{dropped} seed(s) lacking a rate left out"]))
        sign = _sign(res, metric)
        used = g[g["seed"].isin(slopes.index)]  # the seeds the slope was fitted on
        ends = [_stand(used[used["rate"] == r]["diff"], sign) for r in (rates[0], rates[-1])] if len(slopes) else ["", ""]
        rows.append(dict(metric=metric, noise=noise, label=label, control=kind.get(label, ""), baseline=baseline,
                         rates=",".join(f"{r:g}" for r in rates), n_seeds=s["n"], n_dropped=dropped, slope=s["mean"],
                         **{k: s[k] for k in ("sd", "ci_low", "ci_high", "mde_80", "p")}, at_lowest=ends[0],
                         at_highest=ends[1], note=note))
    out = pd.DataFrame(rows, columns=INTERACTION_COLS)
    out["p_holm"] = out.groupby(["metric", "noise"])["p"].transform(holm) if not out.empty else out["p"]
    if not out.empty:
        out["reading"] = [_reading(r, _sign(res, r["metric"])) for r in out.to_dict("records")]
    return out


def _sign(res: Results, metric: str) -> float | None:
    """+1 where higher is better, -1 where lower is, None for a metric with no better direction."""
    return SIGN.get(direction((res.metric_info.get(metric) or {}).get("higher_is_better")))


def _stand(diffs: pd.Series, sign: float | None) -> str:
    """Where a curve stands against the baseline at one rate, in the metric's better direction: ``better`` or
    ``worse`` where the 95% t interval of its paired differences (unadjusted) is clear of 0, else ``level``; empty
    for a metric with no better direction or fewer than 2 seeds."""
    s = _mean_interval(diffs)
    if sign is None or not (np.isfinite(s["ci_low"]) and np.isfinite(s["ci_high"])):
        return ""
    lo, hi = sorted((sign * s["ci_low"], sign * s["ci_high"]))
    return "better" if lo > 0 else "worse" if hi < 0 else "level"


def _reading(row: dict, sign: float | None) -> str:
    """The slope in words, with where the curve stands at the lowest and highest rate (``_stand``): a slope in a
    curve's favour from one that is worse on the cleanest labels and no better at the highest rate is a gap that
    closes, not an advantage that grows."""
    rates = [r for r in str(row["rates"]).split(",") if r]
    if sign is None or len(rates) < 2 or not np.isfinite(row["slope"]) or not row["n_seeds"] >= 2:
        return ""
    if not row["p_holm"] < ALPHA:
        return "no trend shown"
    low, high, r0, r1, base = row["at_lowest"], row["at_highest"], rates[0], rates[-1], row["baseline"]
    ends = f"{low or 'unknown'} at {r0}, {high or 'unknown'} at {r1}"
    if sign * row["slope"] > 0:
        if high == "better":
            return f"gains on {base} as the noise grows: {ends}"
        if low == "worse":
            return f"the gap closes: {ends}"
        return f"trends its way: {ends}"
    if high == "worse":
        return f"loses ground as the noise grows: {ends}"
    if low == "better":
        return f"its lead shrinks: {ends}"
    return f"trends against it: {ends}"


def controls_of(res: Results, baseline: str | None, metric: str | None) -> dict:
    """The headroom and shares of ``metric`` (the headline) and the interaction contrasts of every compared metric,
    for one source of values; ``controls_note`` says why there is no headroom when there is none."""
    arms = control_arms(res)
    positive, note = positive_control(arms, baseline)
    headroom = headroom_table(res, baseline, metric, positive) if metric else pd.DataFrame(columns=HEADROOM_COLS)
    return {"headroom": headroom, "share": share_table(res, baseline, headroom, arms),
            "interaction": interaction_table(res, baseline, arms), "controls_note": note, "positive": positive}


# ------------------------------------------------------------------------------------------------------ blocks
def _with_interval(mean, lo, hi) -> str:
    return fmt(mean) + (f" [{fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def headroom_blocks(a: Analysis) -> list:
    """"Could this condition show a gain?": the headroom per condition, then each curve's share of it."""
    base, metric, h = a["baseline"], a["headline"], a["headroom"]
    b: list = [("h", 3, f"Could this condition show a gain? ({metric})")]
    if h.empty:
        return b + [("p", a["controls_note"] or "No headroom for this metric (it has no better direction).")]
    view = pd.DataFrame({
        "noise": h["noise"], "rate": h["rate"].map(lambda r: f"{r:g}"), "n": h["n_pairs"],
        "headroom [95% CI]": [_with_interval(*x) for x in zip(h["headroom"], h["ci_low"], h["ci_high"])],
        "MDE (80%)": h["mde_80"], "p (t)": h["p"].map(fmt_p),
        "a gain can show": h["no_gain_detectable"].map(_verdict),
        "note": h["note"]})
    b += [("p", f"Headroom: `{a['positive']}` minus {base}, paired over seeds (in the better direction), with its 95% "
                "t interval: what removing exactly the flipped pairs gains. Where the interval holds 0 these seeds "
                f"cannot tell any loss from {base} in that condition. `MDE (80%)`: the smallest difference these seeds "
                "would detect with 80% power: a headroom below it is not evidence of none."
                + (f" {a['controls_note']}" if a["controls_note"] else "")),
          ("table", view)]
    return b + _share_blocks(a)


def _verdict(flag) -> str:
    if flag is None or pd.isna(flag):
        return "unknown (n < 2)"
    return "no: no loss can be declared better" if bool(flag) else "yes"


def _share_blocks(a: Analysis) -> list:
    s = a["share"]
    s = s[s["share"].notna()]
    if s.empty:
        return [("p", "No condition has a headroom above 0 with an interval clear of 0: no shares to give.")]
    cols = sorted({(n, r) for n, r in zip(s["noise"], s["rate"])}, key=lambda x: (str(x[0]), x[1]))
    wide = s.pivot_table(index="label", columns=["noise", "rate"], values="share", aggfunc="first")
    kind = dict(zip(s["label"], s["control"]))
    rows = [{"loss": lab, "control": kind.get(lab) or "",
             **{f"{n} @ {r:g}": wide.loc[lab].get((n, r), np.nan) for n, r in cols}}
            for lab in plots.loss_order(wide.index, None)]
    return [("p", f"Share of the headroom recovered: each curve's mean paired difference to {a['baseline']} over the "
                  "headroom (1: all the oracle cleaner gains, 0: none, below 0: worse than the baseline; the random "
                  "cleaner, the negative control, should be near 0). Only conditions whose headroom is above 0 with "
                  "an interval clear of 0; every condition in `headroom_share.csv`."),
            ("table", pd.DataFrame(rows))]


def interaction_blocks(a: Analysis) -> list:
    """"Does the gap to the baseline grow with the noise rate?": one slope contrast per curve and noise type."""
    base, metric = a["baseline"], a["headline"]
    t = a["interaction"]
    t = t[(t["metric"] == metric) & t["slope"].notna()]
    b: list = [("h", 3, f"Does the gap to {base} grow with the noise rate? ({metric})")]
    if t.empty:
        return b + [("p", f"No curve is paired with {base} at two or more rates of a noise type: no slope over the rate.")]
    view = pd.DataFrame({
        "noise": t["noise"], "loss": t["label"], "control": t["control"].fillna(""), "rates": t["rates"],
        "n seeds": t["n_seeds"], "slope [95% CI]": [_with_interval(*x) for x in zip(t["slope"], t["ci_low"], t["ci_high"])],
        "MDE (80%)": t["mde_80"], "p (t)": t["p"].map(fmt_p), "p (t, Holm)": t["p_holm"].map(fmt_p),
        "reading": t["reading"].fillna(""), "note": t["note"]})
    return b + [("p", f"The primary test of robustness: per seed, the least-squares slope of (loss minus {base}) over "
                      "the noise rate (per unit of rate: 0.5 = +0.05 per 0.1), then the mean over seeds with its 95% t "
                      "interval and a one-sample t-test against 0; Holm over the losses of a noise type (one contrast "
                      "each). A seed lacking one of the rates is left out. Every compared metric: `interaction.csv`. "
                      f"`reading`: the slope (where Holm's p < {ALPHA:g}) with where the loss stands against {base} at "
                      "the lowest and the highest rate (better or worse: that rate's 95% t interval of the paired "
                      "difference clear of 0, unadjusted; level otherwise): a slope in a loss's favour is an advantage "
                      "that grows only if it is better at the highest rate; from a loss that is worse on the cleanest "
                      "labels and level at the highest, it is a gap that closes."),
                ("table", view)]
