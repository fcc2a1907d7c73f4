"""Robustness summaries and paired tests against the baseline loss (DPO).

Why paired: every loss at a given (noise, rate, seed) trains on the same flipped pairs (the injector's mask
depends on the seed only), so seed-to-seed variation is shared and the difference per seed is the right unit.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.metrics import compared
from bench.report.aggregate import Results, direction

ALPHA = 0.05
WILCOXON_MIN_N = 6  # below 6 pairs a two-sided exact signed-rank test cannot reach p < 0.05
ZERO_SD = 1e-12  # relative: differences this constant are treated as exactly constant


# ----------------------------------------------------------------------------------------------- reference
def reference_curve(values: pd.DataFrame, metric: str, info: dict) -> tuple[pd.DataFrame | None, str]:
    """What "the reference policy" scores on ``metric`` at each (noise, rate), and where that comes from.

    In order: a companion metric ``<metric>_ref`` measured on the reference policy in the same cells; a
    ``reference`` value declared in the metric's info; 0 for gain metrics; a tie (0.5, or 50 for percentages)
    for win rates. None when the metric has no meaningful reference (e.g. ``kl``).
    """
    grid = values.loc[values["metric"] == metric, ["noise", "rate"]].drop_duplicates()
    companion = values[values["metric"] == f"{metric}_ref"]
    if not companion.empty:
        ref = companion.groupby(["noise", "rate"], as_index=False)["value"].mean().rename(columns={"value": "ref"})
        return ref, f"{metric}_ref"
    declared = (info.get(metric) or {}).get("reference")
    if declared is not None:
        return grid.assign(ref=float(declared)), f"declared reference {declared:g}"
    if "gain" in metric:
        return grid.assign(ref=0.0), "0 (no gain over the reference)"
    if "win_rate" in metric:
        pct = values.loc[values["metric"] == metric, "value"].abs().max() > 1.0
        return grid.assign(ref=50.0 if pct else 0.5), "a tie with the reference"
    return None, ""


def crossing_rate(rates, margin) -> tuple[float, str]:
    """First rate where ``margin`` (metric minus reference, oriented so positive is better) reaches zero.

    Linear interpolation between the two rates around the crossing; ``"never"`` if it stays above.
    """
    rates, margin = np.asarray(rates, float), np.asarray(margin, float)
    ok = ~np.isnan(margin)
    rates, margin = rates[ok], margin[ok]
    if len(rates) == 0:
        return np.nan, "no data"
    if margin[0] <= 0:
        return float(rates[0]), "at or below from the lowest rate"
    for i in range(1, len(rates)):
        if margin[i] <= 0:
            r0, r1, d0, d1 = rates[i - 1], rates[i], margin[i - 1], margin[i]
            return float(r0 + (r1 - r0) * d0 / (d0 - d1)), "interpolated"
    return np.nan, f"never (up to rate {rates[-1]:g})"


# ------------------------------------------------------------------------------------------------ summary
def summary_table(res: Results, table: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per (loss, noise, metric): clean-data value, slope vs rate, normalised AUC, rate falling below reference.

    slope: least squares over every seed's (rate, value), not over means, so unequal seed counts weigh right.
    auc:   trapezoid of the mean curve over its rates divided by the rate span: the average level along the curve,
           in the metric's own units (comparable to ``at_rate0``). Only comparable across losses with the same
           rates, hence ``rates``.
    """
    rows = []
    refs = {m: reference_curve(res.values, m, res.metric_info) for m in table["metric"].unique()}
    for (label, noise, metric), g in table.groupby(["label", "noise", "metric"], sort=True):
        g = g.sort_values("rate")
        seeds = res.values[(res.values["label"] == label) & (res.values["noise"] == noise) & (res.values["metric"] == metric)]
        rates, means = g["rate"].to_numpy(float), g["mean"].to_numpy(float)
        span = rates[-1] - rates[0] if len(rates) else 0.0
        slope = np.polyfit(seeds["rate"], seeds["value"], 1)[0] if seeds["rate"].nunique() >= 2 else np.nan
        auc = np.trapezoid(means, rates) / span if span > 0 else np.nan
        dirn = g["direction"].iloc[0]
        cross, note = np.nan, "no reference"
        if not compared(res.metric_info.get(metric), metric):
            dirn, note = "none", "not compared"
        ref, _ = refs[metric]
        if ref is not None and dirn != "none":
            r = g.merge(ref, on=["noise", "rate"], how="left")
            margin = (r["mean"] - r["ref"]) * (1 if dirn == "higher" else -1)
            cross, note = crossing_rate(r["rate"], margin)
        elif dirn == "none" and note != "not compared":
            note = "no direction"
        at0 = g.loc[g["rate"] == 0, "mean"]
        rows.append(dict(label=label, noise=noise, metric=metric, direction=dirn,
                         at_rate0=float(at0.iloc[0]) if len(at0) else np.nan, slope=slope, auc=auc,
                         below_ref_at=cross, below_ref_note=note,
                         rates=",".join(f"{x:g}" for x in rates), min_seeds=int(g["n_seeds"].min())))
    out = pd.DataFrame(rows, columns=["label", "noise", "metric", "direction", "at_rate0", "slope", "auc",
                                      "below_ref_at", "below_ref_note", "rates", "min_seeds"])  # none: no cell ok
    if out.empty or baseline is None:
        return out.assign(at_rate0_vs_baseline=np.nan, auc_vs_baseline=np.nan)
    base = out[out["label"] == baseline][["noise", "metric", "at_rate0", "auc"]]
    out = out.merge(base, on=["noise", "metric"], how="left", suffixes=("", "_b"))
    out["at_rate0_vs_baseline"] = out["at_rate0"] - out["at_rate0_b"]
    out["auc_vs_baseline"] = out["auc"] - out["auc_b"]
    return out.drop(columns=["at_rate0_b", "auc_b"])


