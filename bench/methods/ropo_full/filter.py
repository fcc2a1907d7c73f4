"""ROPO's filter (the w-step): which of the original pairs are dropped after a round, and how well that finds the
injected flips (precision, recall, AUROC against the noise mask)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.core.counting import exact_count
from bench.core.detection import detection_stats


def highest_loss(losses, k: int) -> np.ndarray:
    """Boolean mask of the k pairs with the highest loss (NaN counts as highest; ties go to the lower index)."""
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    key = np.where(np.isnan(losses), np.inf, losses)
    order = np.lexsort((np.arange(n), -key))  # primary: loss descending, then index ascending
    mask = np.zeros(n, dtype=bool)
    mask[order[: max(0, min(k, n))]] = True
    return mask


def filter_stats(dropped, flipped, losses=None) -> dict[str, Any]:
    """Precision and recall of one filter against the injected noise mask (``flipped``; None if unknown), in the
    record's words (``bench.core.detection`` computes them): precision = |dropped & flipped| / |dropped|, recall =
    |dropped & flipped| / |flipped|, chance_precision = |flipped| / n; with ``losses``, their AUROC as a detector and
    the mean loss of flipped and clean pairs."""
    d = detection_stats(dropped, flipped, losses)
    out: dict[str, Any] = {"n_scored": d["n"], "n_dropped": d["n_named"], "n_flipped": d["n_flipped"],
                           "n_dropped_flipped": d["n_hit"], "precision": d["precision"], "recall": d["recall"],
                           "chance_precision": d["chance_precision"]}
    if flipped is not None and losses is not None:
        losses, flipped = np.asarray(losses, dtype=float), np.asarray(flipped, dtype=bool)
        out["auroc"] = d["auroc"]
        out["mean_loss_flipped"] = float(losses[flipped].mean()) if flipped.any() else None
        out["mean_loss_clean"] = float(losses[~flipped].mean()) if (~flipped).any() else None
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
