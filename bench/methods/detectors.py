"""Detectors: which training pairs look mislabelled. Each gives every pair a suspicion score (higher: more suspect);
the cleaner (``bench.methods.clean``) names the top fraction.

- ``oracle``: the injector's true flip mask. The positive control: what a perfect cleaner would give.
- ``random``: a seeded uniform score, so as many pairs as the oracle would name, at random. The negative control.
- ``rm_margin``: minus the margin (as labelled) of the proxy reward model trained on the reward-model split noised
  by the cell's injector (``eval.validation.proxy_rm``, the tuning rules' proxy): the "reward-model gap" cleaner of
  the data-cleaning literature. No clean label is used.
- ``rm_ensemble``: minus the combined margin of a reward-model ensemble on bootstraps of the noisy pairs
  (``bench.methods.ensemble``; ``method.k``, ``method.combine``, ``method.coeff``, ``method.rm``).
- ``ref_margin``: minus the reference policy's own log-prob margin as labelled.
- ``small_loss``: the cell's own loss on each pair after a warm-up pass of ``method.warmup_epochs`` over the noisy
  pairs, from the reference (the small-loss trick: networks fit clean pairs before they memorize flipped ones); the
  policy then trains from the reference on the cleaned pairs. For a batch-level loss (Dr. DPO), minus its margin.

A detector is ``fn(ctx, cfg) -> (scores, info)``; ``info`` goes to the record.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from bench.core.registry import Registry
from bench.methods.base import MethodConfigError, TrainContext
from bench.methods.cleaning import flipped_of

DETECTORS: Registry[Callable] = Registry("detector", {
    "oracle": "bench.methods.detectors:oracle",
    "random": "bench.methods.detectors:random_scores",
    "rm_margin": "bench.methods.detectors:rm_margin",
    "rm_ensemble": "bench.methods.detectors:rm_ensemble",
    "ref_margin": "bench.methods.detectors:ref_margin",
    "small_loss": "bench.methods.detectors:small_loss",
})
RANDOM_SEED = 7_000_003


def oracle(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    flipped = flipped_of(ctx.train_dataset)
    if flipped is None:
        raise MethodConfigError("method.detector=oracle needs the injector's flip mask (an is_flipped column)")
    return flipped.astype(float), {}


def random_scores(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    return np.random.default_rng([ctx.seed, RANDOM_SEED]).random(len(ctx.train_dataset)), {}


def rm_margin(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    if ctx.proxy_reward_model is None:
        raise MethodConfigError("method.detector=rm_margin needs a proxy reward model: on the world the embedded one "
                                "trained on the noisy reward-model split; elsewhere eval.validation.proxy_rm.path")
    got = ctx.proxy_reward_model()
    if got is None:
        raise MethodConfigError("method.detector=rm_margin: this data has no reward-model split for the embedded "
                                "proxy; set eval.validation.proxy_rm.path to a reward model")
    model, meta = got
    rows = _text(ctx.train_dataset)
    prompts = [r["prompt"] for r in rows]
    s = model.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    n = len(rows)
    info = {"proxy_gold_accuracy": None if meta is None else meta.get("gold_accuracy")}
    return -(np.asarray(s[:n], dtype=float) - np.asarray(s[n:], dtype=float)), info


def rm_ensemble(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    from bench.methods.ensemble import combine, ensemble_margins

    margins, members = ensemble_margins(ctx.train_dataset, cfg.k, cfg.rm, ctx)
    return -combine(margins, cfg.combine, cfg.coeff), {"members": members}


def ref_margin(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    from bench.evaluation.core import _reference_logps, render_prompts
    from bench.models import load_causal_lm

    ds = ctx.train_dataset
    ref_model, _ = load_causal_lm(ctx.reference_path, "cpu")
    prompts = render_prompts(ds["prompt"], ctx.tokenizer)
    rows = _text(ds)
    key = {"data": ctx.data_key, "model": ctx.reference_path, "split": "train"}
    c = _reference_logps(ref_model, ctx.tokenizer, prompts, [r["chosen"] for r in rows], key, ctx.cache_root)
    r = _reference_logps(ref_model, ctx.tokenizer, prompts, [r["rejected"] for r in rows], key, ctx.cache_root)
    return -(c - r).double().numpy(), {}


def small_loss(ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
    """The warm-up pass runs on a copy of the reference policy; the cell's policy is untouched by it."""
    import copy

    from bench.methods.pairs import pair_logps, pair_losses
    from bench.methods.stages import total_steps

    ds = ctx.train_dataset
    per_epoch = total_steps(ctx.train, len(ds)) / float(ctx.train.epochs if not ctx.train.max_steps else 1)
    steps = max(1, round(float(cfg.warmup_epochs) * per_epoch))
    model = copy.deepcopy(ctx.policy)
    t0 = time.time()
    trainer = ctx.trainer(ds, args=ctx.args("warmup", max_steps=steps), model=model, ref_cache=ctx.ref_cache,
                          with_callbacks=False)
    trainer.train()
    base = trainer.train_dataset
    scores = pair_logps(trainer, model, base, cfg.score_batch_size)
    needs_ref = bool(ctx.loss.needs_reference_model)
    ref_c = np.asarray(base["ref_chosen_logps"], dtype=float) if needs_ref else None
    ref_r = np.asarray(base["ref_rejected_logps"], dtype=float) if needs_ref else None
    if getattr(ctx.loss, "batch_level", False):
        import torch

        c, r = ctx.loss.rewards(scores["chosen"].double(), scores["rejected"].double(),
                                None if ref_c is None else torch.as_tensor(ref_c),
                                None if ref_r is None else torch.as_tensor(ref_r),
                                scores["chosen_len"].double(), scores["rejected_len"].double())
        out = -(c - r).numpy()
    else:
        extras = {k: base[k] for k in ("score_chosen", "score_rejected", "annotator_idx") if k in base.column_names}
        out = pair_losses(ctx.loss, scores, ref_c, ref_r, extras).numpy()
    del model, trainer
    return np.asarray(out, dtype=float), {"warmup_steps": steps, "warmup_s": time.time() - t0}


def _text(ds) -> list[dict]:
    from bench.data import text_rows

    return text_rows(ds)
