"""What ROPO's full method costs against a standard cell with the same optimizer steps.

    python -m bench.perf.ropo                  # 3 repeats, random flips at 0.4, seed 0, the default world
    python -m bench.perf.ropo --repeats 5 --rate 0.2

Each repeat runs the same cell twice, ``loss=ropo method=standard`` and ``loss=ropo method=ropo_full`` (``budget:
matched``: the same optimizer steps and learning-rate curve), in alternating order, each a fresh process with
``resume=false`` and the shared caches warm (the world and the reference log-probs are built by one untimed cell
first). The statistic is the ratio full / standard of each repeat's pair, for the whole cell and for its training
phase (trainer set-up + training: the method's own cost; evaluation is the same for both); the report gives every
repeat's ratios, their median and spread, the full method's phases (train, filter, generate, candidates) and its
filter precision and recall, which are deterministic given the seed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cell(method: str, rate: float, seed: int, results: Path) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "loss=ropo", f"method={method}",
                    f"noise.rate={rate}", f"seed={seed}", "resume=false", f"paths.results={results}",
                    "train.progress=false"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    (rec,) = [json.loads(p.read_text()) for p in results.glob("cells/*/record.json")]
    return rec


def train_phase(rec: dict) -> float:
    t = rec["timings"]
    return float(t["trainer_init"] + t["train"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prefnoise-ropo-bench-"))
    run_cell("standard", a.rate, a.seed, tmp / "warm")  # builds/loads the world and the shared reference log-probs
    rows = []
    for r in range(a.repeats):
        order = ("standard", "ropo_full") if r % 2 == 0 else ("ropo_full", "standard")
        recs = {m: run_cell(m, a.rate, a.seed, tmp / f"r{r}_{m}") for m in order}
        s, f = recs["standard"], recs["ropo_full"]
        rows.append({"repeat": r + 1, "order": list(order), "standard_total_s": s["timings"]["total"],
                     "full_total_s": f["timings"]["total"], "standard_train_s": train_phase(s),
                     "full_train_s": train_phase(f), "ratio_total": f["timings"]["total"] / s["timings"]["total"],
                     "ratio_train": train_phase(f) / train_phase(s), "steps": [s["train_steps"], f["train_steps"]],
                     "full_phases": f.get("ropo_full_timings"), "precision": f["ropo_full"]["filter_precision"],
                     "recall": f["ropo_full"]["filter_recall_mean"]})
        print(f"repeat {r + 1} ({' then '.join(order)}): standard {rows[-1]['standard_total_s']:.1f} s, full "
              f"{rows[-1]['full_total_s']:.1f} s; ratio {rows[-1]['ratio_total']:.2f} (cell), "
              f"{rows[-1]['ratio_train']:.2f} (training phase)", flush=True)
    out = {"rate": a.rate, "seed": a.seed, "repeats": rows}
    for key in ("ratio_total", "ratio_train"):
        vals = [x[key] for x in rows]
        out[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    phases = {k: statistics.median(x["full_phases"][k] for x in rows) for k in rows[0]["full_phases"]}
    print(f"full / standard, whole cell: median {out['ratio_total']['median']:.2f} (range "
          f"{out['ratio_total']['min']:.2f}-{out['ratio_total']['max']:.2f}); training phase: median "
          f"{out['ratio_train']['median']:.2f} (range {out['ratio_train']['min']:.2f}-{out['ratio_train']['max']:.2f})")
    print("full method's phases (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    print(f"optimizer steps standard / full: {rows[0]['steps']}; filter precision {rows[0]['precision']:.4f}, "
          f"recall {rows[0]['recall']:.4f} (every repeat: "
          f"{'identical' if len({(x['precision'], x['recall']) for x in rows}) == 1 else 'DIFFERENT'})")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
