"""Assemble tables, figures and the Markdown/HTML report from ``results/`` (reads only; never trains or judges)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import plots
from bench.report.aggregate import Results, load_results, robustness_table
from bench.report.render import fmt, fmt_p, to_html, to_markdown
from bench.report.stats import paired_vs_baseline, reference_curve, resolve_baseline, summary_table

MAX_LISTED = 60  # longer missing/failed lists are cut in the report; the CSVs hold all of them


def build_report(results_dir="results", out_dir=None, metric: str = "gold_reward", sweep: str | None = None,
                 baseline: str = "dpo", where: dict | None = None) -> dict | None:
    """Write every table, figure and the report; return what was written (None when there are no records)."""
    res = load_results(results_dir, sweep, where)
    if res.empty:
        return None
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    notes = list(res.notes)
    base, note = resolve_baseline(res.cells, baseline)
    if note:
        notes.append(note)
    metrics = sorted(res.values["metric"].unique())
    headline = _pick_headline(metric, metrics, res, notes)

    table = robustness_table(res)
    summary = summary_table(res, table, base)
    paired = paired_vs_baseline(res, base)
    slug = baseline_slug(baseline)
    table.to_csv(out / "robustness.csv", index=False)
    table.to_parquet(out / "robustness.parquet", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    paired.to_csv(out / f"paired_vs_{slug}.csv", index=False)
    res.failed.to_csv(out / "failed_cells.csv", index=False)
    res.missing.to_csv(out / "missing_cells.csv", index=False)

    figures = _figures(res, table, paired, headline, base, out, slug)
    blocks = _document(res, table, summary, paired, headline, base, figures, notes, results_dir, slug)
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, "prefnoise robustness report"))
    return dict(out=out, headline=headline, baseline=base, table=table, summary=summary, paired=paired,
                figures=figures, results=res, notes=notes, paired_file=f"paired_vs_{slug}.csv")


def baseline_slug(name: str) -> str:
    """The baseline as it appears in file names: ``paired_vs_<slug>.csv`` (``dpo``, ``ropo``, ...)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_").lower() or "baseline"


def _pick_headline(metric: str, metrics: list[str], res: Results, notes: list[str]) -> str | None:
    if metric in metrics or not metrics:
        return metric if metrics else None
    directed = [m for m in metrics if (res.metric_info.get(m) or {}).get("higher_is_better") is not None]
    pick = (directed or metrics)[0]
    notes.append(f"headline metric {metric!r} is not in the records; showing {pick!r} instead.")
    return pick


def _figures(res, table, paired, headline, base, out: Path, slug: str) -> dict[str, str]:
    """One curve figure per metric (the headline and `length` are embedded), plus the headline heatmap."""
    files = {}
    for m in sorted(table["metric"].unique()):
        if m.endswith("_ref"):
            continue  # the reference policy's own score is drawn as the dashed line of its metric
        ref, src = reference_curve(res.values, m, res.metric_info)
        fig = plots.plot_curves(table, m, base, ref, f"reference policy ({src})" if ref is not None else "")
        files[f"curves:{m}"] = f"curves_{m}.png"
        plots.save(fig, out / files[f"curves:{m}"])
    if headline is not None and not paired.empty and headline in set(paired["metric"]):
        dirn = table.loc[table["metric"] == headline, "direction"].iloc[0]
        files["heatmap"] = f"gain_vs_{slug}_{headline}.png"
        plots.save(plots.plot_gain_heatmap(paired, headline, base, dirn), out / files["heatmap"])
    return files


# ------------------------------------------------------------------------------------------------ document
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
    return p[["noise", "rate", "label", "n_pairs", "mean_diff", "d_z", "p", "p_holm", "p_wilcoxon", "p_wilcoxon_holm",
              "better", "note"]].rename(columns={"label": "loss", "mean_diff": "mean diff", "p": "p (t)",
                                                 "p_holm": "p (t, Holm)", "p_wilcoxon": "p (Wilcoxon)",
                                                 "p_wilcoxon_holm": "p (Wilcoxon, Holm)"})


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


