"""The GPU check's body (``bash bench/perf/gpu_check.sh`` installs what it needs, then runs this).

    python -m bench.perf.gpu [--root DIR] [--budget-s 480]

On a CUDA machine: one world cell on SmolLM2-135M-Instruct in bf16 (``experiment=world_smollm2_gpu``: world build
included), the same cell with LoRA (``train.lora``: rank 16 on every linear layer, the world and the reference
log-probs cached), a short sweep (``loss=dpo,ropo noise.rate=0,0.4``), and a 2-process cell (``train.num_gpus=2``)
when two or more GPUs are visible; then, per cell, the wall time, the optimizer step time, training tokens per
second (prompt + response tokens of both responses of every pair trained on, as TRL tokenizes them), MFU (model
FLOPs per token x tokens/s against the GPU's dense bf16 peak from its datasheet: ``6 x parameters`` for full
fine-tuning; under LoRA ``4 x frozen + 6 x adapter parameters``, the frozen weights getting no weight gradient),
the trainable parameters and the peak GPU memory the cell allocated. Steps that would not fit the time budget are
skipped and said so. Without a CUDA GPU it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "world_smollm2_gpu"
# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s (SXM parts where there are two)
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "A6000": 155.0}


def bf16_peak(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name (longest matching key), None when unknown."""
    hits = [k for k in BF16_PEAK_TFLOPS if k.lower() in device_name.lower()]
    return BF16_PEAK_TFLOPS[max(hits, key=len)] if hits else None


LORA = "train.lora={rank:16,alpha:32,dropout:0.05,target_modules:all-linear}"
LORA_LR = "train.learning_rate=1e-4"  # adapters take a larger step than the full model's 2e-5


def plan(n_gpus: int) -> list[tuple[str, list[str]]]:
    """The check's steps, in order: (what, bench/run.py arguments)."""
    steps = [("one world cell (world build included)", [f"experiment={EXPERIMENT}"]),
             ("the same cell with LoRA (rank 16, every linear layer)", [f"experiment={EXPERIMENT}", LORA, LORA_LR]),
             ("a short sweep: loss=dpo,ropo x noise.rate=0,0.4", ["-m", f"experiment={EXPERIMENT}", "loss=dpo,ropo",
                                                                   "noise.rate=0,0.4"])]
    if n_gpus >= 2:
        steps.append(("a 2-process cell (train.num_gpus=2)", [f"experiment={EXPERIMENT}", "train.num_gpus=2", "seed=1"]))
    return steps


def flops_per_token(record: dict, n_params: int) -> float:
    """Model FLOPs per trained token: 6 N for full fine-tuning (forward 2N, backward 4N); under LoRA the frozen
    weights need the backward's input gradient only (2N of the 4N), the adapters all of it."""
    counts = (record.get("provenance") or {}).get("parameters") or {}
    if not (record.get("provenance") or {}).get("lora") or not counts:
        return 6.0 * n_params
    adapter = int(counts["trainable"])
    return 4.0 * (int(counts["total"]) - adapter) + 6.0 * adapter


def mfu(n_params: int, tokens_per_s: float, peak_tflops: float | None, flops: float | None = None) -> float | None:
    """Model FLOPs utilization: ``flops`` per token (default 6 N: forward and backward of a dense model) x tokens/s
    over the peak."""
    if not peak_tflops or not tokens_per_s:
        return None
    return (6.0 * n_params if flops is None else flops) * tokens_per_s / (peak_tflops * 1e12)


def cell_figures(record: dict, train_tokens: int, n_params: int, peak_tflops: float | None) -> dict:
    """What the check prints for one cell record (``train_tokens``: tokens of the pairs it trained on)."""
    t = record.get("timings") or {}
    steps = int(record.get("train_steps") or 0)
    train_s = float(t.get("train") or 0.0)
    tps = train_tokens / train_s if train_s > 0 else None
    gpu = record.get("gpu") or {}
    prov = record.get("provenance") or {}
    return {"cell": record.get("cell_id"), "loss": record.get("loss"), "rate": record.get("rate"),
            "lora": bool(prov.get("lora")), "dtype": prov.get("dtype"),
            "trainable": (prov.get("parameters") or {}).get("trainable"),
            "wall_s": t.get("total"), "step_s": train_s / steps if steps else None, "tokens_per_s": tps,
            "mfu": mfu(n_params, tps, peak_tflops, flops_per_token(record, n_params)),
            "peak_gpu_gib": gpu.get("peak_memory_bytes", 0) / 2**30 if gpu.get("peak_memory_bytes") else None,
            "gold_reward": (record.get("metrics") or {}).get("gold_reward")}