# ----------------------------------------------------------------------------------------- paired tests
def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN entries are not comparisons and stay NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def holm_once(p: pd.Series, same: pd.Series) -> pd.Series:
    """Holm over the distinct comparisons of ``p``: rows whose ``same`` key is equal are one test (the same cells
    compared again, as the clean rate-0 cells copied to every noise type's curve are), counted once in the family
    and each given its adjusted p."""
    first = ~same.duplicated()
    adjusted = dict(zip(same[first], holm(p[first])))
    return same.map(adjusted).astype(float)


def paired_test(diff) -> dict:
    """Paired t-test on per-seed differences (loss minus baseline), Wilcoxon signed-rank when n allows.

    d_z = mean / sd of the differences (Cohen's d for paired data). With differences constant across seeds the
    sd is 0: d_z is then +-inf and the t-test p is 0 (a deterministic difference), flagged in ``note``.
    """
    d = np.asarray(diff, dtype=float)
    n = len(d)
    res = dict(n_pairs=n, mean_diff=float(d.mean()) if n else np.nan, sd_diff=np.nan, d_z=np.nan,
               t=np.nan, p=np.nan, p_wilcoxon=np.nan, note="")
    if n < 2:
        res["note"] = f"n={n} pair(s): no test"
        return res
    sd = float(d.std(ddof=1))
    scale = max(1.0, float(np.abs(d).max()))
    res["sd_diff"] = sd
    notes = []
    if sd <= ZERO_SD * scale:
        res["sd_diff"] = 0.0
        if res["mean_diff"] == 0 or abs(res["mean_diff"]) <= ZERO_SD * scale:
            res.update(mean_diff=0.0, d_z=np.nan, p=1.0, t=0.0)
            notes.append("identical values")
        else:
            res.update(d_z=np.sign(res["mean_diff"]) * np.inf, t=np.sign(res["mean_diff"]) * np.inf, p=0.0)
            notes.append("constant difference (sd 0)")
    else:
        t = stats.ttest_rel(d, np.zeros(n))
        res.update(d_z=res["mean_diff"] / sd, t=float(t.statistic), p=float(t.pvalue))
    if n >= WILCOXON_MIN_N and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    elif n < WILCOXON_MIN_N:
        notes.append(f"n<{WILCOXON_MIN_N}: no Wilcoxon")
    res["note"] = "; ".join(notes)
    return res


PAIR_KEYS = ["metric", "noise", "rate", "seed"]


