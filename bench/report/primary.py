"""The primary table: the study's answer for one source of values in one table (``primary.csv``, and in the
report's robustness section before the headroom, the interaction and the per-rate tests it joins).

Per noise type and curve other than the baseline, on the headline metric: the interaction contrast (the slope of
the curve minus the baseline over the noise rate, its 95% interval, Holm's p and its reading,
``bench.report.controls.interaction_table``) beside the paired difference at each rate (mean, 95% t interval, Holm's
p: ``bench.report.stats.paired_vs_baseline``) and the share of the headroom it recovers at each rate that has a
headroom (``bench.report.controls.share_table``). Nothing is computed here that those tables do not hold.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.report.analysis import Analysis
from bench.report.controls import ALPHA, _with_interval
from bench.report.render import fmt, fmt_p


def primary_table(a: Analysis) -> pd.DataFrame:
    """One row per (noise type, curve): ``slope``, ``slope_ci_low``, ``slope_ci_high``, ``slope_p_holm``,
    ``reading``; per rate r (as ``repr`` writes it: ``0.2``, ``0.0``): ``diff@r``, ``diff@r_ci_low``, ``diff@r_ci_high``, ``diff@r_p_holm``, and ``share@r``
    where the headroom at r is above 0 with an interval clear of 0."""
    metric = a["headline"]
    paired = a["paired"][a["paired"]["metric"] == metric] if metric else a["paired"].iloc[0:0]
    inter = a["interaction"][a["interaction"]["metric"] == metric]
    # a noise model without a rate has no per-rate difference (the tables leave it out): no share either
    share = a["share"][a["share"]["share"].notna() & a["share"]["rate"].notna()] if not a["share"].empty else a["share"]
    kind = {**dict(zip(inter["label"], inter["control"])), **dict(zip(share.get("label", []), share.get("control", [])))}
    rows = []
    for (noise, label), g in paired.groupby(["noise", "label"], sort=True):
        row = {"metric": metric, "noise": noise, "label": label, "control": kind.get(label) or "",
               "baseline": a["baseline"]}
        i = inter[(inter["noise"] == noise) & (inter["label"] == label)]
        if len(i):
            i = i.iloc[0]
            row.update(slope=i["slope"], slope_ci_low=i["ci_low"], slope_ci_high=i["ci_high"],
                       slope_p_holm=i["p_holm"], reading=i["reading"])
        for r in g.sort_values("rate").itertuples(index=False):
            key = f"diff@{_key(r.rate)}"
            row.update({key: r.mean_diff, f"{key}_ci_low": r.ci_low, f"{key}_ci_high": r.ci_high,
                        f"{key}_p_holm": r.p_holm})
        for s in share[(share["noise"] == noise) & (share["label"] == label)].itertuples(index=False):
            row[f"share@{_key(s.rate)}"] = s.share
        rows.append(row)
    return ordered(pd.DataFrame(rows))


def ordered(table: pd.DataFrame) -> pd.DataFrame:
    """The columns in a fixed order: who, the slope, then each rate's difference and share by rate."""
    def rate(c: str) -> float:
        return float(c.split("@")[1].split("_")[0])

    diffs = sorted((c for c in table.columns if c.startswith("diff@")), key=lambda c: (rate(c), len(c), c))
    shares = sorted((c for c in table.columns if c.startswith("share@")), key=rate)
    head = [c for c in table.columns if c not in diffs and c not in shares]
    return table[head + diffs + shares]


def primary_blocks(a: Analysis, table: pd.DataFrame) -> list:
    """The table in the report: one per noise type, with the headroom at each rate above it."""
    base, metric = a["baseline"], a["headline"]
    b: list = [("h", 3, f"The primary table ({metric}, against {base})")]
    if table.empty:
        return b + [("p", f"No curve is paired with {base}: nothing to compare.")]
    b.append(("p", f"Per loss: the slope of (loss minus {base}) over the noise rate with its 95% interval and Holm's "
                   "p (the primary test) and its reading; the paired difference at each rate with its 95% t interval "
                   f"(* Holm-corrected p < {ALPHA:g} over all comparisons of the metric); the share of the headroom it "
                   "recovers where there is one (the oracle cleaner's gain over the baseline, interval clear of 0). "
                   "The sections below give each part in full; `primary.csv` holds this table."))
    for noise, g in table.groupby("noise", sort=True):
        g = g.drop(columns=_absent_rates(g))  # its own rates only
        b += [("p", f"**{noise}**: " + _headroom_line(a, noise)), ("p", f"*The answer ({noise})*: " + answer(a, g)),
              ("table", _view(g))]
    return b


def _absent_rates(g: pd.DataFrame) -> list[str]:
    """The columns of rates this noise type has no value at: a rate's difference (with its interval and p, which
    one seed leaves empty) and its share go together, decided by the difference itself."""
    gone = [c for c in g.columns if c.startswith(("diff@", "share@")) and "_" not in c and g[c].isna().all()]
    return [c for c in g.columns if any(c == x or c.startswith(x + "_") for x in gone)]


