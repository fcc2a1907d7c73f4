"""Benchmark the losses: per-step time of each loss relative to DPO on the same batches, and what a reference-free
loss (SimPO) saves by never loading or running a reference model.

    python -m bench.perf.losses                                  # the default world under ./.cache, else smoke
    python -m bench.perf.losses --world-root /path/to/root       # a PREFNOISE root, or a world folder
    python -m bench.perf.losses --steps 20 --repeats 3 --json results/benchmark_losses.json

Part 1, step time: one process, one thread, the world's reference policy and the same sequence of training
batches for every loss (the first ``batch_size * (warmup + steps)`` training pairs, reference log-probs
precomputed once and attached as cells get them from the shared cache). Each loss trains a fresh copy of the
policy through ``bench.training.PreferenceTrainer`` for ``warmup + steps`` steps; a callback times every optimizer
step; the first ``warmup`` are discarded. ``repeats`` passes over the losses (alternating order) pool their timed
steps; the table shows the median s/step and its ratio to DPO's, in wall time and in the main thread's CPU
time (one torch thread: the step's own work, far less moved by other jobs on a shared machine than wall time).

Part 2, reference-free saving: three fresh subprocesses, so that each memory figure is its own: DPO on this
project's path (the reference pass over every training pair happens at trainer init, with the
policy as reference, then steps read the precomputed values), DPO as TRL runs it by default (a live reference
model, a second forward every step; plain ``trl.DPOTrainer``, ``loss_type="sigmoid"``), and SimPO (no reference
at all). Each reports trainer init time (including any reference pass over all N pairs), median step time, the
peak growth of the resident set from just before the reference model and trainer exist to the end of training
(the kernel's high-water mark, reset at the phase's start: ``bench.perf.memory``; ``resource.getrusage``'s
``ru_maxrss`` is also recorded, but it is set by the imports and cannot resolve a few MB), and the reference
model's weight bytes.

Times on a shared CPU are noisy: repeat, and compare ratios within one run.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.perf.memory import Phase

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ the world
def find_world(world_root: str | None, cache: str) -> Path:
    """A world folder (``reference/`` + ``train_pairs.jsonl``): given directly, under ``<root>/.cache/world/``,
    under ``<cache>/world/``, or else the smoke world, built under ``cache`` (about a minute)."""
    def complete(d: Path) -> bool:
        return (d / "reference").is_dir() and (d / "train_pairs.jsonl").exists()

    candidates: list[Path] = []
    if world_root:
        p = Path(world_root)
        if complete(p):
            return p
        for base in (p / ".cache" / "world", p / "world", p):
            candidates += [d for d in sorted(base.glob("*/")) if complete(d)] if base.is_dir() else []
        if not candidates:
            raise SystemExit(f"--world-root {world_root}: no world folder (reference/ + train_pairs.jsonl) found")
    else:
        base = Path(cache) / "world"
        candidates = [d for d in sorted(base.glob("*/")) if complete(d)] if base.is_dir() else []
    if candidates:  # the largest world (most training pairs): the default world over the smoke world
        return max(candidates, key=lambda d: sum(1 for _ in open(d / "train_pairs.jsonl")))
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.world import build

    parts = build_parts(compose(["experiment=smoke"]))
    print("no world found: building the smoke world under", cache, flush=True)
    return build.load(parts.data, parts.model, cache).path


def load_pairs(world: Path, n: int | None):
    from datasets import Dataset

    rows = [json.loads(line) for line in open(world / "train_pairs.jsonl") if line.strip()]
    if not rows:
        raise SystemExit(f"{world}: no training pairs")
    if n is not None:
        rows = [rows[i % len(rows)] for i in range(n)]
    return Dataset.from_dict({k: [r[k] for r in rows] for k in ("prompt", "chosen", "rejected")})


def load_model(world: Path):
    import torch

    from bench.models import load_causal_lm

    torch.set_num_threads(1)
    return load_causal_lm(str(world / "reference"), "cpu")


def train_cfg(batch_size: int, steps: int, ref_batch_size: int = 64):
    from bench.config.compose import train_config

    return train_config(batch_size=batch_size, learning_rate=2e-4, max_steps=steps, warmup_steps=0,
                        lr_scheduler="constant", logging_steps=5, max_length=128, progress=False, device="cpu",
                        ref_batch_size=ref_batch_size)


def _step_timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time and this thread's CPU time of every optimizer step. With one torch thread every step runs
        on the main thread, so its CPU time is the step's work, little moved by other jobs on a shared host."""

        def __init__(self):
            self.times: list[float] = []
            self.cpu: list[float] = []
            self._t = self._c = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self._t, self._c = time.perf_counter(), time.thread_time()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.thread_time() - self._c)

    return StepTimer()


