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

A detector is a plug-in like every other (``bench.config.plugin``): a subclass of ``Detector`` with a ``name``, its
options (``Options``) and ``scores(ctx, cfg) -> (scores, info)``: one suspicion score per training pair of
``ctx.train_dataset`` and what the record says about it (``cfg``: the cleaner's options, which the built-in ones
read: ``method.k``, ``method.rm``, ``method.warmup_epochs``, ...). ``method.detector`` names a registered one or a
class of yours (``method.detector=mypkg.detectors.Margin``, or a ``{_target_: ..., options}`` node).
"""
from __future__ import annotations

import copy
import functools
import time
from contextlib import contextmanager

import numpy as np
import torch

from bench.config.plugin import Kind, Plugin
from bench.core.options import ConfigError
from bench.data.base import text_rows
from bench.evaluation.core import reference_logps, render_prompts
from bench.methods.base import TrainContext
from bench.methods.cleaning import flipped_of
from bench.methods.ensemble import combine, ensemble_margins
from bench.methods.pairs import pair_logps, pair_losses
from bench.methods.stages import total_steps
from bench.models.adapters import as_it_was, is_peft
from bench.models.load import load_causal_lm

RANDOM_SEED = 7_000_003


class Detector(Plugin):
    """Base of every detector (see the module docstring)."""

    kind = "detector"

    def scores(self, ctx: TrainContext, cfg) -> tuple[np.ndarray, dict]:
        raise NotImplementedError


class Oracle(Detector):
    name = "oracle"

    def scores(self, ctx, cfg):
        flipped = flipped_of(ctx.train_dataset)
        if flipped is None:
            raise ConfigError("method.detector=oracle needs the injector's flip mask (an is_flipped column)")
        return flipped.astype(float), {}


class Random(Detector):
    name = "random"

    def scores(self, ctx, cfg):
        return np.random.default_rng([ctx.seed, RANDOM_SEED]).random(len(ctx.train_dataset)), {}


class RMMargin(Detector):
    name = "rm_margin"

    def scores(self, ctx, cfg):
        if ctx.proxy_reward_model is None:
            raise ConfigError("method.detector=rm_margin needs a proxy reward model: on the world the embedded one "
                              "trained on the noisy reward-model split; elsewhere eval.validation.proxy_rm.path")
        got = ctx.proxy_reward_model()
        if got is None:
            raise ConfigError("method.detector=rm_margin: this data has no reward-model split for the embedded "
                              "proxy; set eval.validation.proxy_rm.path to a reward model")
        model, meta = got
        rows = text_rows(ctx.train_dataset)
        prompts = [r["prompt"] for r in rows]
        s = model.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        n = len(rows)
        info = {"proxy_gold_accuracy": None if meta is None else meta.get("gold_accuracy")}
        return -(np.asarray(s[:n], dtype=float) - np.asarray(s[n:], dtype=float)), info


class RMEnsemble(Detector):
    name = "rm_ensemble"

    def scores(self, ctx, cfg):
        margins, members = ensemble_margins(ctx.train_dataset, cfg.k, cfg.rm, ctx)
        return -combine(margins, cfg.combine, cfg.coeff), {"members": members}


class RefMargin(Detector):
    """The reference is loaded (on the CPU) only where its log-probs of the training pairs are not cached yet."""

    name = "ref_margin"

    def scores(self, ctx, cfg):
        ds = ctx.train_dataset
        load = functools.cache(lambda: load_causal_lm(ctx.reference_path, "cpu")[0])  # at most once, if at all
        prompts = render_prompts(ds["prompt"], ctx.tokenizer)
        rows = text_rows(ds)
        key = {"data": ctx.data_key, "model": ctx.reference_path, "split": "train"}
        c = reference_logps(None, ctx.tokenizer, prompts, [r["chosen"] for r in rows], key, ctx.cache_root, load)
        r = reference_logps(None, ctx.tokenizer, prompts, [r["rejected"] for r in rows], key, ctx.cache_root, load)
        return -(c - r).double().numpy(), {}


class SmallLoss(Detector):
    """The warm-up pass starts from the reference policy and leaves the cell's policy as it was: it trains a copy,
    or under LoRA an adapter of its own on the policy, taken off after scoring (``_warmup_model``)."""

    name = "small_loss"

    def scores(self, ctx, cfg):
        ds = ctx.train_dataset
        per_epoch = total_steps(ctx.train, len(ds)) / float(ctx.train.epochs if not ctx.train.max_steps else 1)
        steps = max(1, round(float(cfg.warmup_epochs) * per_epoch))
        t0 = time.time()
        with _warmup_model(ctx) as model:
            trainer = ctx.trainer(ds, args=ctx.args("warmup", max_steps=steps), model=model, ref_cache=ctx.ref_cache,
                                  with_callbacks=False)
            trainer.train()
            out = self._scores(ctx, trainer, model, cfg)
            del trainer
        return np.asarray(out, dtype=float), {"warmup_steps": steps, "warmup_s": time.time() - t0}

    @staticmethod
    def _scores(ctx, trainer, model, cfg) -> np.ndarray:
        base = trainer.train_dataset
        scores = pair_logps(trainer, model, base, cfg.score_batch_size)
        needs_ref = bool(ctx.loss.needs_reference_model)
        ref_c = np.asarray(base["ref_chosen_logps"], dtype=float) if needs_ref else None
        ref_r = np.asarray(base["ref_rejected_logps"], dtype=float) if needs_ref else None
        if getattr(ctx.loss, "batch_level", False):
            c, r = ctx.loss.rewards(scores["chosen"].double(), scores["rejected"].double(),
                                    None if ref_c is None else torch.as_tensor(ref_c),
                                    None if ref_r is None else torch.as_tensor(ref_r),
                                    scores["chosen_len"].double(), scores["rejected_len"].double())
            return -(c - r).numpy()
        extras = {k: base[k] for k in ("score_chosen", "score_rejected", "annotator_idx") if k in base.column_names}
        return pair_losses(ctx.loss, scores, ref_c, ref_r, extras).numpy()


@contextmanager
def _warmup_model(ctx):
    """The model a warm-up trains. A full fine-tuning cell's is a copy of the reference policy. Under LoRA
    (``train.lora``), with a policy no trainer has wrapped yet, it is the policy itself: TRL wraps it in a fresh
    adapter with the base weights frozen, and ``as_it_was`` puts back every module the adapter replaced and whatever
    else the wrapping changed: the reference policy as it was, for the cell's own trainer to wrap, and no second
    copy of the model in memory."""
    if getattr(ctx.train, "lora", None) is None or is_peft(ctx.policy):
        yield copy.deepcopy(ctx.policy)
        return
    with as_it_was(ctx.policy) as policy:
        yield policy


KIND = Kind("detector", Detector, {
    "oracle": "bench.methods.detectors:Oracle",
    "random": "bench.methods.detectors:Random",
    "rm_margin": "bench.methods.detectors:RMMargin",
    "rm_ensemble": "bench.methods.detectors:RMEnsemble",
    "ref_margin": "bench.methods.detectors:RefMargin",
    "small_loss": "bench.methods.detectors:SmallLoss",
}, required=("name", "scores()"), configs=False)