def answer(a: Analysis, g: pd.DataFrame) -> str:
    """The primary question for one noise type in words, from its rows of the primary table alone: which arms'
    advantage over the baseline grows with the rate (a slope in their favour, Holm p < ALPHA, and better than the
    baseline at the highest rate: the reading ``gains on ...``), which other slopes there are (a gap that closes,
    ground lost, ...: each with where the arm stands at the ends), and how much of the headroom the best arm that
    is not a control recovers at each rate that has one. Every arm is counted once."""
    arms = _not_controls(g)
    if arms.empty:
        return "no arm but the controls is paired with the baseline."
    rates = _rates(g)
    if len(rates) < 2:
        return "one rate only: no slope over the rate to test." + _best_share(a, g)
    reading = arms["reading"].fillna("") if "reading" in arms else pd.Series("", index=arms.index)
    grows = arms[reading.str.startswith("gains on")]
    other = arms[(reading != "") & ~reading.str.startswith("gains on") & (reading != "no trend shown")]
    if len(grows):
        text = (f"**yes** for {len(grows)} of {_arms(len(arms))}: the advantage over {a['baseline']} grows with the "
                "rate for " + "; ".join(_grows(r, rates[-1]) for _, r in grows.iterrows()) + ".")
    else:
        text = (f"**no** arm's advantage over {a['baseline']} grows with the rate (a slope read for "
                f"{int((reading != '').sum())} of {_arms(len(arms))}; it "
                f"would take a slope in the arm's favour with Holm p < {ALPHA:g} and a lead at rate "
                f"{_label(rates[-1])}).")
    if len(other):
        text += " Other slopes with Holm p < {:g}: {}.".format(ALPHA, "; ".join(
            f"{r['label']} ({r['reading']})" for _, r in other.iterrows()))
    text += f" No trend shown: {int((reading == 'no trend shown').sum())} of {len(arms)}."
    unread = arms[reading == ""]
    if len(unread):
        text += f" No slope read (too few seeds or rates, or no better direction): {', '.join(unread['label'])}."
    return text + _best_share(a, g)


def _not_controls(g: pd.DataFrame) -> pd.DataFrame:
    return g[g["control"].fillna("") == ""]


def _rates(g: pd.DataFrame) -> list[float]:
    return sorted(float(c[5:]) for c in g.columns if c.startswith("diff@") and "_" not in c)


def _arms(n: int) -> str:
    return f"{n} arm" + ("" if n == 1 else "s")


def _grows(r: pd.Series, high: float) -> str:
    k = f"diff@{_key(high)}"
    return (f"{r['label']} (slope {_interval(r['slope'], r['slope_ci_low'], r['slope_ci_high'])}, Holm p "
            f"{fmt_p(r['slope_p_holm'])}; {_interval(r[k], r[f'{k}_ci_low'], r[f'{k}_ci_high'])} at {_label(high)})")


def _best_share(a: Analysis, g: pd.DataFrame) -> str:
    """At each rate with a headroom, the arm (not a control) with the largest share of it, and whether its paired
    difference from the baseline is significant; a best share at or below 0 recovers none."""
    arms, out = _not_controls(g), []
    for c in sorted((c for c in g.columns if c.startswith("share@")), key=lambda c: float(c[6:])):
        got = arms[arms[c].notna()]
        if got.empty:
            continue
        r, k, rate = got.loc[got[c].idxmax()], f"diff@{c[6:]}", _label(float(c[6:]))
        diff = _interval(r[k], r[f"{k}_ci_low"], r[f"{k}_ci_high"])
        if not r[c] > 0:
            out.append(f"at {rate}, none (the best, {r['label']}: {fmt(r[c])}, {diff})")
            continue
        sig = "significant after Holm" if r[f"{k}_p_holm"] < ALPHA else "not significant after Holm"
        out.append(f"at {rate}, {fmt(r[c])} ({r['label']}: {diff}, {sig})")
    if out:
        return " The largest share of the headroom an arm that is not a control recovers: " + "; ".join(out) + "."
    return " No arm has a share of the headroom: " + _headroom_line(a, g["noise"].iloc[0])


def _headroom_line(a: Analysis, noise) -> str:
    h = a["headroom"]
    if h.empty:
        return a["controls_note"] or "no headroom for this metric (it has no better direction)."
    h = h[(h["noise"] == noise) & h["headroom"].notna()]
    if h.empty:
        return f"no oracle-cleaner cells paired with {a['baseline']} in this noise type: no headroom."
    parts = [f"{r.rate:g}: {_interval(r.headroom, r.ci_low, r.ci_high)}" for r in h.itertuples(index=False)]
    return f"headroom ({a['positive']} minus {a['baseline']}) at " + "; ".join(parts) + "."


def _view(g: pd.DataFrame) -> pd.DataFrame:
    rates = _rates(g)
    shares = sorted({float(c[6:]) for c in g.columns if c.startswith("share@")})
    out = pd.DataFrame({"loss": g["label"], "control": g["control"]})
    if "slope" in g:
        out["slope [95% CI]"] = [_interval(*x, missing="no slope") for x in zip(g["slope"], g["slope_ci_low"],
                                                                                 g["slope_ci_high"])]
        out["p (Holm)"] = g["slope_p_holm"].map(fmt_p)
        out["reading"] = g["reading"].fillna("")
    for r in rates:
        k = f"diff@{_key(r)}"
        out[f"diff at {_label(r)} [95% CI]"] = [_interval(m, lo, hi) + ("*" if p < ALPHA else "")
                                          for m, lo, hi, p in zip(g[k], g[f"{k}_ci_low"], g[f"{k}_ci_high"],
                                                                  g[f"{k}_p_holm"].fillna(1.0))]
    for r in shares:
        out[f"share at {_label(r)}"] = g[f"share@{_key(r)}"].map(lambda v: "" if pd.isna(v) else fmt(v))
    return out.reset_index(drop=True)


def _key(rate: float) -> str:
    """A rate in a column name: every digit the records keep (they round rates to 10 decimals), so two rates
    never share a column."""
    return repr(round(float(rate), 10))


def _label(rate: float) -> str:
    """A rate in a column header: short (``0.2``), with as many digits as it takes to tell it from another."""
    return f"{round(float(rate), 10):.10g}"


def _interval(mean, lo, hi, missing: str = "missing") -> str:
    return missing if mean is None or not np.isfinite(mean) else _with_interval(mean, lo, hi)