# ------------------------------------------------------------------------------------------------ part 1
def step_times(world: Path, names: list[str], batch_size: int, warmup: int, steps: int, repeats: int,
               out_dir: Path) -> list[dict]:
    from bench import losses
    from bench import training as tr

    policy0, tok = load_model(world)
    n = batch_size * (warmup + steps)
    data = load_pairs(world, n)
    # reference log-probs once (TRL's precompute with the initial policy), attached for every loss needing them
    pre = tr.PreferenceTrainer(model=copy.deepcopy(policy0), args=tr.dpo_config(train_cfg(batch_size, 1), out_dir / "pre", 0),
                               train_dataset=data, processing_class=tok, pref_loss=losses.get("dpo"))
    with_ref = data.add_column("ref_chosen_logps", pre.train_dataset["ref_chosen_logps"]).add_column(
        "ref_rejected_logps", pre.train_dataset["ref_rejected_logps"])
    del pre
    timed: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            loss = losses.from_config({"name": name}, noise_rate=0.2)
            timer = _step_timer()
            trainer = tr.PreferenceTrainer(
                model=copy.deepcopy(policy0), args=tr.dpo_config(train_cfg(batch_size, warmup + steps), out_dir / name, 0),
                train_dataset=with_ref if loss.needs_reference_model else data, processing_class=tok, pref_loss=loss,
                callbacks=[timer],
            )
            trainer.train()
            timed[name] += timer.times[warmup:]
            cpu[name] += timer.cpu[warmup:]
            print(f"  pass {rep + 1}/{repeats} {name:7s} median {statistics.median(timer.times[warmup:]):.4f} s/step "
                  f"(CPU {statistics.median(timer.cpu[warmup:]):.4f} s)", flush=True)
    base = statistics.median(timed["dpo"]) if "dpo" in timed else None
    base_cpu = statistics.median(cpu["dpo"]) if "dpo" in cpu else None
    rows = []
    for name in names:
        loss = losses.from_config({"name": name}, noise_rate=0.2)
        med, med_cpu = statistics.median(timed[name]), statistics.median(cpu[name])
        rows.append({"loss": name, "label": loss.label, "reference": loss.needs_reference_model,
                     "median_s_per_step": med, "ratio_to_dpo": med / base if base else None,
                     "median_cpu_s_per_step": med_cpu, "cpu_ratio_to_dpo": med_cpu / base_cpu if base_cpu else None,
                     "n_timed_steps": len(timed[name]),
                     "iqr_s": _iqr(timed[name])})
    return rows


def _iqr(xs: list[float]) -> float:
    if len(xs) < 4:
        return float("nan")
    q = statistics.quantiles(xs, n=4)
    return q[2] - q[0]


