"""Benchmark the user's main sweep: shared caches on vs off, and joblib with 2 workers vs the basic launcher.

    python -m bench.perf.sweep                           # loss=ropo,dpo noise.rate=0,0.2,0.4 on the embedded default
    python -m bench.perf.sweep --world-cache .cache      # reuse a world already built there (saves the build)
    python -m bench.perf.sweep --skip-nocache            # only the launcher comparison
    python -m bench.perf.sweep --quick                   # smoke settings, 4 cells: checks that it all works

Everything runs in a temporary root (deleted unless --keep). The world (reference policy, training pairs) is built
once, or copied from --world-cache, and every timed sweep starts from a cache holding that world and nothing else:

    basic         python bench/run.py -m <sweep>                          shared caches on
    joblib        python bench/run.py -m hydra/launcher=parallel <sweep>  shared caches on, 2 workers
    no cache      PREFNOISE_NO_CACHE=1 python bench/run.py -m <sweep>     every cell rebuilds the world, the
                                                                          reference policy, its log-probs and samples

Prints wall times, where a cell's time goes in each sweep (its phases as its record timed them, and the rest, outside
any cell: process and worker start, imports, Hydra's job set-up, bookkeeping), and as ratios measured in this one run: no cache / basic (the caches' speed-up; also against
basic + one world build, i.e. both sweeps from nothing) and basic / joblib. Also checks that the cells' metrics
agree across the three sweeps. 2-core CPU: one torch thread per job (threads=1); the host is noisy, so --repeat 2
alternates the sweeps twice and keeps the faster time of each.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MAIN_SWEEP = ["loss=ropo,dpo", "noise.rate=0,0.2,0.4"]
QUICK_SWEEP = ["loss=ropo,dpo", "noise.rate=0,0.4"]
QUICK = ["experiment=smoke", "eval.max_new_tokens=4"]


def world_entry(base: list[str]) -> str:
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.world.build import world_key

    parts = build_parts(compose(base))
    return world_key(parts.data, parts.model)


def build_world(base: list[str], cache: Path, env: dict, log: Path) -> float:
    """Build the world into ``cache`` in a fresh process; returns its wall time."""
    code = (
        "from bench import data; from bench.cell.parts import build_parts; from bench.config.compose import compose\n"
        f"parts = build_parts(compose({base!r}))\n"
        f"data.load(parts.data, parts.model, {str(cache)!r})\n"
    )
    t0 = time.time()
    with open(log, "a") as f:
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.time() - t0


def run_sweep(name: str, args: list[str], root: Path, seed_cache: Path, env: dict, log: Path) -> dict:
    """One timed sweep in its own root, starting from a copy of the seed cache (the world only)."""
    if root.exists():
        shutil.rmtree(root)
    cache = root / ".cache"
    shutil.copytree(seed_cache, cache)
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "-m", *args, f"paths.cache={cache}", "sweep=benchmark"]
    env = {**env, "PREFNOISE_ROOT": str(root)}
    print(f"[{name}] {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    with open(log, "a") as f:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    from bench.core import records

    recs = {r["cell_id"]: r for r in records.iter_records(root / "results")}
    ok = sum(r["status"] == "ok" for r in recs.values())
    print(f"[{name}] {wall:.1f} s, exit {rc}, {ok}/{len(recs)} cells ok", flush=True)
    return {"wall_s": wall, "rc": rc, "cells_ok": ok, "records": recs}


PHASES = ("config", "data", "load_model", "trainer_init", "train", "checkpoints", "evaluate")


def where_time_goes(run: dict, n_jobs: int) -> dict:
    """Per cell of one timed sweep: its wall share (wall x jobs / cells: the cell's slot on a worker), the mean of
    each phase its record timed, and the rest, spent outside any cell's phases (process and worker start, imports
    before the first cell, Hydra's job set-up, the sweep's own bookkeeping)."""
    ok = [r for r in run["records"].values() if r["status"] == "ok"]
    if not ok:
        return {}
    slot = run["wall_s"] * n_jobs / len(ok)
    phases = {k: sum(float(r["timings"].get(k) or 0.0) for r in ok) / len(ok) for k in PHASES}
    inside = sum(float(r["timings"].get("total") or 0.0) for r in ok) / len(ok)
    return {"wall_per_cell_s": run["wall_s"] / len(ok), "slot_s": slot, "phases_s": phases, "in_cell_s": inside,
            "outside_s": slot - inside}


def max_metric_diff(a: dict, b: dict) -> float | None:
    diffs = []
    for cid, ra in a.items():
        rb = b.get(cid)
        if rb is None or ra["status"] != "ok" or rb["status"] != "ok":
            continue
        for k, v in ra["metrics"].items():
            w = rb["metrics"].get(k)
            if isinstance(v, float) and isinstance(w, float) and v == v and w == w:
                diffs.append(abs(v - w))
    return max(diffs) if diffs else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke settings and 4 cells: a functional check, not a figure")
    p.add_argument("--world-cache", type=Path, help="a cache dir (e.g. .cache) whose world entry to reuse if present")
    p.add_argument("--n-jobs", type=int, default=2, help="joblib workers")
    p.add_argument("--skip-nocache", action="store_true", help="skip the (slow) sweep without shared caches")
    p.add_argument("--repeat", type=int, default=1, help="alternate the sweeps this many times, keep the fastest")
    p.add_argument("--root", type=Path, help="work dir (default: a new temporary dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)

    base = QUICK if args.quick else []
    sweep = QUICK_SWEEP if args.quick else MAIN_SWEEP
    work = args.root or Path(tempfile.mkdtemp(prefix="prefnoise-bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "sweeps.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TQDM_DISABLE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled", "TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir(exist_ok=True)
    print(f"work dir {work}; sweep: {' '.join(base + sweep)}; log: {log}", flush=True)

    seed_cache = work / "seed_cache"
    key = world_entry(base)
    src = args.world_cache / "world" / key if args.world_cache else None
    world_s = None
    if src is not None and (src / ".complete").exists():
        shutil.copytree(src, seed_cache / "world" / key)
        print(f"world {key}: reused from {args.world_cache}", flush=True)
    else:
        if src is not None:
            print(f"world {key} not in {args.world_cache}: building it", flush=True)
        world_s = build_world(base, seed_cache, env, log)
        print(f"world {key}: built in {world_s:.1f} s", flush=True)
    meta = json.loads((seed_cache / "world" / key / "meta.json").read_text())
    world_build_s = world_s if world_s is not None else float(meta["timings"]["total"])

    runs: dict[str, list[dict]] = {"basic": [], "joblib": [], "nocache": []}
    for _ in range(args.repeat):
        runs["basic"].append(run_sweep("basic", base + sweep, work / "basic", seed_cache, env, log))
        runs["joblib"].append(run_sweep(
            f"joblib x{args.n_jobs}", base + sweep + ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.n_jobs}"],
            work / "joblib", seed_cache, env, log))
        if not args.skip_nocache:
            runs["nocache"].append(run_sweep(
                "no cache", base + sweep, work / "nocache", seed_cache, {**env, "PREFNOISE_NO_CACHE": "1"}, log))
    best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items() if v}
    failed = [k for k, r in best.items() if r["rc"] != 0]

    n_cells = best["basic"]["cells_ok"]
    out = {
        "sweep": " ".join(base + sweep),
        "cells": n_cells,
        "world_build_s": world_build_s,
        "world_reused": world_s is None,
        "wall_s": {k: r["wall_s"] for k, r in best.items()},
        "ratios": {"basic_over_joblib": best["basic"]["wall_s"] / best["joblib"]["wall_s"]},
        "max_metric_diff": {"joblib_vs_basic": max_metric_diff(best["basic"]["records"], best["joblib"]["records"])},
        "repeat": args.repeat,
        "failed_sweeps": failed,
    }
    out["per_cell"] = {"basic": where_time_goes(best["basic"], 1), "joblib": where_time_goes(best["joblib"], args.n_jobs)}
    if "nocache" in best:
        nc = best["nocache"]["wall_s"]
        out["ratios"]["nocache_over_cached"] = nc / best["basic"]["wall_s"]
        out["ratios"]["nocache_over_cached_plus_world"] = nc / (best["basic"]["wall_s"] + world_build_s)
        out["max_metric_diff"]["nocache_vs_basic"] = max_metric_diff(best["basic"]["records"], best["nocache"]["records"])

    print()
    print(f"sweep: python bench/run.py -m {' '.join(base + sweep)}  ({n_cells} cells, 1 torch thread per job)")
    rows = [("world build (once, shared)", world_build_s, " (from its meta.json: reused)" if world_s is None else ""),
            ("basic launcher, shared caches", best["basic"]["wall_s"], ""),
            (f"joblib x{args.n_jobs}, shared caches", best["joblib"]["wall_s"], "")]
    if "nocache" in best:
        rows.append(("basic launcher, no shared cache", best["nocache"]["wall_s"], ""))
    for label, secs, note in rows:
        print(f"  {label + ':':<34}{secs:8.1f} s{note}")
    ratios = [(f"joblib x{args.n_jobs} speed-up (basic / joblib)", out["ratios"]["basic_over_joblib"])]
    if "nocache" in best:
        ratios = [("caches speed-up (no cache / cached)", out["ratios"]["nocache_over_cached"]),
                  ("caches speed-up from nothing (no cache / (cached + world))",
                   out["ratios"]["nocache_over_cached_plus_world"])] + ratios
    for label, r in ratios:
        print(f"  {label + ':':<60}{r:6.2f}x")
    print("  per cell (mean over its records; slot = wall x jobs / cells):")
    for k, t in out["per_cell"].items():
        if t:
            parts = ", ".join(f"{name} {v:.1f}" for name, v in t["phases_s"].items() if v)
            print(f"    {k}: {t['wall_per_cell_s']:.1f} s of sweep wall a cell, slot {t['slot_s']:.1f} s = phases "
                  f"{t['in_cell_s']:.1f} s ({parts}) + outside the cells {t['outside_s']:.1f} s")
    for k, v in out["max_metric_diff"].items():
        print(f"  max |metric difference| {k}: {v if v is None else f'{v:.2e}'}")
    if failed:
        print(f"  FAILED sweeps: {failed} (see {log})")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    if args.keep or args.root:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
