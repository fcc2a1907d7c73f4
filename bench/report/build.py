"""Assemble tables, figures and the Markdown/HTML report from ``results/`` (reads only; never trains or judges).

The cells are analysed per source of their values (``hp``: the paper defaults, or each tuning rule of a final
sweep): within one source every loss has one curve and the baseline is that source's own DPO, so a tuned loss is
compared with a tuned DPO. A results folder that holds a tuning sweep (``results/tuning/<sweep>/``) also gets the
tuning section (``bench.report.tuning``). Each source's margin diagnostics (``bench.report.margins``) are drawn from the
records' curves and the cells' ``margins.json``. Tables (``robustness.csv``, ``summary.csv``, ``paired_vs_<baseline>.csv``)
carry every source, with an ``hp`` column.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.report import plots
from bench.report.aggregate import Results, load_results, robustness_table
from bench.report.analysis import Analysis
from bench.report.controls import controls_of
from bench.report.document import analysis_blocks, cells_blocks, config_blocks, cost_table, hp_source_title
from bench.report.margins import margin_blocks, margin_figures
from bench.report.primary import ordered, primary_table
from bench.report.render import to_html, to_markdown
from bench.report.stats import paired_vs_baseline, reference_curve, resolve_baseline, summary_table
from bench.report.tuning import tuning_blocks


def build_report(results_dir="results", out_dir=None, metric: str = "gold_reward", sweep: str | None = None,
                 baseline: str = "dpo", where: dict | None = None, clean_from: str | None = None) -> dict | None:
    """Write every table, figure and the report; return what was written (None when there are no records).
    ``clean_from``: a sweep whose clean rate-0 cells serve as rate 0 of ``sweep``'s (``aggregate.clean_cells_of``)."""
    got = analyse(results_dir, metric, sweep, baseline, where, clean_from)
    if got is None:
        return None
    res, analyses, notes = got
    several = len(analyses) > 1
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    slug = baseline_slug(baseline)
    tables = {name: pd.concat([a[name].assign(hp=a["hp"]) for a in analyses], ignore_index=True)
              for name in ("table", "summary", "paired", "cost", "headroom", "share", "interaction", "primary")}
    tables["primary"] = ordered(tables["primary"])  # the sources' rate columns in one order
    tables["table"].to_csv(out / "robustness.csv", index=False)
    tables["table"].to_parquet(out / "robustness.parquet", index=False)
    tables["summary"].to_csv(out / "summary.csv", index=False)
    tables["paired"].to_csv(out / f"paired_vs_{slug}.csv", index=False)
    tables["cost"].to_csv(out / "cost.csv", index=False)
    for name, file in (("headroom", "headroom.csv"), ("share", "headroom_share.csv"), ("interaction", "interaction.csv"),
                       ("primary", "primary.csv")):
        tables[name].to_csv(out / file, index=False)
    res.failed.to_csv(out / "failed_cells.csv", index=False)
    res.missing.to_csv(out / "missing_cells.csv", index=False)

    figures: dict[str, str] = {}
    for a in analyses:
        figures.update(_figures(a, out, slug))
        figures.update(margin_figures(a, out, results_dir))

    tuning, tuning_figures = tuning_blocks(results_dir, res, out, metric)
    figures.update(tuning_figures)
    blocks = _intro(res, analyses, notes, results_dir) + tuning
    for a in analyses:
        blocks += analysis_blocks(a, figures, slug, several) + margin_blocks(a, figures)
    blocks += cells_blocks(res) + config_blocks(res) + _files(figures, slug)
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, "prefnoise robustness report"))
    first = analyses[0]
    return dict(out=out, headline=first["headline"], baseline=first["baseline"], table=first["table"],
                summary=first["summary"], paired=first["paired"], figures=figures, results=res, notes=notes,
                paired_file=f"paired_vs_{slug}.csv", analyses=analyses)


def analyse(results_dir, metric: str = "gold_reward", sweep: str | None = None, baseline: str = "dpo",
            where: dict | None = None, clean_from: str | None = None) -> tuple[Results, list[Analysis], list[str]] | None:
    """(the cells, one analysis per source of values, the notes): every table the report shows, no file written
    (None when there are no records)."""
    res = load_results(results_dir, sweep, where, clean_from)
    if res.empty:
        return None
    notes = list(res.notes)
    several = len(res.hp_sources) > 1
    return res, [_analyse(res.subset(hp) if several else res, hp, baseline, metric, notes, several)
                 for hp in res.hp_sources], notes


