"""The margin diagnostics drawn (``bench.evaluation.margins``): memorization and fit against training progress,
and the margins z of the sampled training pairs at the end of training, flipped against clean.

Per source of values (the report's unit), from the cells kept:

* progress: a record's ``curve`` (one point per checkpoint, the last one the end) gives ``diag_memorized`` (share of
  flipped pairs with z > 0: the policy agrees with their wrong label) and ``diag_fit`` (share of clean pairs with
  z > 0) at each point; x is the fraction of the cell's training (its step over the steps its schedule planned),
  the mean over seeds with their min and max. Only cells whose curve carries these values.
* the end's z: each cell's ``margins.json`` (``bench.cell.checkpoints``), its last point's z split by the pairs'
  flip mask, pooled over seeds. Cells without the file (an archived study keeps none) are left out.

A cell whose tuning rule picked a checkpoint (``checkpoint``, ``bench.report.aggregate.at_checkpoint``) is drawn up
to that checkpoint, and its z there: the policy the rule chose, whether its run went on past it or ended there
(``eval.checkpoints.stop_after``), so the runs of one rule draw alike.

A figure with nothing to draw is not made, and the section is absent when neither is.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.records import cell_dir
from bench.report import plots
from bench.report.aggregate import Results
from bench.report.analysis import Analysis

MARGINS_FILE = "margins.json"
PROGRESS = ("diag_memorized", "diag_fit")
FRACTION_DECIMALS = 2  # seeds of a cell whose step counts differ a little still share their checkpoints
COND = ["label", "noise", "rate"]


def _cell_keys(res: Results) -> dict:
    c = res.cells
    return {cid: dict(zip(COND + ["seed"], v)) for cid, *v in
            zip(c["cell_id"], c["label"], c["noise"].astype(str), c["rate"], c["seed"])}


def progress_points(res: Results) -> pd.DataFrame:
    """One row per (complete cell with a curve, checkpoint, diagnostic): label, noise, rate, seed, step, fraction,
    metric, value."""
    keys, rows = _cell_keys(res), []
    for r in res.records:
        curve, key = r.get("curve") or [], keys.get(r.get("cell_id"))
        if r.get("status") != "ok" or not curve or key is None:
            continue
        last = float((r.get("stopped") or {}).get("planned_steps") or curve[-1].get("step") or 0)
        for p in _upto_pick(curve, r.get("checkpoint")):
            for m in PROGRESS:
                v = p.get(m)
                if isinstance(v, (int, float)) and math.isfinite(v) and last > 0:
                    rows.append({**key, "step": int(p["step"]), "fraction": round(p["step"] / last, FRACTION_DECIMALS),
                                 "metric": m, "value": float(v)})
    return pd.DataFrame(rows, columns=COND + ["seed", "step", "fraction", "metric", "value"])


def progress_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per (label, noise, rate, metric, fraction): the mean over seeds, their sd, min and max, how many, the mean step."""
    cols = COND + ["metric", "fraction", "mean", "sd", "min", "max", "n_seeds", "step"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    g = points.groupby(COND + ["metric", "fraction"], sort=True)
    t = g["value"].agg(mean="mean", sd="std", min="min", max="max", n_seeds="size").join(g["step"].mean())
    return t.reset_index()[cols]


def final_margins(res: Results, results_dir) -> pd.DataFrame:
    """One row per sampled training pair of each complete cell at its last point: label, noise, rate, seed, flipped, z."""
    keys, parts = _cell_keys(res), []
    for r in res.records:
        key = keys.get(r.get("cell_id"))
        m = _read(results_dir, r) if r.get("status") == "ok" and key is not None else None
        if not m or not m.get("points"):
            continue
        z, flipped = np.asarray(_upto_pick(m["points"], r.get("checkpoint"))[-1]["z"], float), \
            np.asarray(m.get("is_flipped") or [], bool)
        if len(z) and len(z) == len(flipped):
            parts.append(pd.DataFrame({**key, "flipped": flipped, "z": z}))
    cols = COND + ["seed", "flipped", "z"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _upto_pick(points: list[dict], pick) -> list[dict]:
    """The points up to a tuning rule's picked checkpoint (epochs; None: every point), or every point if the pick is
    not among them."""
    if pick is None or (isinstance(pick, float) and math.isnan(pick)):
        return points
    upto = [p for p in points if round(float(p["epoch"]), 4) <= round(float(pick), 4)]
    return upto if upto and round(float(upto[-1]["epoch"]), 4) == round(float(pick), 4) else points


def _read(results_dir, rec: dict) -> dict | None:
    cid, hp = str(rec.get("cell_id")), rec.get("hp") or "default"
    raw = cid.removesuffix(f"@{hp}") if hp != "default" else cid  # a tuned source's copy: <cell id>@<rule>
    path = cell_dir(results_dir, raw) / MARGINS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def margin_figures(a: Analysis, out: Path, results_dir) -> dict[str, str]:
    """The two figures of one source of values (each only when it has something to draw)."""
    res, base, tag, files = a["res"], a["baseline"], a["tag"], {}
    table = progress_table(progress_points(res))
    if not table.empty:
        files[f"margins:progress{tag}"] = f"margins_progress{tag}.png"
        plots.save(plots.plot_margin_progress(table, base), out / files[f"margins:progress{tag}"])
    z = final_margins(res, results_dir)
    if not z.empty:
        files[f"margins:z{tag}"] = f"margins_z_end{tag}.png"
        plots.save(plots.plot_margin_histograms(z, base), out / files[f"margins:z{tag}"])
    return files


def margin_blocks(a: Analysis, figures: dict) -> list:
    tag = a["tag"]
    progress, z = figures.get(f"margins:progress{tag}"), figures.get(f"margins:z{tag}")
    if not progress and not z:
        return []
    b: list = [("h", 3, "Margin diagnostics"),
               ("p", "The margin z of a training pair is the loss's chosen minus rejected reward under the policy, "
                     "its sign the label the policy agrees with (`bench.evaluation.margins`).")]
    if progress:
        b += [("img", progress, "memorization and fit against training progress"),
              ("p", "Memorization (solid: share of flipped training pairs whose z > 0 agrees with their wrong label) "
                    "and fit (dashed: share of clean pairs with z > 0) against the fraction of training, mean over "
                    "seeds with the band from their minimum to their maximum: memorization rising means the policy "
                    "is fitting the flipped labels.")]
    if z:
        b += [("img", z, "margins z at the end of training, flipped vs clean pairs"),
              ("p", "The margins z at the end of training (at a tuning rule's picked checkpoint, where it picked "
                    "one) of the flipped (red) and clean (blue) sampled training pairs, pooled over seeds (density, bins shared by every panel): near the reference every z is "
                    "about 0 and every reference-anchored loss is DPO with a rescaled learning rate, so a robust "
                    "loss can only act differently once |z| is of order 1.")]
    return b
