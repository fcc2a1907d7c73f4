"""Per-step cost of prefnoise's trainer path against bare TRL, and the memory of three ways to have a reference.

    python -m bench.perf.steps --model tiny                 # the world's tiny model (930k parameters)
    python -m bench.perf.steps --model smollm2              # SmolLM2-135M-Instruct on its own world's pairs
    python -m bench.perf.steps --model smollm2 --memory     # + peak memory / step time: live ref, cached, SimPO

**Ours vs bare TRL.** Two trainers on two copies of the same model and the same pairs: prefnoise's
``PreferenceTrainer`` with the registry's DPO, and TRL's own ``DPOTrainer`` (``loss_type="sigmoid"``), both with
precomputed reference log-probs. The batches are collated once and fed to both. One measurement is one optimizer
step (``training_step``: forward, backward; then the optimizer step) of each trainer, back to back, the order
alternating (AB, BA, ...) so drift and noise from other processes hit both alike; the statistic is the ratio of
the two times of each such pair. Repeats are blocks of pairs: the report gives each block's median ratio, their
spread (min to max) and the pooled median with a bootstrap 95% interval. A ratio whose interval holds 1 is "no
measurable difference at this resolution", not a speed-up or a slow-down.

**Memory** (``--memory``): one process per configuration (peak RSS is per process), each training the same steps:
TRL's ``DPOTrainer`` with a live reference model (a second copy in memory, a reference forward per step); ours
with the reference log-probs precomputed (the shared cache's path: no reference model held during training); ours
with SimPO (reference-free: no reference pass at all). The configurations run in rotating order, ``--rounds``
times. Also the reference pass itself (TRL's precompute) per pair.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.perf.memory import Phase

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[2]
WORLDS = {  # the world and the model each benchmark runs on (the cached world is reused; built on first use)
    "tiny": [],
    "smollm2": ["experiment=world_smollm2_cpu"],
}


# ------------------------------------------------------------------------------------------------ the statistic
def paired_ratios(ours: list[float], bare: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, bare)]


def summary(ratios: list[float], blocks: int, seed: int = 0, n_boot: int = 2000) -> dict:
    """Per-block medians, their spread, the pooled median and its bootstrap 95% interval."""
    size = max(1, len(ratios) // blocks)
    per_block = [statistics.median(ratios[i * size:(i + 1) * size]) for i in range(blocks) if ratios[i * size:(i + 1) * size]]
    rng = random.Random(seed)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(n_boot))
    lo, hi = boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]
    med = statistics.median(ratios)
    return {"median": med, "ci95": [lo, hi], "block_medians": per_block,
            "block_spread": [min(per_block), max(per_block)], "n_pairs": len(ratios),
            "resolved": not (lo <= 1.0 <= hi)}


# ------------------------------------------------------------------------------------------------ the trainers
def _world(model: str):
    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose

    parts = build_parts(compose([*WORLDS[model], "train.progress=false"]))
    return data_mod.load(parts.data, parts.model, str(ROOT / ".cache")), parts


def _args(batch: int, steps: int, max_length: int, precompute: bool = True):
    from trl import DPOConfig

    return DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
                     learning_rate=1e-5, logging_steps=10**6, save_strategy="no", report_to="none", bf16=False,
                     activation_checkpointing=False, use_cpu=True, precompute_ref_log_probs=precompute, seed=0,
                     data_seed=0, disable_tqdm=True, beta=0.1, loss_type=["sigmoid"], max_length=max_length,
                     lr_scheduler_type="constant", warmup_steps=0)


def trainer(kind: str, model_path: str, pairs, batch: int, steps: int, max_length: int):
    """``ours`` (PreferenceTrainer, registry DPO), ``bare`` (TRL DPOTrainer), ``live`` (TRL with a live reference
    model), or ``simpo`` (ours, reference-free); reference log-probs precomputed except for ``live``."""
    from trl import DPOTrainer

    from bench import losses
    from bench import training as tr
    from bench.models import load_causal_lm
    from bench.models.callbacks import quiet

    model, tok = load_causal_lm(model_path, "cpu")
    if kind == "bare":
        t = DPOTrainer(model=model, args=_args(batch, steps, max_length), train_dataset=pairs, processing_class=tok)
    elif kind == "live":
        ref, _ = load_causal_lm(model_path, "cpu")
        t = DPOTrainer(model=model, ref_model=ref, args=_args(batch, steps, max_length, precompute=False),
                       train_dataset=pairs, processing_class=tok)
    else:
        loss = losses.get("dpo", beta=0.1) if kind == "ours" else losses.get("simpo")
        t = tr.PreferenceTrainer(model=model, args=_args(batch, steps, max_length), train_dataset=pairs,
                                 processing_class=tok, pref_loss=loss)
    if kind in ("bare", "live"):
        quiet(t, kind)  # ours quiets itself
    t.create_optimizer()
    t.current_gradient_accumulation_steps = 1  # what Trainer.train() sets before its first training_step
    return t


def one_step(t, inputs) -> float:
    t0 = time.perf_counter()
    t.training_step(t.model, dict(inputs))
    t.optimizer.step()
    t.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def batches(t, n: int) -> list[dict]:
    loader = t.get_train_dataloader()
    out = []
    while len(out) < n:
        for b in loader:
            out.append(b)
            if len(out) == n:
                break
    return out


def compare(model: str, batch: int, pairs_per_block: int, blocks: int, warmup: int) -> dict:
    data, parts = _world(model)
    n = batch * 8
    pairs = data.train.select(range(min(n, len(data.train))))
    max_length = int(parts.train.max_length or 128)
    ours = trainer("ours", data.model_path, pairs, batch, 10**6, max_length)
    bare = trainer("bare", data.model_path, pairs, batch, 10**6, max_length)
    feed = batches(ours, warmup + pairs_per_block * blocks)
    for b in feed[:warmup]:
        one_step(ours, b), one_step(bare, b)
    t_ours, t_bare = [], []
    for i, b in enumerate(feed[warmup:]):
        if i % 2 == 0:
            t_ours.append(one_step(ours, b))
            t_bare.append(one_step(bare, b))
        else:
            t_bare.append(one_step(bare, b))
            t_ours.append(one_step(ours, b))
    return {"model": model, "batch": batch, "median_step_s": {"ours": statistics.median(t_ours),
                                                              "bare": statistics.median(t_bare)},
            "ratio_ours_over_bare": summary(paired_ratios(t_ours, t_bare), blocks),
            "positions_first_batch": positions(ours.model, feed[0]), "our_path": _path(ours)}


def positions(model, inputs: dict) -> dict:
    """Positions one step's forward computes on ``inputs``: TRL's padded batch, packed, packed with shared prompts."""
    from bench.training import packing

    args = (inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"])
    return {"trl_padded": inputs["input_ids"].numel(), "packed": packing.pack(*args).input_ids.numel(),
            "shared": packing.pack(*args, share=True, qk=packing.qk_cost(model)).input_ids.numel()}


def _path(t) -> str:
    """The path our trainer took after its first-batch check."""
    return "padded (TRL's)" if not t.packing else "packed, shared prompts" if t.share_prompt else "packed"


# ------------------------------------------------------------------------------------------------ memory
def memory_child(kind: str, model: str, batch: int, steps: int) -> dict:
    """One configuration in this process: its reference pass (if any), ``steps`` steps, and two peaks, each with
    the way it was measured (``bench.perf.memory``): while setting up (the model(s), the reference pass) and while
    training (from the RSS training starts at). Loading the world's data, the same for all, is before both."""
    data, parts = _world(model)
    pairs = data.train.select(range(min(batch * steps, len(data.train))))
    gc.collect()
    with Phase() as setup:
        t0 = time.perf_counter()
        t = trainer(kind, data.model_path, pairs, batch, 10**6, int(parts.train.max_length or 128))
        init = time.perf_counter() - t0  # model load(s) + tokenization + the reference pass where precomputed
        feed = batches(t, steps + 1)
    gc.collect()
    with Phase() as train:
        one_step(t, feed[0])
        times = [one_step(t, b) for b in feed[1:]]
    return {"kind": kind, "init_s": init, "n_pairs": len(pairs), "median_step_s": statistics.median(times),
            "peak_setup_gib": setup.peak / 2**30, "peak_train_gib": train.peak / 2**30,
            "peak_method": f"{setup.method}/{train.method}",
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def reference_pass(model: str, n_pairs: int, batch: int) -> dict:
    """TRL's precompute over ``n_pairs`` pairs: seconds per pair."""
    data, parts = _world(model)
    pairs = data.train.select(range(min(n_pairs, len(data.train))))
    from trl import DPOTrainer

    from bench.models import load_causal_lm

    model_, tok = load_causal_lm(data.model_path, "cpu")
    args = _args(batch, 1, int(parts.train.max_length or 128))
    args.precompute_ref_batch_size = batch
    t0 = time.perf_counter()
    DPOTrainer(model=model_, args=args, train_dataset=pairs, processing_class=tok)
    total = time.perf_counter() - t0
    return {"n_pairs": len(pairs), "trainer_init_with_reference_pass_s": total, "s_per_pair": total / len(pairs)}


def memory(model: str, batch: int, steps: int, rounds: int) -> list[dict]:
    kinds = ["live", "ours", "simpo"]
    rows = []
    for r in range(rounds):
        for kind in kinds[r % 3:] + kinds[: r % 3]:
            out = subprocess.run([sys.executable, "-m", "bench.perf.steps", "--child", kind, "--model", model,
                                  "--batch", str(batch), "--steps", str(steps)], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            rows.append({"round": r + 1, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def _print_compare(model: str, batch: int, cmp: dict) -> None:
    c, med = cmp["ratio_ours_over_bare"], cmp["median_step_s"]
    print(f"{model}, batch {batch}: median step ours {med['ours'] * 1000:.1f} ms, bare TRL {med['bare'] * 1000:.1f} "
          f"ms; ratio ours/bare {c['median']:.3f} (95% CI {c['ci95'][0]:.3f}-{c['ci95'][1]:.3f}; block medians "
          f"{', '.join(f'{x:.3f}' for x in c['block_medians'])}; {c['n_pairs']} paired steps)"
          f"{'' if c['resolved'] else ': no measurable difference at this resolution'}", flush=True)
    pos = cmp["positions_first_batch"]
    print(f"  our path: {cmp['our_path']}; positions of the first batch: TRL {pos['trl_padded']}, packed "
          f"{pos['packed']}, shared prompts {pos['shared']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(WORLDS), default="tiny")
    ap.add_argument("--batch", type=int, default=None, help="pairs per step (default: 16 tiny, 4 smollm2)")
    ap.add_argument("--pairs", type=int, default=None, help="measured step pairs per block (default: 20 / 4)")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="also the three reference configurations, one process each")
    ap.add_argument("--steps", type=int, default=4, help="--memory: steps per configuration")
    ap.add_argument("--memory-only", action="store_true", help="only the memory part (and the reference pass)")
    ap.add_argument("--rounds", type=int, default=2, help="--memory: rotations of the three configurations")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    batch = a.batch or (16 if a.model == "tiny" else 4)
    if a.child:
        print(json.dumps(memory_child(a.child, a.model, batch, a.steps)))
        return
    out = {"threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if a.memory_only:
        a.memory = True
    else:
        out["compare"] = compare(a.model, batch, a.pairs or (20 if a.model == "tiny" else 4), a.blocks, a.warmup)
        _print_compare(a.model, batch, out["compare"])
    if a.memory:
        out["reference_pass"] = reference_pass(a.model, batch * 8, batch)
        out["memory"] = memory(a.model, batch, a.steps, a.rounds)
        print(f"reference pass: {out['reference_pass']['s_per_pair']:.3f} s per pair")
        print("| configuration | round | peak RSS GiB: process / setup / training (measured by) | median step s | init s |")
        print("|---|---|---|---|---|")
        for r in out["memory"]:
            print(f"| {r['kind']} | {r['round']} | {r['peak_rss_gib']:.2f} / {r['peak_setup_gib']:.2f} / "
                  f"{r['peak_train_gib']:.2f} ({r['peak_method']}) | {r['median_step_s']:.3f} | {r['init_s']:.1f} |")
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
