"""Benchmark the foundation: world build, reference training, one cell, and our trainer path vs bare TRL.

    python -m bench.perf.cell                 # full: builds a fresh world in a temp dir, then one cell
    python -m bench.perf.cell --reuse-world   # skip the build, reuse the world under .cache/
    python -m bench.perf.cell --steps 40      # more timed steps for the per-step comparison

Prints wall times and the per-step ratio (ours / bare TRL DPOTrainer with loss_type="sigmoid") on the same model,
data and batch, measured in one run: the two trainers alternate in blocks so that host noise hits both alike.
Target: world + reference <= 180 s, one cell <= 60 s, per-step ratio <= 1.05 (2-core CPU, 1 torch thread).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[2]


class StepTimer:
    """TrainerCallback measuring wall time of each optimizer step."""

    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)

    def __getattr__(self, name):  # every other callback event: no-op
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def time_steps(kind: str, model_path: str, train_ds, batch: int, steps: int) -> list[float]:
    from trl import DPOConfig, DPOTrainer

    from bench import losses
    from bench import training as tr
    from bench.models import load_causal_lm

    model, tok = load_causal_lm(model_path, "cpu")
    args = DPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps, learning_rate=2e-4,
        logging_steps=10**6, save_strategy="no", report_to="none", bf16=False, activation_checkpointing=False,
        use_cpu=True, precompute_ref_log_probs=True, seed=0, data_seed=0, disable_tqdm=True, beta=0.1,
        loss_type=["sigmoid"], max_length=128,
    )
    timer = StepTimer()
    if kind == "bare":
        t = DPOTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok, callbacks=[timer])
    else:
        t = tr.PreferenceTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok,
                                 callbacks=[timer], pref_loss=losses.get("dpo", beta=0.1))
    t.train()
    return timer.times[2:]  # the first steps warm up allocators


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse-world", action="store_true", help="reuse the world under .cache/ (no build timing)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per block for the per-step comparison")
    ap.add_argument("--blocks", type=int, default=3, help="alternating blocks per trainer")
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

    batch = int(cfg.train.batch_size)
    n = batch * (args.steps + 2)
    train = data.train.select(range(min(n, len(data.train))))
    ours, bare = [], []
    for _ in range(args.blocks):
        bare += time_steps("bare", data.model_path, train, batch, args.steps + 2)
        ours += time_steps("ours", data.model_path, train, batch, args.steps + 2)
    mb, mo = statistics.median(bare), statistics.median(ours)
    print(f"per step, batch {batch} pairs, {len(bare)} steps each in {args.blocks} alternating blocks:")
    print(f"  bare TRL DPOTrainer (sigmoid): median {mb * 1000:.1f} ms")
    print(f"  prefnoise PreferenceTrainer (dpo from the registry): median {mo * 1000:.1f} ms")
    print(f"  ratio ours / bare: {mo / mb:.3f} (target <= 1.05)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
