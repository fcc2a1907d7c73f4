"""LoRA against full fine-tuning: measured on SmolLM2-135M (CPU), and a paper estimate of GPU memory at 1B and 8B.

    python -m bench.perf.lora                       # SmolLM2-135M on its world's pairs (experiment=world_smollm2_cpu)
    python -m bench.perf.lora --steps 3 --rank 16 --json out.json
    python -m bench.perf.lora --estimate-only       # the paper estimate alone

**Measured.** One process per configuration (peak RSS is per process), each ours (``PreferenceTrainer``, DPO, the
packed path, reference log-probs precomputed: no reference model held while training) on the same pairs: full
fine-tuning, and LoRA (``train.lora``: rank ``--rank``, alpha 2 x rank, every linear layer but the head). Per
configuration: trainable and total parameters; the peak resident memory while setting up (model load, TRL's
preprocessing, the reference pass: with LoRA the adapter is disabled) and while training (``--steps`` optimizer
steps after one warm-up step; AdamW's state is allocated on the first step, inside this phase), each with the way
``bench.perf.memory.Phase`` measured it (``hwm``: a verified kernel high-water mark, exact; ``sampled``: a sampler's
floor; ``lifetime``: the process's peak, an upper bound); and the median step time. The configurations alternate
(``--rounds``).

**Estimated** (``estimate``): GPU memory of one training step at bf16 for Llama-3.2-1B and Llama-3.1-8B shapes, full
fine-tuning against LoRA, computed, not measured: bytes per parameter (weights, gradients, AdamW moments, an fp32
master copy) plus activations kept for the backward pass (see ``estimate``'s docstring for every term).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.perf.memory import Phase

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[2]
GIB = 2**30


# ------------------------------------------------------------------------------------------------ measured
def lora_config(rank: int):
    from bench.config.schema import LoraAdapterConfig

    return LoraAdapterConfig(rank=rank, alpha=2.0 * rank, dropout=0.0, target_modules="all-linear")


def child(kind: str, batch: int, steps: int, rank: int) -> dict:
    """One configuration in this process (``full`` or ``lora``): setup, then ``steps`` timed optimizer steps."""
    from bench import losses
    from bench import training as tr
    from bench.models import load_causal_lm
    from bench.perf.steps import _args, _world, batches, one_step
    from bench.training import lora

    data, parts = _world("smollm2")
    pairs = data.train.select(range(min(batch * (steps + 1), len(data.train))))
    gc.collect()
    with Phase() as setup:
        t0 = time.perf_counter()
        model, tok = load_causal_lm(data.model_path, "cpu")
        t = tr.PreferenceTrainer(model=model, args=_args(batch, 10**6, int(parts.train.max_length or 160)),
                                 train_dataset=pairs, processing_class=tok, pref_loss=losses.get("dpo", beta=0.1),
                                 lora=lora_config(rank) if kind == "lora" else None)
        t.create_optimizer()
        t.current_gradient_accumulation_steps = 1
        init = time.perf_counter() - t0
        feed = batches(t, steps + 1)
    gc.collect()
    with Phase() as train:
        one_step(t, feed[0])  # the first step allocates AdamW's moments
        times = [one_step(t, b) for b in feed[1:]]
    counts = lora.parameter_counts(t.model)
    return {"kind": kind, "trainable": counts["trainable"], "total": counts["total"], "init_s": init,
            "median_step_s": statistics.median(times), "peak_setup_gib": setup.peak / GIB,
            "peak_train_gib": train.peak / GIB, "train_growth_gib": train.growth / GIB,
            "method": f"{setup.method}/{train.method}", "packed": bool(t.packing), "n_pairs": len(pairs)}


def measure(batch: int, steps: int, rank: int, rounds: int) -> list[dict]:
    kinds, rows = ["full", "lora"], []
    for r in range(rounds):
        for kind in kinds[r % 2:] + kinds[: r % 2]:
            out = subprocess.run([sys.executable, "-m", "bench.perf.lora", "--child", kind, "--batch", str(batch),
                                  "--steps", str(steps), "--rank", str(rank)], cwd=ROOT, capture_output=True,
                                 text=True, check=True)
            rows.append({"round": r + 1, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


# ------------------------------------------------------------------------------------------------ estimated
@dataclass(frozen=True)
class Shape:
    """A Llama-style decoder: hidden size, layers, MLP size, query and key/value heads, vocabulary."""

    name: str
    hidden: int
    layers: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, kv = self.hidden, self.hidden // self.heads * self.kv_heads
        return [(h, h), (h, kv), (h, kv), (h, h), (h, self.ffn), (h, self.ffn), (self.ffn, h)]

    def parameters(self) -> int:
        per_layer = sum(i * o for i, o in self.linear_shapes()) + 2 * self.hidden  # + the two RMSNorm scales
        return self.layers * per_layer + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def lora_parameters(self, rank: int) -> int:
        """Rank-r adapters (A: r x in, B: out x r) on every linear layer but the head ("all-linear")."""
        return self.layers * sum(rank * (i + o) for i, o in self.linear_shapes())


SHAPES = (Shape("Llama-3.2-1B", 2048, 16, 8192, 32, 8, 128256, True),
          Shape("Llama-3.1-8B", 4096, 32, 14336, 32, 8, 128256, False))


def estimate(shape: Shape, rank: int, tokens: int, completion_tokens: int) -> dict[str, dict[str, float]]:
    """GiB of GPU memory for one training step at bf16, full fine-tuning and LoRA, by term.

    - weights: 2 bytes per parameter (bf16); LoRA adds its adapters in bf16 too;
    - trainable state, 14 bytes per trainable parameter (mixed-precision AdamW, as in the ZeRO paper's 16 bytes per
      parameter less the bf16 weight counted above): a bf16 gradient (2), an fp32 master copy (4), AdamW's two fp32
      moments (8). Full fine-tuning trains every parameter; LoRA only the adapters;
    - activations kept for the backward pass: Korthikanti et al. (2022) count 34 x hidden bytes per token per layer
      in 16-bit for a transformer layer whose attention matrix is not materialized (SDPA/FlashAttention); the same
      figure is used for LoRA (an upper bound: a frozen layer needs no saved input for its own weight gradient);
    - the LM head on completion tokens (the packed path): bf16 logits and their fp32 log-softmax, 6 bytes per token
      per vocabulary entry;
    - no reference model: its log-probs are precomputed (a live bf16 copy would add 2 bytes per parameter).
    Not counted: the CUDA context and allocator fragmentation (typically 0.5-2 GiB), temporary buffers.
    """
    n, n_lora = shape.parameters(), shape.lora_parameters(rank)
    act = 34 * shape.hidden * shape.layers * tokens / GIB
    head = 6 * shape.vocab * completion_tokens / GIB
    out = {}
    for kind, trainable, weights in (("full", n, n), ("lora", n_lora, n + n_lora)):
        terms = {"weights": 2 * weights / GIB, "trainable_state": 14 * trainable / GIB, "activations": act,
                 "lm_head": head}
        out[kind] = {**terms, "total": sum(terms.values()), "trainable": trainable, "parameters": weights}
    return out


# ------------------------------------------------------------------------------------------------ report
def _print_measured(rows: list[dict]) -> None:
    print("| configuration | round | trainable / total parameters | peak RSS GiB: setup / training (training growth) "
          "| measured by | median step s | init s | packed |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['round']} | {r['trainable'] / 1e6:.2f}M / {r['total'] / 1e6:.1f}M "
              f"({r['trainable'] / r['total']:.2%}) | {r['peak_setup_gib']:.2f} / {r['peak_train_gib']:.2f} "
              f"(+{r['train_growth_gib']:.2f}) | {r['method']} | {r['median_step_s']:.2f} | {r['init_s']:.1f} | "
              f"{r['packed']} |")


def _print_estimate(rank: int, tokens: int, completion_tokens: int) -> dict:
    print(f"\nGPU memory estimate at bf16 (computed, not measured; bench.perf.lora.estimate): one step of {tokens} "
          f"tokens ({completion_tokens} completion tokens), LoRA rank {rank} on every linear layer, AdamW")
    print("| model | parameters | mode | trainable | weights | grads + AdamW + master | activations | LM head | "
          "total GiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = {}
    for shape in SHAPES:
        est = out[shape.name] = estimate(shape, rank, tokens, completion_tokens)
        for kind, e in est.items():
            print(f"| {shape.name} | {shape.parameters() / 1e9:.2f}B | {kind} | {e['trainable'] / 1e6:,.1f}M | "
                  f"{e['weights']:.1f} | {e['trainable_state']:.1f} | {e['activations']:.1f} | {e['lm_head']:.1f} | "
                  f"{e['total']:.1f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps per configuration (after one)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (alpha = 2 x rank)")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of the two configurations")
    ap.add_argument("--tokens", type=int, default=8192, help="estimate: tokens per step (both responses of each pair)")
    ap.add_argument("--completion-tokens", type=int, default=4096, help="estimate: completion tokens per step")
    ap.add_argument("--estimate-only", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(child(a.child, a.batch, a.steps, a.rank)))
        return
    out: dict = {"cpus": os.cpu_count(), "batch": a.batch, "steps": a.steps, "rank": a.rank}
    if not a.estimate_only:
        out["measured"] = measure(a.batch, a.steps, a.rank, a.rounds)
        print(f"SmolLM2-135M-Instruct on its world's pairs, CPU, 1 thread, batch {a.batch} pairs, {a.steps} timed "
              "steps (ours, DPO, packed, reference precomputed)")
        _print_measured(out["measured"])
    out["estimate"] = _print_estimate(a.rank, a.tokens, a.completion_tokens)
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
