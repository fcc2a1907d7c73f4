"""A reward-model ensemble on bootstrap resamples of a cell's noisy training pairs (after Coste et al., ICLR 2024):
each member is the embedded reward model's recipe (all-MiniLM-L6-v2 + a reward head, TRL's ``RewardTrainer``)
trained on ``n`` pairs drawn with replacement from the ``n`` noisy pairs as labelled (seed ``cell seed``, member
``j``), cached by the pairs' text and labels, the recipe and the member, so cells with the same noisy data share an
ensemble. ``combine`` turns the members' margins into one conservative margin per pair, as the paper combines
rewards. Used by ``method=rm_ensemble`` and by the cleaner's ``rm_ensemble`` detector.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.methods.base import TrainContext

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


def ensemble_margins(ds, k: int, rm: dict, ctx: TrainContext) -> tuple[np.ndarray, list[dict]]:
    """(k, n) margins of every pair of ``ds`` as labelled under each of ``k`` members trained with recipe ``rm``,
    and each member's summary."""
    from bench.core.text import completion_text, prompt_text

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


def _member(rows: list[dict], sample: np.ndarray, recipe: dict, ctx: TrainContext, j: int):
    import json

    import evaluators
    from bench.core.cache import get_or_build, stable_hash
    from bench.models.devices import pick_device
    from evaluators.embedded_reward_model import fit
    from evaluators.rm_model import RewardModel

    rm = dict(recipe)
    train = evaluators.get("reward_model", train=rm["train"]).train  # checked, as the evaluator checks it
    device = pick_device(rm.get("device", "auto"), "method.rm.device")
    max_length = int(rm["max_length"])
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    key = stable_hash({"v": ENSEMBLE_VERSION, "pairs": digest, "sample": hashlib.sha256(sample.tobytes()).hexdigest(),
                       "train": train, "max_length": max_length, "member": j})

    def build(tmp: Path) -> None:
        _, fitted = fit(tmp, [rows[i] for i in sample], train, max_length, device)
        (tmp / "meta.json").write_text(json.dumps({k: v for k, v in fitted.items() if k != "history"}))

    root = ctx.cache_root
    if root is None:
        import tempfile

        root = tempfile.mkdtemp(prefix="prefnoise-ensemble-")
    folder = get_or_build(root, "rm_ensemble", key, build)
    meta = json.loads((folder / "meta.json").read_text())
    model = RewardModel.load(str(folder / "model"), device, max_length=max_length,
                             use_chat_template=rm["chat_template"], batch_size=int(rm["batch_size"]))
    out = {"key": key, "train_steps": meta.get("train_steps"), "train_s": meta.get("train_s")}
    if ctx.heldout_pairs:  # the world's: gold-labelled; other data: as its held-out labels say
        out["heldout_accuracy"] = model.pairwise_accuracy(ctx.heldout_pairs)
    return model, out
