"""``tie``: B-Pref's "equal" teacher: a pair whose responses are about as good is labelled a tie, not a preference.

Source: Lee, Smith, Dragan and Abbeel, "B-Pref: Benchmarking Preference-Based Reinforcement Learning" (NeurIPS 2021
Datasets and Benchmarks; code rll-research/BPref, ``teacher_thres_equal``: where the two segments' rewards differ
by less than the threshold, the label is 0.5 for both).

Model. A pair is tied where ``|gold(chosen) - gold(rejected)| < threshold``; nothing is flipped. Tied pairs get
``label_confidence`` 0.5 (the probability that the labelled chosen response is preferred), the others 1. The
threshold is the parameter, not a rate (``noise.rate`` must be null); the record states how many pairs it tied.
On the embedded world, gold margins cluster at a few values (0.1, 0.15, 0.2, 0.3, ...), so thresholds between them
(0.175, 0.325) are clear.

What training does with a tie (``noise.base.training_rows``, applied by the cell): a loss that reads per-pair label
confidences (cDPO: per-pair ``eps = (1 - c) + eps (2c - 1)``, so a tie's target is ``sigma(z) = 1/2``, a margin of
0) trains on it; every other loss trains without the tied pairs. The record says which (``tied_pairs``,
``n_tied_trained``, ``n_trained_pairs``).

Summary: ``threshold``, ``n_tied`` and ``tied_rate``, ``max_abs_gap_tied`` (< threshold) and
``min_abs_gap_untied`` (>= threshold), ``realized_rate`` 0 (no flips), ``gold_source``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.options import option
from noise.base import CONFIDENCE, TIE, check_number
from noise.gold import GoldTeacher


class Tie(GoldTeacher):
    name = "tie"
    RATE_IS_PARAMETER, SCALE = False, "threshold"

    class Options(GoldTeacher.Options):
        threshold: Any = option("pairs whose gold margin is below it are tied; on the gold reward's own scale")

    @property
    def flip_rate(self) -> float:
        return 0.0

    def _validate_scale(self) -> None:
        self.threshold = check_number("threshold", self.threshold, why="pairs whose gold "
                                                 "margin is below it are tied; on the gold reward's own scale")

    def _choose(self, feats, k, rng):
        tied = np.abs(feats["gap"]) < self.threshold
        return np.zeros(len(tied), dtype=bool), None, {f"_{CONFIDENCE}": np.where(tied, TIE, 1.0)}

    def _summary(self, mask, annotator, feats, calib):
        g = np.abs(feats["gap"])
        tied = np.asarray(calib[f"_{CONFIDENCE}"], dtype=float) == TIE
        return {
            "threshold": self.threshold,
            "gold_source": feats["source"],
            "max_abs_gap_tied": float(g[tied].max()) if tied.any() else None,
            "min_abs_gap_untied": float(g[~tied].min()) if (~tied).any() else None,
        }
