"""What a tuning cell scores on the validation split, for the selection rules (``bench.tune.criteria``).

The validation split (``PreferenceData.val_pairs`` / ``val_prompts``) has prompts disjoint from training and from
the test split. Its pairs are labelled like the training pairs and noised by the cell's own injector
configuration with a mask of its own (seed ``seed + VAL_SEED``): what a practitioner's held-out preference data
would look like. The test split is never touched here. Metrics (all ``val_*``, counters: selection inputs, never
compared by the report):

    val_implicit_acc     the loss's implicit reward ranks the *observed* (noisy) chosen response higher
    val_realized_rate    the flip rate of the validation pairs' own mask
    val_kl               Monte-Carlo KL(policy || reference) on policy samples of the validation prompts
    val_gold_reward      mean gold reward of those samples (the oracle: only the embedded world knows it)
    val_rm_reward        mean score of those samples under a proxy reward model trained on the reward-model split
                         noised by the cell's injector (its own mask, seed ``seed + RM_SEED``): no clean label used
    val_rm_kl            val_rm_reward - kl_weight * val_kl
    val_rm_gold_accuracy the proxy's own held-out accuracy against gold (a fact about the proxy, for the report)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import Dataset

import noise
from bench.config.schema import RewardModelRecipe
from bench.core.metrics import COUNTER
from bench.core.text import prompt_text
from bench.data.base import PreferenceData
from bench.evaluation.core import generation_settings, kl_estimate, pair_rewards, render_prompts
from bench.models import sampling
from bench.rewards.embedded import training_rows
from bench.rewards.load import EMBEDDED, World, load

VAL_SEED = 1_000_003  # the validation pairs' mask: seed + VAL_SEED (never the training mask's seed)
RM_SEED = 2_000_003  # the proxy reward model's training pairs' mask
SAMPLE_SEED = 3_000_017  # the policy's samples on the validation prompts

METRICS = dict.fromkeys(("val_implicit_acc", "val_realized_rate", "val_kl", "val_gold_reward", "val_rm_reward", "val_rm_kl", "val_rm_gold_accuracy", "val_n_pairs"), COUNTER)


def score_validation(policy, ref_model, tokenizer, data: PreferenceData, loss, eval_cfg, noise_node: dict, seed: int,
                     cache_root: str | None) -> tuple[dict, list[dict]]:
    """(metrics, samples) of the validation split for one trained policy; see the module docstring."""
    if data.val_pairs is None or len(data.val_pairs) == 0 or not data.val_prompts:
        raise ValueError(f"eval.validation.enabled=true but data={data.name!r} has no validation split "
                         "(data=hf: set data.val_fraction > 0)")
    v = eval_cfg.validation
    injector = _injector(noise_node, seed + VAL_SEED)
    noisy = injector(data.val_pairs)
    flipped = np.asarray(noisy["is_flipped"], dtype=bool)
    key = {"data": data.fingerprint, "model": data.model_path, "split": "val"}
    cr, rj = pair_rewards(policy, ref_model, tokenizer, data.val_pairs, loss, key, cache_root)  # clean orientation
    right = (cr > rj).numpy()
    metrics = {"val_implicit_acc": float(np.where(flipped, (rj > cr).numpy(), right).mean()),
               "val_realized_rate": float(flipped.mean()), "val_n_pairs": float(len(flipped))}

    prompts = [p for p in data.val_prompts for _ in range(v.samples_per_prompt)]
    texts = render_prompts(prompts, tokenizer)
    sampled = sampling.sample(policy, tokenizer, texts, seed=seed + SAMPLE_SEED, desc="validation samples",
                              **generation_settings(eval_cfg))
    out = sampled.texts
    metrics["val_kl"] = kl_estimate(policy, ref_model, tokenizer, sampled, eval_cfg)
    plain = [prompt_text(p) for p in prompts]
    if data.gold_reward is not None:
        metrics["val_gold_reward"] = float(np.mean([data.gold_reward(p, r) for p, r in zip(plain, out)]))
    rm = proxy_reward_model(data, v.proxy_rm, noise_node, seed, cache_root)
    if rm is not None:
        model, meta = rm
        metrics["val_rm_reward"] = float(model.score(plain, out).mean())
        metrics["val_rm_kl"] = metrics["val_rm_reward"] - float(v.kl_weight) * metrics["val_kl"]
        if meta is not None:
            metrics["val_rm_gold_accuracy"] = float(meta["gold_accuracy"])
    samples = [{"prompt": p, "policy": r} for p, r in zip(plain, out)]
    return metrics, samples


def _injector(noise_node: dict, seed: int):
    return noise.from_config({**noise_node, "seed": seed}, seed=seed)


def proxy_reward_model(data: PreferenceData, recipe: RewardModelRecipe, noise_node: dict, seed: int,
                       cache_root: str | None, where: str = "eval.validation.proxy_rm"):
    """(RewardModel, its meta or None) that scores for the proxy rule, or None where there is none.

    On the embedded world (``path: embedded``): the embedded model trained on the reward-model split with labels
    noised by the cell's injector configuration (mask seed ``seed + RM_SEED``), cached per distinct mask. On other
    data: the reward model at ``path`` as it is (its own training data is the user's), or none for ``path: embedded``.
    """
    if recipe.path != EMBEDDED:
        return load(recipe, where, cache_root).model, None
    if not data.world_dir:
        return None
    world_dir = Path(data.world_dir)
    rows = training_rows(world_dir, recipe, where)
    injector = _injector(noise_node, seed + RM_SEED)
    flips = list(injector(Dataset.from_list(rows).select_columns(["prompt", "chosen", "rejected"]))["is_flipped"])
    labels = {"noise": injector.config(), "realized_rate": float(np.mean(flips)) if flips else 0.0}
    root = cache_root if cache_root is not None else str(world_dir.parents[1])
    loaded = load(recipe, where, root, World(world_dir, flips, labels))
    return loaded.model, {**loaded.meta, "folder": str(loaded.folder)}
