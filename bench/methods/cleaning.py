"""Acting on named training pairs before one TRL run: what every cleaner shares (``method=clean``, its ``subset``
preset and ``method=rm_ensemble``).

A detector names suspect pairs; an action then

- ``remove``: leaves them out (reference log-probs come from the full pairs' pass, so the shared cache serves);
- ``flip``: swaps their chosen and rejected (and every ``*_chosen``/``*_rejected`` column; ``is_flipped`` then says
  whether a pair's orientation differs from its clean label, and the reference log-probs follow it);
- ``weight``: gives each pair a weight in a weighted mean of the per-pair loss (named pairs ``named_weight``, the
  others 1; or any per-pair weights a method computes).

``budget`` is how long the run is: ``epochs`` (``train.epochs`` passes over the pairs that are left, as a user who
cleaned the data would train) or ``steps`` (the standard cell's number of optimizer steps on all the pairs: the same
compute as the arm it is compared with).
"""
from __future__ import annotations

import numpy as np

from bench.core.detection import detection_stats
from bench.core.metrics import COUNTER, HIGHER
from bench.core.options import ConfigError
from bench.methods.base import TrainContext, TrainResult
from bench.methods.options import ACTIONS, BUDGETS  # noqa: F401  (BUDGETS: part of this module's API)
from bench.methods.stages import Staged, total_steps
from noise.base import apply_flips


def relabel(ds, mask: np.ndarray):
    """``ds`` with chosen and rejected (and every ``*_chosen``/``*_rejected`` column) swapped where ``mask``;
    ``is_flipped`` then says whether a pair's orientation differs from its clean label."""

    out = apply_flips(ds, np.asarray(mask, dtype=bool), add_columns=False)
    if "is_flipped" in out.column_names:
        new = np.asarray(out["is_flipped"], dtype=bool) ^ np.asarray(mask, dtype=bool)
        out = out.remove_columns("is_flipped").add_column("is_flipped", new.tolist())
    return out


def train_cleaned(ctx: TrainContext, named: np.ndarray, action: str, budget: str, name: str,
                  weights: np.ndarray | None = None) -> tuple[Staged, int]:
    """One TRL run on the cell's pairs after ``action`` on the ``named`` ones; returns the run (for its result)
    and how many pairs it trained on. ``weights`` (action ``weight``): one per pair."""
    ds, named = ctx.train_dataset, np.asarray(named, dtype=bool)
    kept = np.flatnonzero(~named) if action == "remove" else np.arange(len(ds))
    if len(kept) == 0:
        raise RuntimeError(f"method={name}: every one of the {len(ds)} pairs was named for removal; nothing is left "
                           "to train on (name fewer pairs, or use action=weight)")
    steps = total_steps(ctx.train, len(ds) if budget == "steps" else len(kept))
    run = Staged(ctx, [steps], name)
    if action == "remove":
        base = run.prepare(ds)  # the reference pass (or the shared cache) on every pair, then the kept ones
        run.run(0, base.select(kept.tolist()))
    elif action == "flip":
        run.run(0, relabel(ds, named))
    elif action == "weight":
        run.run(0, ds.add_column("pair_weight", np.asarray(weights, dtype=float).tolist()))
    else:
        raise ConfigError(f"action={action!r}; valid: {', '.join(ACTIONS)}")
    return run, len(kept)


def check_weights(loss, action: str, name: str) -> None:
    """Per-pair weights are a weighted mean of per-pair losses: a batch-level loss (Dr. DPO: every per-pair value is
    the batch's loss) would ignore them without a word."""
    if action in ("weight",) and getattr(loss, "batch_level", False):
        raise ConfigError(f"method={name} with action={action}: loss {loss.name!r} is batch-level (its per-pair "
                                "values are the batch's loss), so pair weights would change nothing; valid: action "
                                "remove or flip, or a per-pair loss")


def flipped_of(ds) -> np.ndarray | None:
    return np.asarray(ds["is_flipped"], dtype=bool) if "is_flipped" in ds.column_names else None


def top_k(scores: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The ``k`` highest-scoring pairs (ties broken at random, seeded)."""
    scores = np.asarray(scores, dtype=float)
    tiebreak = np.random.default_rng([seed, 6_000_011]).random(len(scores))
    order = np.lexsort((tiebreak, -np.where(np.isnan(scores), np.inf, scores)))
    named = np.zeros(len(scores), dtype=bool)
    named[order[: max(0, min(k, len(scores)))]] = True
    return named


def stats_record(named: np.ndarray, flipped, scores=None) -> dict:
    """The detector's figures for the record (``bench.core.detection``)."""
    return detection_stats(named, flipped, scores)


def result_of(run: Staged, record: dict, prefix: str, stats: dict, timings: dict | None = None) -> TrainResult:
    """The run's result with the detector's precision, recall and F1 as ``<prefix>_*`` metrics."""
    metrics, directions = detector_metrics(prefix, stats)
    return run.result(record, metrics=metrics, directions=directions, timings=timings)


def detector_metrics(prefix: str, stats: dict) -> tuple[dict, dict]:
    """(``<prefix>_*`` metrics: the detector's precision, recall, F1, AUROC and pairs named; their directions)."""
    nan = float("nan")
    metrics = {f"{prefix}_{k}": nan if stats.get(k) is None else float(stats[k])
               for k in ("precision", "recall", "f1", "auroc")}
    metrics[f"{prefix}_named"] = float(stats["n_named"])
    directions = {f"{prefix}_{k}": HIGHER for k in ("precision", "recall", "f1", "auroc")}
    directions[f"{prefix}_named"] = COUNTER
    return metrics, directions
