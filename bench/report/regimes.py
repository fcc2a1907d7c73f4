"""The regime scan's table (``experiment=regimes``, ``docs/regimes.md``): per regime (training pairs x epochs),
could a robust loss show a gain there at all?

    python -m bench.report.regimes --results results --sweep regimes     # writes results/report/regimes.{md,csv}

It reads the archived scan (``docs/results/regimes``) beside ``--results``, as ``make report`` does, so a fresh
clone rebuilds the table with no training (``--archives none``: only ``--results``).

A regime is a (data.n_train_prompts, train.epochs) pair; every cell scored its policy every ``eval.checkpoints``
steps, so a run's curve gives every shorter training length. Each arm (DPO, ROPO, the oracle and random cleaners)
is read at the learning rate and checkpoint where its mean test gold reward over the seeds is highest, per noise
rate: a *screening* choice (it selects on the test split, so it flatters every arm alike; the study proper selects
on the validation split). Per regime, the criteria of a sensitive preset:

    (a) clean DPO's gain over the reference policy (target >= 0.25)
    (b) DPO at 40% flips below clean DPO, paired over seeds (target p < 0.01)
    (c) the headroom at 40%: oracle cleaner minus DPO, paired, against the smallest difference the seeds detect
        (target >= 3 x MDE, p < 0.01)
    (d) the random cleaner minus DPO at 40% (target: not significantly above 0)
    (e) the median wall time of a cell (target <= 180 s on one core; its fastest cell beside it: the median is
        inflated when the cells shared the machine's cores with other work)

The study uses more seeds than the scan (10 for the primary conditions), so (b) and (c) are also projected to that
many seeds (``--study-seeds``): the same mean difference and seed spread, the t-test and MDE at n seeds. A
projection says which regime is worth the study; the study's own seeds then check (a)-(d) again.

and beside them the seed spread, the memorization rate and the margin quantiles of DPO's flipped and clean pairs
at the end of its run at 40%.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.records import iter_records
from bench.report import archive
from bench.report.stats import interval_and_mde, paired_test

METRIC = "gold_reward"
STUDY_SEEDS = 10  # the verdict study's seeds per primary condition (issue 23)
ARMS = {"DPO": "dpo", "ROPO (loss only)": "ropo", "DPO + oracle cleaner (remove)": "oracle",
        "DPO + random cleaner (remove)": "random"}


def points(records: list[dict]) -> pd.DataFrame:
    """One row per (cell, checkpoint): regime, arm, rate, lr, seed, step, epoch and the checkpoint's metrics."""
    rows = []
    for r in records:
        if r.get("status") != "ok" or r.get("loss_label") not in ARMS:
            continue
        cfg = r.get("config") or {}
        base = {"pairs": int(r.get("n_train_pairs") or 0), "prompts": int(cfg["data"]["n_train_prompts"]),
                "epochs": float(cfg["train"]["epochs"]), "arm": ARMS[r["loss_label"]], "rate": float(r["rate"]),
                "lr": float(cfg["train"]["learning_rate"]), "seed": int(r["seed"]), "cell_id": r["cell_id"],
                "total_s": float((r.get("timings") or {}).get("total", math.nan))}
        for p in r.get("curve") or [{"step": r.get("train_steps"), "epoch": math.nan, **r["metrics"]}]:
            rows.append({**base, **{k: v for k, v in p.items() if isinstance(v, (int, float))}})
    return pd.DataFrame(rows)


def best_points(df: pd.DataFrame) -> pd.DataFrame:
    """Per (regime, arm, rate): the (lr, step) with the highest mean gold over seeds, and every seed's row there
    (among the points that have as many seeds as the arm's most complete learning rate)."""
    keys = ["prompts", "epochs", "arm", "rate"]
    means = df.groupby([*keys, "lr", "step"])[METRIC].agg(["mean", "count"]).reset_index()
    # only among the (lr, step) points with every seed the arm has: a point one seed reached is no mean to compare
    means = means[means["count"] == means.groupby(keys)["count"].transform("max")].rename(columns={"mean": METRIC})
    pick = means.loc[means.groupby(keys)[METRIC].idxmax(), [*keys, "lr", "step"]]
    return df.merge(pick, on=[*keys, "lr", "step"])


def paired(a: pd.DataFrame, b: pd.DataFrame, metric: str = METRIC) -> dict:
    """a minus b on the seeds both have: the paired test, its interval half-width and MDE."""
    m = a[["seed", metric]].merge(b[["seed", metric]], on="seed", suffixes=("", "_b"))
    t = paired_test(m[metric] - m[f"{metric}_b"])
    half, mde = interval_and_mde(t["sd_diff"], t["n_pairs"])
    return {**t, "ci_half": half, "mde": mde}


def projected(t: dict, n: int) -> tuple[float, float]:
    """(the two-sided paired t-test's p, the MDE) of a paired difference ``t`` (``paired``) had it been measured on
    ``n`` seeds with the same mean and spread."""
    if not np.isfinite(t.get("sd_diff", math.nan)) or n < 2:
        return math.nan, math.nan
    mde = interval_and_mde(t["sd_diff"], n)[1]
    if t["sd_diff"] == 0:
        return (0.0 if t["mean_diff"] else 1.0), mde
    tt = t["mean_diff"] / (t["sd_diff"] / math.sqrt(n))
    return float(2 * stats.t.sf(abs(tt), n - 1)), mde