def paired_differences(values: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every other curve's value beside the baseline's on the same (metric, noise, rate, seed): ``value`` (the loss),
    ``value_b`` (the baseline) and ``diff`` = loss minus baseline, the unit of every paired figure of the report. A
    seed only one side has is not here."""
    base = values[values["label"] == baseline][PAIR_KEYS + ["value", "cell_id"]]
    pair = values[values["label"] != baseline].merge(base, on=PAIR_KEYS, suffixes=("", "_b"))
    return pair.assign(diff=pair["value"] - pair["value_b"])


def paired_vs_baseline(res: Results, baseline: str | None, alpha: float = ALPHA) -> pd.DataFrame:
    """Every loss against ``baseline`` at each (noise, rate), per metric; Holm over all comparisons of a metric."""
    cols = ["metric", "noise", "rate", "label", "baseline", "n_pairs", "mean_loss", "mean_baseline", "mean_diff",
            "sd_diff", "ci_low", "ci_high", "mde_80", "d_z", "test", "t", "p", "p_holm", "p_wilcoxon",
            "p_wilcoxon_holm", "better", "significant", "note"]
    v = res.values
    if baseline is None or v.empty or baseline not in set(v["label"]):
        return pd.DataFrame(columns=cols)
    group = ["metric", "noise", "rate", "label"]
    # only metrics that compare policies: not the reference policy's own scores, bookkeeping counters, or a training
    # loss whose scale differs from loss to loss (bench.core.metrics)
    v = v[v["metric"].isin({m for m in v["metric"].unique() if compared(res.metric_info.get(m), m)})]
    pairs = dict(list(paired_differences(v, baseline).groupby(group, sort=False)))
    n_base = v[v["label"] == baseline].groupby(group[:3]).size()
    rows, same = [], []
    for key, g in v[v["label"] != baseline].groupby(group, sort=True):
        metric, noise, rate, label = key
        pair = pairs.get(key, g.iloc[:0].assign(value_b=np.nan, diff=np.nan, cell_id_b=None))
        same.append((metric, label, frozenset(pair["cell_id"]), frozenset(pair["cell_id_b"])) if len(pair) else key)
        r = paired_test(pair["diff"])
        unpaired = len(g) + int(n_base.get((metric, noise, rate), 0)) - 2 * len(pair)
        if unpaired:
            r["note"] = "; ".join(filter(None, [r["note"], f"{unpaired} unpaired seed value(s) left out"]))
        dirn = direction((res.metric_info.get(metric) or {}).get("higher_is_better"))
        rows.append(dict(metric=metric, noise=noise, rate=rate, label=label, baseline=baseline,
                         mean_loss=pair["value"].mean(), mean_baseline=pair["value_b"].mean(), test="paired t-test", **r,
                         better=better(r["mean_diff"], dirn)))
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=cols)
    half, mde = zip(*(interval_and_mde(sd, n) for sd, n in zip(out["sd_diff"], out["n_pairs"])))
    out["ci_low"], out["ci_high"] = out["mean_diff"] - np.array(half), out["mean_diff"] + np.array(half)
    out["mde_80"] = mde
    out["_same"] = same  # a clean cell copied as rate 0 of each noise type (aggregate._broadcast_clean): one test
    for col in ("p", "p_wilcoxon"):
        out[f"{col}_holm"] = pd.concat([holm_once(g[col], g["_same"]) for _, g in out.groupby("metric")])
    out["significant"] = out["p_holm"] < alpha
    return out[cols]


def interval_and_mde(sd: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> tuple[float, float]:
    """Half-width of the 95% t-interval of a mean paired difference, and the smallest true difference a two-sided
    paired t-test at ``alpha`` detects with probability ``power`` given this spread: ``(t_{1-a/2} + t_power) sd /
    sqrt(n)`` with n - 1 degrees of freedom (the usual normal-approximation form, before any multiplicity
    correction)."""
    if n < 2 or not np.isfinite(sd):
        return np.nan, np.nan
    se = sd / np.sqrt(n)
    t_a = stats.t.ppf(1 - alpha / 2, n - 1)
    return float(t_a * se), float((t_a + stats.t.ppf(power, n - 1)) * se)


def better(mean_diff: float, dirn: str) -> str:
    """Whether a difference (loss minus baseline) favours the loss: yes, no, same, or n/a (no direction)."""
    if dirn == "none" or np.isnan(mean_diff):
        return "n/a"
    if mean_diff == 0:
        return "same"
    return "yes" if (mean_diff > 0) == (dirn == "higher") else "no"


def resolve_baseline(cells: pd.DataFrame, name: str = "dpo") -> tuple[str | None, str]:
    """The display label of the baseline loss (``loss`` or label matching ``name``), and a note if ambiguous. A label
    that is ``name`` itself, once its source of values (`` [oracle]``) is set aside, wins over the other curves of
    the same loss (a method wrapping it: ``DPO + curriculum [oracle]``)."""
    if cells.empty:
        return None, ""
    cand = cells[(cells["loss"].astype(str).str.lower() == name.lower()) | (cells["label"].astype(str).str.lower() == name.lower())]
    labels = sorted(cand["label"].astype(str).unique())
    if not labels:
        return None, f"baseline {name!r} not found among the losses: no paired comparisons."
    curve = dict(zip(cand["label"].astype(str), cand["curve"].astype(str))) if "curve" in cand else {}
    exact = [lab for lab in labels if lab.lower() == name.lower()] or [
        lab for lab in labels if curve.get(lab, "").lower() == name.lower()]
    chosen = (exact or labels)[0]
    note = f"several {name!r} variants ({', '.join(labels)}); baseline is {chosen!r}." if len(labels) > 1 else ""
    return chosen, note