# ------------------------------------------------------------------------------------------------ part 2
def reference_run(mode: str, world: str, batch_size: int, steps: int, n_pairs: int | None, out_dir: str) -> dict:
    """One configuration in this (fresh) process: trainer init time (incl. any reference pass), step times, and
    the peak RSS growth from just before the reference model / trainer exist to the end of training."""
    import gc

    from bench import losses
    from bench import training as tr

    policy, tok = load_model(Path(world))
    data = load_pairs(Path(world), n_pairs)
    ref_bytes = sum(p.numel() * p.element_size() for p in policy.parameters())
    timer = _step_timer()
    gc.collect()
    with Phase() as rss:
        t0, c0 = time.perf_counter(), time.thread_time()
        if mode == "dpo_live_reference":  # TRL's default: a second model, a reference forward in every step
            import dataclasses

            from trl import DPOTrainer

            ref_model = copy.deepcopy(policy)
            args = tr.dpo_config(train_cfg(batch_size, steps), Path(out_dir) / mode, 0)
            args = dataclasses.replace(args, precompute_ref_log_probs=False)  # loss_type: TRL's default "sigmoid"
            trainer = DPOTrainer(model=policy, ref_model=ref_model, args=args, train_dataset=data,
                                 processing_class=tok, callbacks=[timer])
        else:
            loss = losses.get("simpo" if mode == "simpo_no_reference" else "dpo")
            trainer = tr.PreferenceTrainer(model=policy, args=tr.dpo_config(train_cfg(batch_size, steps), Path(out_dir) / mode, 0),
                                           train_dataset=data, processing_class=tok, pref_loss=loss, callbacks=[timer])
        init_s, init_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
        trainer.train()
    return {
        "mode": mode,
        "n_pairs": len(data),
        "trainer_init_s": init_s,
        "trainer_init_cpu_s": init_cpu_s,
        "median_s_per_step": statistics.median(timer.times[2:] or timer.times),
        "median_cpu_s_per_step": statistics.median(timer.cpu[2:] or timer.cpu),
        "peak_rss_growth_mb": rss.growth / 2**20, "peak_exact": rss.exact, "peak_method": rss.method,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reference_weights_mb": ref_bytes / 2**20 if mode == "dpo_live_reference" else 0.0,
        "reference_work": {"dpo_precompute": "one pass over all pairs at init", "dpo_live_reference":
                           "a second model, one forward per step", "simpo_no_reference": "none"}[mode],
    }