def regime_row(df: pd.DataFrame, best: pd.DataFrame, prompts: int, epochs: float, n: int = STUDY_SEEDS) -> dict:
    """The criteria (a)-(e) and the diagnostics of one regime (see the module docstring); ``n``: the study's seeds,
    for the projections of (b) and (c)."""
    at = best[(best["prompts"] == prompts) & (best["epochs"] == epochs)]

    def arm(name, rate):
        return at[(at["arm"] == name) & (np.isclose(at["rate"], rate))]

    clean, noisy = arm("dpo", 0.0), arm("dpo", 0.4)
    b, c, d = paired(noisy, clean), paired(arm("oracle", 0.4), noisy), paired(arm("random", 0.4), noisy)
    end = df[(df["prompts"] == prompts) & (df["epochs"] == epochs) & (df["arm"] == "dpo") & np.isclose(df["rate"], 0.4)]
    end = end[end["step"] == end.groupby("cell_id")["step"].transform("max")]
    end = end[np.isclose(end["lr"], float(noisy["lr"].iloc[0]))] if len(noisy) else end
    cells = df[(df["prompts"] == prompts) & (df["epochs"] == epochs)].drop_duplicates("cell_id")
    gain = (clean[METRIC] - clean["gold_reward_ref"]) if "gold_reward_ref" in clean else pd.Series(dtype=float)
    (b_pn, _), (c_pn, c_mden) = projected(b, n), projected(c, n)
    return {
        "pairs": int(cells["pairs"].median()) if len(cells) else 0, "epochs": epochs, "prompts": prompts,
        "cells": len(cells), "dpo_clean_gold": clean[METRIC].mean(), "a_gain_over_ref": gain.mean(),
        "a_ok": bool(gain.mean() >= 0.25), "b_noise_cost": b["mean_diff"], "b_p": b["p"],
        "b_ok": bool(b["mean_diff"] < 0 and b["p"] < 0.01), "c_headroom": c["mean_diff"], "c_ci_half": c["ci_half"],
        "c_mde": c["mde"], "c_p": c["p"], "c_ok": bool(c["mean_diff"] >= 3 * c["mde"] and c["p"] < 0.01),
        "d_random_minus_dpo": d["mean_diff"], "d_p": d["p"], "d_ok": not (d["mean_diff"] > 0 and d["p"] < 0.05),
        "study_seeds": n, "b_p_projected": b_pn, "b_ok_projected": bool(b["mean_diff"] < 0 and b_pn < 0.01),
        "c_mde_projected": c_mden, "c_p_projected": c_pn,
        "c_ok_projected": bool(c["mean_diff"] >= 3 * c_mden and c_pn < 0.01),
        "e_median_cell_s": cells["total_s"].median(), "e_min_cell_s": cells["total_s"].min(),
        "e_ok": bool(cells["total_s"].median() <= 180),
        "seed_sd_clean_dpo": clean[METRIC].std(ddof=1), "dpo_lr_clean": _first(clean, "lr"),
        "dpo_step_clean": _first(clean, "step"), "dpo_lr_40": _first(noisy, "lr"), "dpo_step_40": _first(noisy, "step"),
        "memorized_end_40": end["diag_memorized"].mean() if "diag_memorized" in end else math.nan,
        "fit_end_40": end["diag_fit"].mean() if "diag_fit" in end else math.nan,
        **{f"z_{g}_q{q}_end_40": end[f"diag_z_{g}_q{q}"].mean() if f"diag_z_{g}_q{q}" in end else math.nan
           for g in ("flipped", "clean") for q in ("05", "50", "95")},
    }


def versus_dpo(best: pd.DataFrame, arm: str = "ropo") -> pd.DataFrame:
    """``arm`` minus DPO per regime and flip rate, paired over seeds, each at its own screening choice: the mean
    difference, p and MDE (the interaction's raw material; the study proper tests its slope over the rate)."""
    rows = []
    for (prompts, epochs, rate), g in best.groupby(["prompts", "epochs", "rate"]):
        a, d = g[g["arm"] == arm], g[g["arm"] == "dpo"]
        if len(a) and len(d):
            t = paired(a, d)
            rows.append({"prompts": prompts, "pairs": int(d["pairs"].median()), "epochs": epochs, "rate": rate,
                         "arm": arm, "diff": t["mean_diff"],
                         "p": t["p"], "mde": t["mde"], "n": t["n_pairs"]})
    return pd.DataFrame(rows)


def _first(df: pd.DataFrame, col: str):
    return df[col].iloc[0] if len(df) else math.nan