def _analyse(res: Results, hp: str, baseline: str, metric: str, notes: list[str], several: bool) -> Analysis:
    """Tables and tests of the cells of one source of values, against that source's baseline."""
    base, note = resolve_baseline(res.cells, baseline)
    if note:
        notes.append(f"{hp_source_title(hp)}: {note}" if several else note)
    headline = _pick_headline(metric, sorted(res.values["metric"].unique()), res, notes)
    table = robustness_table(res)
    a: Analysis = {"hp": hp, "tag": f"_{hp}" if several and hp != "default" else "", "res": res, "baseline": base,
                   "headline": headline, "table": table, "summary": summary_table(res, table, base),
                   "paired": paired_vs_baseline(res, base), "cost": cost_table(res, base),
                   **controls_of(res, base, headline)}
    a["primary"] = primary_table(a)
    return a


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


def _figures(a: Analysis, out: Path, slug: str) -> dict[str, str]:
    """Per source: one curve figure per metric, the paired differences against the baseline, the heatmap."""
    res, table, paired, headline, base, tag = a["res"], a["table"], a["paired"], a["headline"], a["baseline"], a["tag"]
    files = {}
    for m in sorted(table["metric"].unique()):
        if m.endswith("_ref"):
            continue  # the reference policy's own score is drawn as the dashed line of its metric
        ref, src = reference_curve(res.values, m, res.metric_info)
        fig = plots.plot_curves(table, m, base, ref, f"reference policy ({src})" if ref is not None else "")
        files[f"curves:{m}{tag}"] = f"curves_{m}{tag}.png"
        plots.save(fig, out / files[f"curves:{m}{tag}"])
    if headline is not None and not paired.empty and headline in set(paired["metric"]):
        dirn = table.loc[table["metric"] == headline, "direction"].iloc[0]
        files[f"heatmap{tag}"] = f"gain_vs_{slug}_{headline}{tag}.png"
        plots.save(plots.plot_gain_heatmap(paired, headline, base, dirn), out / files[f"heatmap{tag}"])
        files[f"paired{tag}"] = f"paired_vs_{slug}_{headline}{tag}.png"
        plots.save(plots.plot_paired_differences(paired, headline, base, dirn), out / files[f"paired{tag}"])
    return files


def _intro(res: Results, analyses: list[Analysis], notes: list[str], results_dir) -> list:
    c = res.cells
    n_ok, n_failed, n_missing = int((c["status"] == "ok").sum()), len(res.failed), len(res.missing)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sources = ", ".join(hp_source_title(a["hp"]) for a in analyses)
    b: list = [("h", 1, "prefnoise: which loss survives noisy labels?"),
               ("p", f"Generated {when} from `{results_dir}` by `python -m bench.report`: {n_ok} complete cells, "
                     f"**{n_failed} failed**, **{n_missing} missing**. Headline metric: `{analyses[0]['headline']}`; "
                     f"baseline: `{analyses[0]['baseline']}`; values: {sources}.")]
    if notes:
        b += [("h", 2, "Notes"), ("list", notes)]
    return b


def _files(figures: dict, slug: str) -> list:
    return [("h", 2, "Files"), ("list", ["`robustness.csv` / `.parquet`: one row per (source of values, loss, noise, "
                                         "rate, metric)", "`summary.csv`: per (source, loss, noise, metric)",
                                         f"`paired_vs_{slug}.csv`: paired tests, all compared metrics",
                                         "`cost.csv`: wall time per cell and loss (per source)",
                                         "`headroom.csv`: the oracle cleaner minus the baseline per condition (the "
                                         "headroom); `headroom_share.csv`: each loss's share of it",
                                         "`interaction.csv`: per loss and noise type, the slope of its gap to the "
                                         "baseline over the noise rate, all compared metrics",
                                         "`primary.csv`: per source, noise type and loss: the slope and its reading, "
                                         "the paired difference at each rate, the share of the headroom",
                                         "`failed_cells.csv`, `missing_cells.csv`"] + [f"`{f}`" for f in figures.values()])]