def _document(res, table, summary, paired, headline, base, figures, notes, results_dir, slug: str) -> list:
    c = res.cells
    n_ok, n_failed, n_missing = int((c["status"] == "ok").sum()), len(res.failed), len(res.missing)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    b: list = [("h", 1, "prefnoise: which loss survives noisy labels?"),
               ("p", f"Generated {when} from `{results_dir}` by `python -m bench.report`: {n_ok} complete cells, "
                     f"**{n_failed} failed**, **{n_missing} missing**. Headline metric: `{headline}`; baseline: `{base}`.")]
    if notes:
        b += [("h", 2, "Notes"), ("list", notes)]
    if f"curves:{headline}" in figures:
        b += [("h", 2, f"Robustness: {headline}"), ("img", figures[f"curves:{headline}"], f"{headline} vs noise rate")]
    b += [("p", "Mean ± 95% t-interval half-width over seeds (n = seeds). Missing or failed cells are marked, never dropped."),
          ("table", wide_table(res, table, headline, base)),
          ("h", 3, "Summary"),
          ("p", "`at rate 0`: clean-data value (the cost of robustness). `slope`: least squares over every seed vs rate. "
                "`AUC`: area under the mean curve divided by the rate span (the curve's average level). "
                "`falls below reference at`: first rate (interpolated) where the loss is no better than the reference policy."),
          ("table", _summary_view(summary, headline, base))]
    if "heatmap" in figures:
        b += [("h", 2, f"Gain over {base}"), ("img", figures["heatmap"], "gain over the baseline")]
    b += [("h", 3, f"Paired tests vs {base} ({headline})"),
          ("p", "Paired over seeds (the noise masks are shared across losses). Test: paired t-test on per-seed differences; "
                f"Wilcoxon signed-rank when n ≥ 6. p-values Holm-corrected over all comparisons of the metric. "
                f"`d_z` = mean difference / sd of differences (Cohen's d for paired samples). All metrics: `paired_vs_{slug}.csv`."),
          ("table", _paired_view(paired, headline))]
    if "curves:length" in figures:
        b += [("h", 2, "Response length (length exploitation)"), ("img", figures["curves:length"], "length vs noise rate"),
              ("table", wide_table(res, table, "length", base))]
    others = [m for m in sorted(table["metric"].unique()) if m not in (headline, "length")]
    if others:
        b += [("h", 2, "Other metrics")]
        for m in others:
            b += [("h", 3, m)] + ([("img", figures[f"curves:{m}"], m)] if f"curves:{m}" in figures else [])
            b += [("table", wide_table(res, table, m, base))]
    failed = res.failed[["sweep", "label", "noise", "rate", "seed", "error_type", "error_message", "error_where", "cell_id"]].copy()
    failed["error_message"] = failed["error_message"].map(lambda s: s if not isinstance(s, str) or len(s) < 200 else s[:197] + "...")
    b += [("h", 2, "Failed cells"), *_cut(failed.rename(columns={"label": "loss"}), "failed_cells.csv"),
          ("h", 2, "Missing cells"),
          ("p", "Cells of each sweep's cross product of observed losses, noise types, rates and seeds with no record."),
          *_cut(res.missing.rename(columns={"label": "loss"}), "missing_cells.csv")]
    b += _config_blocks(res)
    b += [("h", 2, "Files"), ("list", ["`robustness.csv` / `.parquet`: one row per (loss, noise, rate, metric)",
                                       "`summary.csv`: per (loss, noise, metric)", f"`paired_vs_{slug}.csv`: paired tests, all compared metrics",
                                       "`failed_cells.csv`, `missing_cells.csv`"] + [f"`{f}`" for f in figures.values()])]
    return b


def _config_blocks(res: Results) -> list:
    c = res.cells
    grid = pd.DataFrame([{"dimension": k, "values": ", ".join(fmt(v) for v in sorted(c[k].dropna().unique(), key=str))}
                         for k in ("sweep", "label", "noise", "rate", "seed", "data", "model")])
    swept, shared = config_tables(res.records)
    secs = [t.get("timings") or {} for t in res.records]
    total = sum(float(v) for s in secs for v in s.values() if isinstance(v, (int, float)))
    return [("h", 2, "Sweep configuration"), ("table", grid),
            ("p", f"Recorded compute: {total / 3600:.2f} h over {len(res.records)} records (sum of `timings`)."),
            ("h", 3, "Config keys that vary between records"), ("table", swept),
            ("h", 3, "Shared config"), ("table", shared),
            ("h", 2, "Package versions"), ("table", versions_table(res.records))]
