"""How well a set of named pairs finds the flipped ones: one helper for every method that names suspect pairs (a
cleaner's detector, ROPO's loss-based filter, a reward-model ensemble's disputed pairs).

    detection_stats(named, flipped, scores=None)
      n, n_named, n_flipped, n_hit        pairs, pairs named, pairs truly flipped, named and flipped
      precision   n_hit / n_named  (None when nothing is named)
      recall      n_hit / n_flipped (None when nothing is flipped)
      f1          2 P R / (P + R)   (None when either is None; 0 when both are 0)
      chance_precision  n_flipped / n: what naming pairs at random gives
      auroc       P(score of a flipped pair > score of a clean one), ties half (with ``scores``: higher = more
                  suspect; None when one group is empty)

``flipped`` is the injector's mask (None when unknown: every figure that needs it is None).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def auroc(scores, positive) -> float | None:
    """P(score of a random positive > score of a random negative), ties half."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_stats(named, flipped, scores=None) -> dict[str, Any]:
    named = np.asarray(named, dtype=bool)
    n, k = len(named), int(named.sum())
    out: dict[str, Any] = {"n": n, "n_named": k, "n_flipped": None, "n_hit": None, "precision": None,
                           "recall": None, "f1": None, "chance_precision": None}
    if flipped is None:
        return out
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.shape != named.shape:
        raise ValueError(f"flip mask has {flipped.shape[0]} entries, the named pairs {n}")
    hit, nf = int((named & flipped).sum()), int(flipped.sum())
    p = hit / k if k else None
    r = hit / nf if nf else None
    out.update(n_flipped=nf, n_hit=hit, precision=p, recall=r, chance_precision=nf / n if n else None)
    if p is not None and r is not None:
        out["f1"] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
    if scores is not None:
        out["auroc"] = auroc(scores, flipped)
    return out
