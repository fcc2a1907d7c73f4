"""What one checkpoint's evaluation costs on the default world, against one epoch's training, and where it goes.

    python -m bench.perf.checkpoint              # 3 repeats, interleaved with 3 epochs of training
    python -m bench.perf.checkpoint --repeat 5
    python -m bench.perf.checkpoint experiment=verdict_tune noise.rate=0.4   # another cell's (one epoch a repeat)
    python -m bench.perf.checkpoint --before     # also the checkpoint as it was, interleaved: the ratio now / before

One repeat is an epoch of DPO training (the default cell's steps, packed path) followed by one checkpoint's
evaluation of the policy it left (``bench.evaluation.checkpoints.PolicyEvaluation``: test samples with their KL,
the implicit-reward accuracy on the clean held-out pairs, the gold reward, the margin diagnostics), each piece also
timed on its own (the validation split's too, where the cell scores one, as a tuning cell does). Printed: the
median and spread of each, and the ratio checkpoint / epoch per repeat (the issue's target: at most 0.5; at most
3 s a checkpoint on the default world). Overrides pick another cell's settings; each repeat trains one epoch.
With ``--before``, each repeat also scores the policy as the checkpoints did before finished samples left their
batch (``bench.models.finished_rows``) and scoring ran in slices from the responses on (``sampling._scored``), in
alternating order: printed, the ratio now / before per repeat, and whether both gave the same metrics (they must).
"""
from __future__ import annotations

import argparse
import contextlib
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


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)  # NaN is NaN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--before", action="store_true", help="also time the checkpoint as it was (see above)")
    ap.add_argument("overrides", nargs="*", help="config overrides, as for bench/run.py (default: the default cell)")
    a = ap.parse_args()
    from omegaconf import OmegaConf

    from bench.evaluation.checkpoints import PolicyEvaluation
    from bench.methods import TrainContext
    from bench.perf import as_before, default_world_policy

    cfg, parts, data, policy, tok = default_world_policy([*a.overrides, *(["train.epochs=1"] if a.overrides else [])])
    noisy = parts.injector(data.train)
    evaluation = PolicyEvaluation(data, parts, noisy, tok, OmegaConf.to_container(cfg.noise, resolve=True),
                                  cfg.paths.cache)
    import tempfile
    from pathlib import Path

    ctx = TrainContext(policy=policy, tokenizer=tok, train_dataset=noisy, loss=parts.loss, train=parts.train,
                       out_dir=Path(tempfile.mkdtemp()), seed=0, reference_path=data.model_path)
    trainer = ctx.trainer(noisy)
    rows, same_metrics = [], True
    for r in range(a.repeat):
        t0 = time.perf_counter()
        trainer.train()
        epoch = time.perf_counter() - t0
        timed = {}
        for way in (["now", "before"] if r % 2 == 0 else ["before", "now"]) if a.before else ["now"]:
            t0 = time.perf_counter()
            with as_before() if way == "before" else contextlib.nullcontext():
                scored = evaluation(policy, final=False)
            timed[way] = (time.perf_counter() - t0, scored.metrics)
        check = timed["now"][0]
        rows.append({"epoch_s": epoch, "checkpoint_s": check, **pieces(evaluation, policy)})
        if a.before:
            rows[-1]["before_s"] = timed["before"][0]
            same_metrics &= same(timed["now"][1], timed["before"][1])
        print(f"repeat {r + 1}: epoch {epoch:.1f} s ({trainer.state.global_step} steps), checkpoint {check:.2f} s, "
              f"ratio {check / epoch:.3f}" + (f", before {timed['before'][0]:.2f} s" if a.before else ""), flush=True)
    print("| part | median s | min - max |\n|---|---|---|")
    for key in rows[0]:
        vals = [row[key] for row in rows]
        print(f"| {key} | {statistics.median(vals):.2f} | {min(vals):.2f} - {max(vals):.2f} |")
    ratios = [row["checkpoint_s"] / row["epoch_s"] for row in rows]
    print(f"checkpoint / epoch: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    if a.before:
        ratios = [row["checkpoint_s"] / row["before_s"] for row in rows]
        print(f"checkpoint now / before: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max "
              f"{max(ratios):.3f}); the same metrics: {same_metrics}")


if __name__ == "__main__":
    main()