def reference_savings(world: Path, batch_size: int, steps: int, n_pairs: int | None, out_dir: Path) -> list[dict]:
    rows = []
    for mode in ("dpo_precompute", "dpo_live_reference", "simpo_no_reference"):
        cmd = [sys.executable, "-m", "bench.perf.losses", "--_child", mode, "--world-root", str(world), "--batch-size", str(batch_size),
               "--steps", str(steps), "--out-dir", str(out_dir)] + (["--pairs", str(n_pairs)] if n_pairs else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            raise RuntimeError(f"{mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        rows.append(json.loads(line[-1][len("RESULT "):]))
        print(f"  {mode}: init {rows[-1]['trainer_init_s']:.2f} s, step {rows[-1]['median_s_per_step']:.4f} s, "
              f"peak RSS growth {rows[-1]['peak_rss_growth_mb']:.1f} MB ({rows[-1]['peak_method']})", flush=True)
    return rows


# ------------------------------------------------------------------------------------------------ tables
def print_tables(step_rows: list[dict], ref_rows: list[dict], meta: dict) -> None:
    print(f"\nworld: {meta['world']} ({meta['n_train_pairs']} training pairs), batch {meta['batch_size']} pairs, "
          f"{meta['warmup']} warm-up + {meta['steps']} timed steps x {meta['repeats']} passes, 1 thread")
    print(f"\n{'loss':22s} {'reference':>9s} {'wall s/step':>12s} {'IQR s':>7s} {'x DPO':>6s} {'CPU s/step':>11s} "
          f"{'x DPO (CPU)':>12s}")
    fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
    for r in step_rows:
        print(f"{r['label']:22s} {'yes' if r['reference'] else 'no':>9s} {r['median_s_per_step']:12.4f} "
              f"{r['iqr_s']:7.3f} {fmt(r['ratio_to_dpo']):>6s} {r['median_cpu_s_per_step']:11.4f} "
              f"{fmt(r['cpu_ratio_to_dpo']):>12s}")
    if ref_rows:
        print(f"\nreference-free saving ({ref_rows[0]['n_pairs']} pairs at trainer init, batch {meta['batch_size']}):")
        print(f"{'configuration':20s} {'init s':>7s} {'(CPU)':>7s} {'s/step':>8s} {'(CPU)':>7s} "
              f"{'peak RSS growth MB':>19s} {'ref weights MB':>15s}  reference work")
        for r in ref_rows:
            print(f"{r['mode']:20s} {r['trainer_init_s']:7.2f} {r['trainer_init_cpu_s']:7.2f} "
                  f"{r['median_s_per_step']:8.4f} {r['median_cpu_s_per_step']:7.4f} "
                  f"{r['peak_rss_growth_mb']:19.1f} {r['reference_weights_mb']:15.2f}  {r['reference_work']}")
        by = {r["mode"]: r for r in ref_rows}
        s, p, live = by["simpo_no_reference"], by["dpo_precompute"], by["dpo_live_reference"]
        print(f"\nSimPO vs DPO on this project's path (precompute): {p['trainer_init_s'] - s['trainer_init_s']:.2f} s "
              f"({p['trainer_init_cpu_s'] - s['trainer_init_cpu_s']:.2f} CPU s) of trainer init saved (the reference "
              f"pass), peak RSS growth {p['peak_rss_growth_mb'] - s['peak_rss_growth_mb']:+.1f} MB")
        print(f"SimPO vs DPO as TRL runs it by default (live reference): step CPU {s['median_cpu_s_per_step']:.4f} vs "
              f"{live['median_cpu_s_per_step']:.4f} s ({1 - s['median_cpu_s_per_step'] / live['median_cpu_s_per_step']:.0%} saved), "
              f"no {live['reference_weights_mb']:.2f} MB reference model, peak RSS growth "
              f"{live['peak_rss_growth_mb'] - s['peak_rss_growth_mb']:+.1f} MB")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world-root", help="a PREFNOISE root (with .cache/world/), a cache folder, or a world folder")
    ap.add_argument("--cache", default=str(ROOT / ".cache"), help="where to look for (or build) a world otherwise")
    ap.add_argument("--losses", default="all", help="comma-separated loss names (default: every registered loss)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=None, help="pairs at trainer init in part 2 (default: all)")
    ap.add_argument("--no-reference-savings", action="store_true")
    ap.add_argument("--json", help="write both tables as JSON here")
    ap.add_argument("--out-dir", default=None, help="scratch folder for trainer outputs (default: a temp dir)")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    import tempfile

    out_dir = Path(a.out_dir or tempfile.mkdtemp(prefix="prefnoise-bench-"))
    if a._child:
        print("RESULT " + json.dumps(reference_run(a._child, a.world_root, a.batch_size, a.steps, a.pairs, str(out_dir))))
        return

    import torch

    from bench import losses

    torch.set_num_threads(1)
    world = find_world(a.world_root, a.cache)
    names = losses.names() if a.losses == "all" else [s.strip() for s in a.losses.split(",")]
    if "dpo" in names:  # DPO first: the baseline
        names = ["dpo"] + [n for n in names if n != "dpo"]
    n_train = sum(1 for line in open(world / "train_pairs.jsonl") if line.strip())
    meta = {"world": str(world), "n_train_pairs": n_train, "batch_size": a.batch_size, "warmup": a.warmup,
            "steps": a.steps, "repeats": a.repeats, "torch_threads": torch.get_num_threads()}
    print(f"part 1: step time per loss on {world}", flush=True)
    t0 = time.time()
    step_rows = step_times(world, names, a.batch_size, a.warmup, a.steps, a.repeats, out_dir)
    ref_rows = []
    if not a.no_reference_savings:
        print("part 2: reference-free saving (fresh processes)", flush=True)
        ref_rows = reference_savings(world, a.batch_size, max(a.steps, 5), a.pairs, out_dir)
    meta["wall_s"] = time.time() - t0
    print_tables(step_rows, ref_rows, meta)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"meta": meta, "step_time": step_rows, "reference_free": ref_rows}, indent=1))
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
