"""A reward-model ensemble on bootstrap resamples of a cell's noisy training pairs (after Coste et al., ICLR 2024):
each member is the embedded reward model's recipe (all-MiniLM-L6-v2 + a reward head, TRL's ``RewardTrainer``)
trained on ``n`` pairs drawn with replacement from the ``n`` noisy pairs as labelled (seed ``cell seed``, member
``j``), cached by the pairs' text and labels, the recipe and the member, so cells with the same noisy data share an
ensemble. ``combine`` turns the members' margins into one conservative margin per pair, as the paper combines
rewards. Used by ``method=rm_ensemble`` and by the cleaner's ``rm_ensemble`` detector.
"""
from __future__ import annotations

import hashlib
import json
import tempfile

import numpy as np

from bench.config.schema import RewardModelRecipe
from bench.core.cache import stable_hash
from bench.core.text import completion_text, prompt_text
from bench.methods.base import TrainContext
from bench.rewards.load import Given, load

ENSEMBLE_VERSION = 1  # bump when what a member learns from the same pairs changes
BOOTSTRAP_SEED = 4_000_037


def combine(margins: np.ndarray, how: str, coeff: float) -> np.ndarray:
    """(k, n) member margins -> one conservative margin per pair: ``mean``, ``worst_case`` (min over members) or
    ``uncertainty`` (mean - coeff * variance)."""
    if how == "worst_case":
        return margins.min(axis=0)
    if how == "uncertainty":
        return margins.mean(axis=0) - coeff * margins.var(axis=0)
    return margins.mean(axis=0)


def ensemble_margins(ds, k: int, rm: RewardModelRecipe, ctx: TrainContext) -> tuple[np.ndarray, list[dict]]:
    """(k, n) margins of every pair of ``ds`` as labelled under each of ``k`` members trained with recipe ``rm``,
    and each member's summary."""
    rows = [{"prompt": prompt_text(p), "chosen": completion_text(c), "rejected": completion_text(r)}
            for p, c, r in zip(ds["prompt"], ds["chosen"], ds["rejected"])]
    n = len(rows)
    margins, members = np.zeros((k, n)), []
    for j in range(k):
        rng = np.random.default_rng([ctx.seed, BOOTSTRAP_SEED, j])
        sample = rng.integers(0, n, size=n)
        model, meta = _member(rows, sample, rm, ctx, j)
        prompts = [r["prompt"] for r in rows]
        s = model.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        margins[j] = s[:n] - s[n:]
        members.append({"member": j, **meta, "out_of_bag": float(1 - len(np.unique(sample)) / n)})
    return margins, members


def _member(rows: list[dict], sample: np.ndarray, recipe: RewardModelRecipe, ctx: TrainContext, j: int):
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    key = stable_hash({"v": ENSEMBLE_VERSION, "pairs": digest, "sample": hashlib.sha256(sample.tobytes()).hexdigest(),
                       "train": recipe.train.values(), "max_length": recipe.max_length, "member": j})
    root = ctx.cache_root if ctx.cache_root is not None else tempfile.mkdtemp(prefix="prefnoise-ensemble-")
    loaded = load(recipe, "method.rm", root, Given([rows[i] for i in sample], key))
    out = {"key": key, "train_steps": loaded.meta.get("train_steps"), "train_s": loaded.meta.get("train_s")}
    if ctx.heldout_pairs:  # the world's: gold-labelled; other data: as its held-out labels say
        out["heldout_accuracy"] = loaded.model.pairwise_accuracy(ctx.heldout_pairs)
    return loaded.model, out
