"""What one checkpoint's evaluation costs on the default world, against one epoch's training, and where it goes.

    python -m bench.perf.checkpoint              # 3 repeats, interleaved with 3 epochs of training
    python -m bench.perf.checkpoint --repeat 5
    python -m bench.perf.checkpoint experiment=verdict_tune noise.rate=0.4   # another cell's (one epoch a repeat)

One repeat is an epoch of DPO training (the default cell's steps, packed path) followed by one checkpoint's
evaluation of the policy it left (``bench.evaluation.checkpoints.PolicyEvaluation``: test samples with their KL,
the implicit-reward accuracy on the clean held-out pairs, the gold reward, the margin diagnostics), each piece also
timed on its own (the validation split's too, where the cell scores one, as a tuning cell does). Printed: the
median and spread of each, and the ratio checkpoint / epoch per repeat (the issue's target: at most 0.5; at most
3 s a checkpoint on the default world). Overrides pick another cell's settings; each repeat trains one epoch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def pieces(evaluation, policy) -> dict[str, float]:
    """Each part of a checkpoint's evaluation, timed alone (the same calls PolicyEvaluation makes)."""
    from bench.evaluation.core import generation_settings, implicit_accuracy, kl_estimate, render_prompts
    from bench.models import sampling

    d, p, tok = evaluation.data, evaluation.parts, evaluation.tokenizer
    out = {}
    t0 = time.perf_counter()
    sampled = sampling.sample(policy, tok, render_prompts(d.eval_prompts, tok), seed=0, **generation_settings(p.eval))
    out["sample (+ policy log-probs)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kl_estimate(policy, evaluation.ref_model, tok, sampled, p.eval)
    out["kl: reference pass"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    implicit_accuracy(policy, evaluation.ref_model, tok, d, p.loss, evaluation.cache_root)
    out["implicit accuracy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    [d.gold_reward(pr, r) for pr, r in zip(d.eval_prompts, sampled.texts)]
    out["gold reward"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluation.probe(policy, evaluation.ref_model)
    out[f"margins ({len(evaluation.probe.rows)} pairs)"] = time.perf_counter() - t0
    if p.eval.validation.enabled:
        from bench.evaluation.validation import score_validation

        t0 = time.perf_counter()
        score_validation(policy, evaluation.ref_model, tok, d, p.loss, p.eval, evaluation.noise_node, p.run.seed,
                         evaluation.cache_root)
        out["validation split"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("overrides", nargs="*", help="config overrides, as for bench/run.py (default: the default cell)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from omegaconf import OmegaConf

    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.evaluation.checkpoints import PolicyEvaluation
    from bench.methods import TrainContext
    from bench.models import load_causal_lm

    cfg = compose([*a.overrides, "train.progress=false", *(["train.epochs=1"] if a.overrides else [])])
    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    noisy = parts.injector(data.train)
    policy, tok = load_causal_lm(data.model_path, "cpu")
    evaluation = PolicyEvaluation(data, parts, noisy, tok, OmegaConf.to_container(cfg.noise, resolve=True),
                                  cfg.paths.cache)
    import tempfile
    from pathlib import Path

    ctx = TrainContext(policy=policy, tokenizer=tok, train_dataset=noisy, loss=parts.loss, train=parts.train,
                       out_dir=Path(tempfile.mkdtemp()), seed=0, reference_path=data.model_path)
    trainer = ctx.trainer(noisy)
    rows = []
    for r in range(a.repeat):
        t0 = time.perf_counter()
        trainer.train()
        epoch = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluation(policy, final=False)
        check = time.perf_counter() - t0
        rows.append({"epoch_s": epoch, "checkpoint_s": check, **pieces(evaluation, policy)})
        print(f"repeat {r + 1}: epoch {epoch:.1f} s ({trainer.state.global_step} steps), checkpoint {check:.2f} s, "
              f"ratio {check / epoch:.3f}", flush=True)
    print("| part | median s | min - max |\n|---|---|---|")
    for key in rows[0]:
        vals = [row[key] for row in rows]
        print(f"| {key} | {statistics.median(vals):.2f} | {min(vals):.2f} - {max(vals):.2f} |")
    ratios = [row["checkpoint_s"] / row["epoch_s"] for row in rows]
    print(f"checkpoint / epoch: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
