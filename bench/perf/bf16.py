"""Whether bf16 on the CPU changes results: the same cells in fp32 and under bf16 autocast, paired by seed.

    python bench/run.py -m loss=dpo,ropo noise.rate=0,0.4 seed=0,1,2,3,4 train.bf16=auto,true sweep=bf16_cpu
    python -m bench.perf.bf16 --results results --multirun results/multiruns/<that sweep's folder>

(``train.bf16=auto`` is fp32 on the CPU: run it there; on a GPU ``auto`` is bf16 and nothing would pair.) For each
(loss, rate): the mean paired difference bf16 - fp32 of the headline metric over seeds, its 95% interval and
paired-t p, and the training phase's time ratio bf16 / fp32 (indicative: a cell found complete from an earlier run
keeps that run's time; the per-step ratio is ``bench.perf.steps``'). Beside them a yardstick: the smallest difference
(80% power) that these same seeds detect between the loss and DPO in fp32 at that rate, the per-rate comparison a
study makes with as many seeds (a study with more seeds detects smaller ones: scale by sqrt(n / n_study)). bf16
could be a default only where its interval lies well within that yardstick (and where it is faster). The sweep
must vary only loss, rate, seed and precision: a cell met twice is an error.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from bench.core.records import read_record
from bench.report.stats import interval_and_mde, paired_test
from bench.sweep.status import read_statuses


def cell_ids(multirun: Path) -> list[str]:
    """The cells a multirun ran or found done (its jobs' statuses, ``bench.sweep.status``): a cell already complete
    under another sweep's name (the default cells at fp32) counts as this sweep's."""
    return [s["cell_id"] for s in read_statuses(multirun) if s.get("cell_id")]


def rows_of(results: str, ids: list[str], metric: str) -> list[dict]:
    """One row per ok cell: loss, rate, seed, precision, the metric, the training seconds."""
    out = []
    for cid in ids:
        rec = read_record(results, cid)
        if rec is None or rec.get("status") != "ok":
            continue
        cfg = rec["config"]
        bf16 = (rec.get("provenance") or {}).get("dtype") == "bfloat16"
        out.append({"loss": cfg["loss"]["name"], "rate": float(cfg["noise"]["rate"]), "seed": int(cfg["seed"]),
                    "bf16": bf16, "value": float(rec["metrics"][metric]), "train_s": float(rec["timings"]["train"])})
    return out


def table(rows: list[dict], baseline: str = "dpo") -> list[dict]:
    """Per (loss, rate): bf16 - fp32 paired over seeds, and the fp32 loss-vs-baseline yardstick (MDE)."""
    cell = {(r["loss"], r["rate"], r["seed"], r["bf16"]): r for r in rows}
    if len(cell) < len(rows):
        raise SystemExit("two cells of this sweep share loss, rate, seed and precision (another method, noise or "
                         "setting?): run the sweep of the docstring under a sweep name of its own")
    out = []
    for loss, rate in sorted({(r["loss"], r["rate"]) for r in rows}):
        seeds = sorted({s for (lo, ra, s, b) in cell if (lo, ra, b) == (loss, rate, True) and
                        (loss, rate, s, False) in cell})
        diff = [cell[(loss, rate, s, True)]["value"] - cell[(loss, rate, s, False)]["value"] for s in seeds]
        test = paired_test(diff)
        half, _ = interval_and_mde(test["sd_diff"], len(seeds))
        time_ratio = [cell[(loss, rate, s, True)]["train_s"] / cell[(loss, rate, s, False)]["train_s"] for s in seeds]
        vs = [s for s in seeds if (baseline, rate, s, False) in cell] if loss != baseline else []
        gap = [cell[(loss, rate, s, False)]["value"] - cell[(baseline, rate, s, False)]["value"] for s in vs]
        _, yardstick = interval_and_mde(float(np.std(gap, ddof=1)) if len(gap) > 1 else np.nan, len(gap))
        out.append({"loss": loss, "rate": rate, "n": len(seeds), "diff": test["mean_diff"],
                    "ci": (test["mean_diff"] - half, test["mean_diff"] + half), "p": test["p"],
                    "time_ratio": statistics.median(time_ratio) if time_ratio else np.nan,
                    "time_range": (min(time_ratio), max(time_ratio)) if time_ratio else (np.nan, np.nan),
                    "mde_vs_baseline": yardstick})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results")
    ap.add_argument("--multirun", type=Path, required=True, help="the sweep's folder (results/multiruns/<time>)")
    ap.add_argument("--metric", default="gold_reward")
    a = ap.parse_args()
    rows = table(rows_of(a.results, cell_ids(a.multirun), a.metric))
    if not rows:
        raise SystemExit(f"no ok records of the cells of {a.multirun}; run the sweep in the docstring first")
    print(f"| loss | rate | seeds | {a.metric}: bf16 - fp32 | 95% interval | p | train time bf16 / fp32 (range) | "
          "MDE of loss - DPO (fp32) |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['loss']} | {r['rate']:g} | {r['n']} | {r['diff']:+.4f} | {r['ci'][0]:+.4f} to {r['ci'][1]:+.4f} | "
              f"{r['p']:.3g} | {r['time_ratio']:.2f} ({r['time_range'][0]:.2f}-{r['time_range'][1]:.2f}) | "
              f"{r['mde_vs_baseline']:.4f} |")


if __name__ == "__main__":
    main()
