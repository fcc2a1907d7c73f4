"""The report's blocks (``bench.report.render``): one section per source of values (paper defaults, each tuning
rule), the failed and missing cells, the sweep's configuration."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.report import plots
from bench.report.aggregate import Results
from bench.report.analysis import Analysis
from bench.report.controls import headroom_blocks, interaction_blocks
from bench.report.primary import primary_blocks
from bench.report.provenance import mixing_warnings
from bench.report.render import fmt, fmt_p

MAX_LISTED = 60  # longer missing/failed lists are cut in the report; the CSVs hold all of them
HP_SOURCE_TITLES = {"default": "paper defaults"}


def hp_source_title(hp: str) -> str:
    return HP_SOURCE_TITLES.get(hp, f"tuned, rule {hp}")


def wide_table(res: Results, table: pd.DataFrame, metric: str, base: str | None) -> pd.DataFrame:
    """Loss x (noise, rate) grid of "mean ± CI half-width (n)"; a cell with no value says missing or failed."""
    t = table[table["metric"] == metric]
    cols = sorted({(n, r) for n, r in zip(t["noise"], t["rate"])}, key=lambda x: (str(x[0]), x[1]))
    labels = plots.loss_order(set(t["label"]) | set(res.failed["label"]) | set(res.missing["label"]), base)
    idx = t.set_index(["label", "noise", "rate"])
    fail = res.failed.groupby(["label", "noise", "rate"]).size() if not res.failed.empty else pd.Series(dtype=int)
    rows = []
    for lab in labels:
        row = {"loss": lab}
        for noise, rate in cols:
            key = (lab, noise, rate)
            if key in idx.index:
                r = idx.loc[key]
                half = (r["ci_high"] - r["ci_low"]) / 2
                text = fmt(r["mean"]) + (f" ± {fmt(half, 2)}" if np.isfinite(half) else "") + f" (n={r['n_seeds']})"
                gaps = [f"{r[k]} {k[2:]}" for k in ("n_failed", "n_missing") if r[k]]
                row[f"{noise} @ {rate:g}"] = text + (f" [{', '.join(gaps)}]" if gaps else "")
            else:
                row[f"{noise} @ {rate:g}"] = "failed" if key in fail.index else "missing"
        rows.append(row)
    return pd.DataFrame(rows)


def _summary_view(summary: pd.DataFrame, metric: str, base: str | None) -> pd.DataFrame:
    s = summary[summary["metric"] == metric].copy()
    if s.empty:
        return s
    s["falls below reference at"] = [_crossing_text(x, n) for x, n in zip(s["below_ref_at"], s["below_ref_note"])]
    s = s.rename(columns={"label": "loss", "at_rate0": "at rate 0", "at_rate0_vs_baseline": f"rate 0 − {base}",
                          "auc": "AUC (mean level)", "auc_vs_baseline": f"AUC − {base}"})
    order = {lab: i for i, lab in enumerate(plots.loss_order(s["loss"], base))}
    s = s.sort_values(["noise", "loss"], key=lambda c: c.map(order) if c.name == "loss" else c)
    return s[["noise", "loss", "at rate 0", f"rate 0 − {base}", "slope", "AUC (mean level)", f"AUC − {base}",
              "falls below reference at", "rates", "min_seeds"]]


def _crossing_text(rate: float, note: str) -> str:
    if note == "interpolated":
        return fmt(rate)
    return f"{fmt(rate)} ({note})" if note.startswith("at or below") else note


def _paired_view(paired: pd.DataFrame, metric: str) -> pd.DataFrame:
    p = paired[paired["metric"] == metric].copy()
    for c in ("p", "p_holm", "p_wilcoxon", "p_wilcoxon_holm"):
        p[c] = p[c].map(fmt_p)
    p["rate"] = p["rate"].map(lambda r: f"{r:g}")
    return p[["noise", "rate", "label", "n_pairs", "mean_diff", "mde_80", "d_z", "p", "p_holm", "p_wilcoxon",
              "p_wilcoxon_holm", "better", "note"]].rename(columns={"label": "loss", "mean_diff": "mean diff",
                                                 "mde_80": "MDE (80%)", "p": "p (t)",
                                                 "p_holm": "p (t, Holm)", "p_wilcoxon": "p (Wilcoxon)",
                                                 "p_wilcoxon_holm": "p (Wilcoxon, Holm)"})


# a cell's steps whose work is cached and shared with later cells: the scorer's reward model, rm_ensemble's members
ONE_OFF_TIMINGS = (("scores",), ("train_parts", "ensemble"))


def cost_table(res: Results, base: str | None) -> pd.DataFrame:
    """Wall time per complete cell and loss: the median of ``timings.total`` less its one-off cached steps (a
    scorer's reward model is trained once per data set and noise mask, by whichever cell needs it first), as a
    multiple of the baseline's median; and the longest one-off step seen (that first training). A cell that took
    its standard twin's results (``borrowed_from``) costs what its twin's run cost: that is what training it takes."""
    label = dict(zip(res.cells["cell_id"], res.cells["label"]))
    rows = []
    for r in res.records:
        t = (r.get("borrowed_from") or {}).get("timings") or r.get("timings") or {}
        if r.get("status") != "ok" or not isinstance(t.get("total"), (int, float)):
            continue
        one_off = sum(float(_dig(t, path) or 0.0) for path in ONE_OFF_TIMINGS)
        rows.append({"label": label.get(r.get("cell_id")), "per_cell": float(t["total"]) - one_off, "one_off": one_off})
    cols = ["loss", "cells", "median s per cell", "x baseline", "one-off s (most)", "baseline"]
    if not rows:
        return pd.DataFrame(columns=cols)
    g = pd.DataFrame(rows).groupby("label").agg(cells=("per_cell", "size"), median=("per_cell", "median"),
                                                one_off=("one_off", "max"))
    ref = g.loc[base, "median"] if base in g.index else np.nan
    order = plots.loss_order(g.index, base)
    return pd.DataFrame([{"loss": lab, "cells": int(g.loc[lab, "cells"]), "median s per cell": g.loc[lab, "median"],
                          "x baseline": g.loc[lab, "median"] / ref, "one-off s (most)": g.loc[lab, "one_off"],
                          "baseline": base}
                         for lab in order], columns=cols)


def _dig(d: dict, path: tuple[str, ...]):
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _flatten(d, prefix=""):
    for k, v in (d or {}).items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", json.dumps(v, sort_keys=True, default=str)


def config_tables(records: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(swept: config keys whose value differs between records, with the distinct values; shared: the rest)."""
    flat = [dict(_flatten(r.get("config"))) for r in records]
    keys = sorted(set().union(*flat)) if flat else []
    swept, shared = [], []
    for k in keys:
        vals = sorted({f.get(k, "(absent)") for f in flat})
        short = lambda v: v if len(v) <= 100 else v[:97] + "..."  # noqa: E731
        (swept if len(vals) > 1 else shared).append({"key": k, "value" if len(vals) == 1 else "values": ", ".join(map(short, vals))})
    return pd.DataFrame(swept), pd.DataFrame(shared)


def versions_table(records: list[dict]) -> pd.DataFrame:
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        for pkg, ver in (r.get("versions") or {}).items():
            counts.setdefault(pkg, {}).setdefault(str(ver), 0)
            counts[pkg][str(ver)] += 1
    rows = [{"package": p, "version": ", ".join(v if len(c) == 1 else f"{v} ({n} cells)" for v, n in sorted(c.items()))}
            for p, c in sorted(counts.items())]
    return pd.DataFrame(rows)


def _cut(df: pd.DataFrame, what: str) -> list:
    blocks: list = [("table", df.head(MAX_LISTED))]
    if len(df) > MAX_LISTED:
        blocks.append(("p", f"... and {len(df) - MAX_LISTED} more: all in `{what}`."))
    return blocks


def analysis_blocks(a: Analysis, figures: dict, slug: str, several: bool) -> list:
    """One source of values: its headline figure and table, summary, paired tests, length and other metrics."""
    res, table, base, headline, tag = a["res"], a["table"], a["baseline"], a["headline"], a["tag"]
    title = f" ({hp_source_title(a['hp'])})" if several else ""
    b: list = [("h", 2, f"Robustness: {headline}{title}")] + mixing_blocks(res.records)
    if f"paired{tag}" in figures:
        b += [("p", f"Each loss minus {base} on the same seeds (the noise masks are shared across losses): mean "
                    "paired difference with its 95% interval; * = Holm-corrected p < 0.05."),
              ("img", figures[f"paired{tag}"], f"{headline} minus {base}, paired")]
    if f"curves:{headline}{tag}" in figures:
        b += [("img", figures[f"curves:{headline}{tag}"], f"{headline} vs noise rate")]
    b += [("p", "Mean ± 95% t-interval half-width over seeds (n = seeds). Missing or failed cells are marked, never dropped."),
          ("table", wide_table(res, table, headline, base)),
          ("h", 3, "Summary"),
          ("p", "`at rate 0`: clean-data value (the cost of robustness). `slope`: least squares over every seed vs rate. "
                "`AUC`: area under the mean curve divided by the rate span (the curve's average level). "
                "`falls below reference at`: first rate (interpolated) where the loss is no better than the reference policy."),
          ("table", _summary_view(a["summary"], headline, base))]
    if f"heatmap{tag}" in figures:
        b += [("h", 3, f"Gain over {base}"), ("img", figures[f"heatmap{tag}"], "gain over the baseline")]
    b += primary_blocks(a, a["primary"])  # the answer in one table, then its parts
    b += headroom_blocks(a) + interaction_blocks(a)  # the primary questions, before the per-rate tests
    b += [("h", 3, f"Paired tests vs {base} ({headline})"),
          ("p", "Paired t-test on per-seed differences; Wilcoxon signed-rank when n ≥ 6; p-values Holm-corrected over "
                "all comparisons of the metric. `d_z` = mean difference / sd of differences. `MDE (80%)`: the "
                "smallest true difference this many seeds with this spread would detect with 80% power (two-sided "
                f"t-test at 0.05, before Holm): a difference below it is not evidence either way. All compared "
                f"metrics: `paired_vs_{slug}.csv`."),
          ("table", _paired_view(a["paired"], headline)),
          ("h", 3, "Compute per cell"),
          ("p", f"Median wall time of a complete cell, and as a multiple of {base}'s, without the one-off steps whose "
                "work is cached and shared (a scorer's reward model, trained by the first cell that needs it: its "
                "longest time is the last column). Cells that ran side by side share the cores: compare within one "
                "run."),
          ("table", a["cost"].drop(columns="baseline"))]
    if f"curves:length{tag}" in figures:
        b += [("h", 3, "Response length (length exploitation)"), ("img", figures[f"curves:length{tag}"], "length"),
              ("table", wide_table(res, table, "length", base))]
    others = [m for m in sorted(table["metric"].unique()) if m not in (headline, "length")]
    if others:
        b += [("h", 3, "Other metrics")]
        for m in others:
            b += [("h", 4, m)] + ([("img", figures[f"curves:{m}{tag}"], m)] if f"curves:{m}{tag}" in figures else [])
            b += [("table", wide_table(res, table, m, base))]
    return b


def mixing_blocks(records: list[dict]) -> list:
    """The warning a table carries when the cells it compares were not made alike (``bench.report.provenance``)."""
    lines = mixing_warnings(records)
    if not lines:
        return []
    return [("p", "**Warning: the cells of this table were not made alike.** Differences between them may come from "
                  "these, not from the losses:"), ("list", lines)]


def cells_blocks(res: Results) -> list:
    failed = res.failed[["sweep", "label", "noise", "rate", "seed", "error_type", "error_message", "error_where", "cell_id"]].copy()
    failed["error_message"] = failed["error_message"].map(lambda s: s if not isinstance(s, str) or len(s) < 200 else s[:197] + "...")
    return [("h", 2, "Failed cells"), *_cut(failed.rename(columns={"label": "loss"}), "failed_cells.csv"),
            ("h", 2, "Missing cells"),
            ("p", "Cells of each sweep's cross product of observed losses, noise types, rates and seeds with no record."),
            *_cut(res.missing.rename(columns={"label": "loss"}), "missing_cells.csv")]


def config_blocks(res: Results) -> list:
    c = res.cells
    grid = pd.DataFrame([{"dimension": k, "values": ", ".join(fmt(v) for v in sorted(c[k].dropna().unique(), key=str))}
                         for k in ("sweep", "label", "noise", "rate", "seed", "data", "model")])
    swept, shared = config_tables(res.records)
    secs = [t.get("timings") or {} for t in res.records]  # total: the sum of a cell's steps (when recorded)
    total = sum(float(s["total"]) if isinstance(s.get("total"), (int, float)) else
                sum(float(v) for v in s.values() if isinstance(v, (int, float))) for s in secs)
    return [("h", 2, "Sweep configuration"), ("table", grid),
            ("p", f"Recorded compute: {total / 3600:.2f} h over {len(res.records)} records (sum of `timings`)."),
            ("h", 3, "Config keys that vary between records"), ("table", swept),
            ("h", 3, "Shared config"), ("table", shared),
            ("h", 2, "Package versions"), ("table", versions_table(res.records))]