def train_tokens(overrides: list[str], root: Path) -> tuple[int, int]:
    """(tokens of one epoch over the world's training pairs as TRL tokenizes them, the model's parameters)."""
    import torch  # noqa: F401

    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.models import load_causal_lm

    parts = build_parts(compose([f"experiment={EXPERIMENT}", *overrides]))
    d = data_mod.load(parts.data, parts.model, str(root / ".cache"))
    model, tok = load_causal_lm(d.model_path, "cpu")
    n = 0
    for r in d.train:
        for side in ("chosen", "rejected"):
            if isinstance(r["prompt"], str):
                ids = tok(r["prompt"] + r[side] + tok.eos_token, add_special_tokens=False)["input_ids"]
            else:
                ids = tok.apply_chat_template(r["prompt"] + r[side], tokenize=True)
            n += min(len(ids), parts.train.max_length or len(ids))
    return n, sum(p.numel() for p in model.parameters())


def _run(args: list[str], root: Path) -> tuple[int, float]:
    env = {**os.environ, "PREFNOISE_ROOT": str(root), "TQDM_DISABLE": "1"}
    t0 = time.time()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), *args], cwd=ROOT, env=env)
    return proc.returncode, time.time() - t0


def _records(root: Path) -> list[dict]:
    out = []
    for p in sorted((root / "results" / "cells").glob("*/record.json"), key=lambda p: p.stat().st_mtime):
        r = json.loads(p.read_text())
        if r.get("sweep") == EXPERIMENT and r.get("status") == "ok" and not r.get("skipped"):
            out.append(r)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="where results and caches go (default: a temp folder)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip steps that would start after this")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench.perf.gpu: no CUDA GPU visible to torch: nothing to check; exiting 0.")
        return 0
    root = args.root or Path(tempfile.mkdtemp(prefix="prefnoise-gpu-"))
    n_gpus, name = torch.cuda.device_count(), torch.cuda.get_device_name(0)
    peak = bf16_peak(name)
    print(f"GPU: {n_gpus} x {name}; dense bf16 peak {peak or 'unknown'} TFLOP/s; results under {root}", flush=True)
    t0 = time.time()
    failed = 0
    for what, cmd in plan(n_gpus):
        if time.time() - t0 > args.budget_s:
            print(f"skipped (over the {args.budget_s:.0f} s budget): {what}")
            continue
        rc, wall = _run(cmd, root)
        failed += rc != 0
        print(f"{'ok    ' if rc == 0 else 'FAILED'} {what}: {wall:.0f} s", flush=True)
    tokens, n_params = train_tokens([], root)
    print(f"\n{n_params / 1e6:.1f}M parameters; {tokens} training tokens per epoch\n")
    print("| cell | loss | rate | LoRA | dtype | trainable | wall s | step s | tokens/s | MFU | peak GPU GiB | "
          "gold reward |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in _records(root):
        f = cell_figures(r, tokens, n_params, peak)

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)

        print(f"| {f['cell']} | {f['loss']} | {f['rate']:g} | {'yes' if f['lora'] else 'no'} | {f['dtype'] or '-'} | "
              f"{fmt(f['trainable'], ',')} | {fmt(f['wall_s'], '.0f')} | {fmt(f['step_s'], '.3f')} | "
              f"{fmt(f['tokens_per_s'], '.0f')} | {fmt(f['mfu'], '.1%')} | {fmt(f['peak_gpu_gib'], '.2f')} | "
              f"{fmt(f['gold_reward'], '.3f')} |")
    print(f"\ntotal {time.time() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