def table(records: list[dict], study_seeds: int = STUDY_SEEDS, best: pd.DataFrame | None = None) -> pd.DataFrame:
    """The criteria per regime; ``best``: ``best_points`` of the records' points where the caller has it."""
    df = points(records)
    if df.empty:
        return pd.DataFrame()
    best = best_points(df) if best is None else best
    regimes = sorted({(int(p), float(e)) for p, e in zip(df["prompts"], df["epochs"])})
    return pd.DataFrame([regime_row(df, best, p, e, study_seeds) for p, e in regimes])


def markdown(t: pd.DataFrame) -> str:
    ok = lambda v: "yes" if v else "**no**"  # noqa: E731
    lines = ["| regime | cells | (a) clean DPO gain | (b) 40% cost, p | (c) headroom at 40% [MDE], p | "
             "(d) random - DPO, p | (e) median [fastest] cell s | seed sd | memorized / fit at end (DPO 40%) | "
             "z flipped q05/q50/q95 | z clean q05/q50/q95 |", "|" + "---|" * 11]
    for _, r in t.iterrows():
        lines.append(
            f"| {r['pairs']:,} pairs x {r['epochs']:g} ep | {r['cells']} | {r['a_gain_over_ref']:+.3f} ({ok(r['a_ok'])})"
            f" | {r['b_noise_cost']:+.3f}, {r['b_p']:.2g} ({ok(r['b_ok'])}) | {r['c_headroom']:+.3f} "
            f"[{r['c_mde']:.3f}], {r['c_p']:.2g} ({ok(r['c_ok'])}) | {r['d_random_minus_dpo']:+.3f}, {r['d_p']:.2g} "
            f"({ok(r['d_ok'])}) | {r['e_median_cell_s']:.0f} [{r['e_min_cell_s']:.0f}] ({ok(r['e_ok'])}) | "
            f"{r['seed_sd_clean_dpo']:.3f} | "
            f"{r['memorized_end_40']:.2f} / {r['fit_end_40']:.2f} | {r['z_flipped_q05_end_40']:+.2f} / "
            f"{r['z_flipped_q50_end_40']:+.2f} / {r['z_flipped_q95_end_40']:+.2f} | {r['z_clean_q05_end_40']:+.2f} / "
            f"{r['z_clean_q50_end_40']:+.2f} / {r['z_clean_q95_end_40']:+.2f} |")
    lines += ["", "Projected to the study's seeds (the same mean difference and seed spread, n seeds):", "",
              "| regime | n | (b) 40% cost, p | (c) headroom at 40% [MDE], p |", "|---|---|---|---|"]
    for _, r in t.iterrows():
        lines.append(f"| {r['pairs']:,} pairs x {r['epochs']:g} ep | {r['study_seeds']} | {r['b_noise_cost']:+.3f}, "
                     f"{r['b_p_projected']:.2g} ({ok(r['b_ok_projected'])}) | {r['c_headroom']:+.3f} "
                     f"[{r['c_mde_projected']:.3f}], {r['c_p_projected']:.2g} ({ok(r['c_ok_projected'])}) |")
    return "\n".join(lines) + "\n"


def versus_markdown(v: pd.DataFrame) -> str:
    if v.empty:
        return ""
    rates = sorted(v["rate"].unique())
    lines = [f"{v['arm'].iloc[0].upper()} minus DPO, paired over seeds, each at its screening choice:", "",
             "| regime | " + " | ".join(f"{r:g}" for r in rates) + " |", "|---|" + "---|" * len(rates)]
    for (_, epochs), g in v.groupby(["prompts", "epochs"]):
        cells = {r: g[g["rate"] == r] for r in rates}
        row = [f"{c['diff'].iloc[0]:+.3f} (p {c['p'].iloc[0]:.2g}, MDE {c['mde'].iloc[0]:.3f})" if len(c) else ""
               for c in cells.values()]
        lines.append(f"| {int(g['pairs'].iloc[0]):,} pairs x {epochs:g} ep | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--sweep", default="regimes")
    ap.add_argument("--study-seeds", type=int, default=STUDY_SEEDS, help="seeds of the study, for the projections")
    ap.add_argument("--archives", default=str(archive.DEFAULT_ROOT),
                    help="folder of archived studies read beside --results (as python -m bench.report); 'none'")
    ap.add_argument("--out", type=Path, default=None, help="folder for regimes.md and regimes.csv (default: "
                                                             "<results>/report)")
    a = ap.parse_args(argv)
    folders = [] if a.archives == "none" else archive.archived(Path(a.archives))
    with archive.viewed(a.results, folders) as source:
        recs = [r for r in iter_records(source) if r.get("sweep") == a.sweep]
    df = points(recs)
    best = best_points(df) if not df.empty else None
    t = table(recs, a.study_seeds, best)
    out = a.out or a.results / "report"
    out.mkdir(parents=True, exist_ok=True)
    if t.empty:
        print(f"no complete cells of sweep {a.sweep!r} under {a.results}")
        return 1
    t.to_csv(out / "regimes.csv", index=False)
    v = versus_dpo(best)
    v.to_csv(out / "regimes_ropo_vs_dpo.csv", index=False)
    text = markdown(t) + "\n" + versus_markdown(v)
    (out / "regimes.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
