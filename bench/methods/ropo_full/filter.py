"""ROPO's filter (the w-step): which of the original pairs are dropped after a round, and how well that finds the
injected flips (precision, recall, AUROC against the noise mask)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.counting import exact_count


def highest_loss(losses, k: int) -> np.ndarray:
    """Boolean mask of the k pairs with the highest loss (NaN counts as highest; ties go to the lower index)."""
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    key = np.where(np.isnan(losses), np.inf, losses)
    order = np.lexsort((np.arange(n), -key))  # primary: loss descending, then index ascending
    mask = np.zeros(n, dtype=bool)
    mask[order[: max(0, min(k, n))]] = True
    return mask


def auroc(scores, positive) -> float | None:
    """P(score of a random positive > score of a random negative), ties half: the loss as a flip detector."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def filter_stats(dropped, flipped, losses=None) -> dict[str, Any]:
    """Precision and recall of one filter against the injected noise mask (``flipped``; None if unknown).

    precision = |dropped & flipped| / |dropped| (None if nothing dropped); recall = |dropped & flipped| / |flipped|
    (None if nothing is flipped); chance_precision = |flipped| / n, the expected precision of a random filter.
    """
    dropped = np.asarray(dropped, dtype=bool)
    n, k = len(dropped), int(dropped.sum())
    out: dict[str, Any] = {"n_scored": n, "n_dropped": k}
    if flipped is None:
        return {**out, "n_flipped": None, "n_dropped_flipped": None, "precision": None, "recall": None,
                "chance_precision": None}
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.shape != dropped.shape:
        raise ValueError(f"flip mask has {flipped.shape[0]} entries, the filter {n}")
    tp, nf = int((dropped & flipped).sum()), int(flipped.sum())
    out.update(
        n_flipped=nf,
        n_dropped_flipped=tp,
        precision=tp / k if k else None,
        recall=tp / nf if nf else None,
        chance_precision=nf / n if n else None,
    )
    if losses is not None:
        losses = np.asarray(losses, dtype=float)
        out["auroc"] = auroc(losses, flipped)
        out["mean_loss_flipped"] = float(losses[flipped].mean()) if nf else None
        out["mean_loss_clean"] = float(losses[~flipped].mean()) if nf < n else None
    return out


def pooled_precision(rounds: list[dict]) -> float | None:
    """Flipped dropped over dropped, summed over filter rounds (None without a mask or with nothing dropped)."""
    if not rounds or any(r.get("n_dropped_flipped") is None for r in rounds):
        return None
    k = sum(r["n_dropped"] for r in rounds)
    return sum(r["n_dropped_flipped"] for r in rounds) / k if k else None


def mean_of(rounds: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rounds if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


@dataclass
class FilterRound:
    """One filter: every original pair's loss under the current policy, which were dropped, the cut, the stats."""

    losses: np.ndarray
    dropped: np.ndarray
    cut: float  # the largest loss among the pairs kept (what a replacement must not exceed under below_cut)
    stats: dict


def filter_pairs(losses, drop_fraction: float, flipped, round_no: int) -> FilterRound:
    """Drop the ``round(drop_fraction * n)`` highest-loss pairs (choices 1-2 of ``bench.methods.ropo_full``)."""
    losses = np.asarray(losses, dtype=float)
    k = exact_count(float(drop_fraction), len(losses))
    dropped = highest_loss(losses, k)
    kept = losses[~dropped]
    cut = float(kept.max()) if len(kept) else float(losses[dropped].min())
    stats = {"round": round_no, **filter_stats(dropped, flipped, losses), "loss_cut": cut}
    return FilterRound(losses, dropped, cut, stats)
