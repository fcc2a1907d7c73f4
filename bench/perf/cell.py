"""Benchmark the foundation: world build, reference training, one cell.

    python -m bench.perf.cell                 # full: builds a fresh world in a temp dir (not the shipped one), then one cell
    python -m bench.perf.cell --reuse-world   # skip the build, reuse the world under .cache/

Prints wall times per phase. Target: world + reference <= 180 s, one cell <= 60 s (2-core CPU, 1 torch thread).
Our trainer path against bare TRL per step, with its spread: ``python -m bench.perf.steps`` (tiny or SmolLM2).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PREFNOISE_NO_PREBUILT", "1")  # the build is what is timed (bench/world/prebuilt.py)

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse-world", action="store_true", help="reuse the world under .cache/ (no build timing)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from bench import cell
    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose

    tmp = Path(tempfile.mkdtemp(prefix="prefnoise-bench-"))
    cache = ROOT / ".cache" if args.reuse_world else tmp / ".cache"
    cfg = compose([f"paths.root={tmp}", f"paths.cache={cache}", "sweep=benchmark", "train.progress=false"])
    parts = build_parts(cfg)

    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}")
    t0 = time.time()
    data = data_mod.load(parts.data, parts.model, str(cache))
    build = time.time() - t0
    wt = data.meta["world"]["timings"]
    if not args.reuse_world:
        print(f"world + reference build: {build:.1f} s (target <= 180 s)")
    print("  build phases (as recorded when built): " + ", ".join(f"{k} {v:.1f} s" for k, v in wt.items()))

    t0 = time.time()
    rec = cell.run_cell(cfg)
    wall = time.time() - t0
    tm = rec["timings"]
    print(f"one cell (train + evaluate, world cached): {wall:.1f} s wall (target <= 60 s)")
    print("  cell phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in tm.items() if k != "total"))
    print(f"  gold gain {rec['metrics']['gold_gain']:+.3f}, win rate {rec['metrics']['gold_win_rate']:.3f}")

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
