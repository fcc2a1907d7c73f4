"""``gaussian_reward``: the teacher sees each response's gold reward through Gaussian noise and labels by what it saw.

Source: Gao, Alon and Metzler, "Impact of Preference Noise on the Alignment Performance of Generative Language
Models" (arXiv 2404.09824, 2024), whose "Gaussian" noise perturbs each response's gold reward before the pair is
labelled.

Model. For every pair, ``gold(chosen) + sigma * e1`` and ``gold(rejected) + sigma * e2`` with ``e1, e2`` independent
standard normals from the seeded generator; the pair is flipped where the rejected response's perturbed reward is
the higher. A pair with gold margin ``g`` (as labelled) flips with probability ``Phi(-g / (sigma sqrt 2))``: near-ties
about half the time, clear pairs rarely, at a rate set by ``sigma`` (0: no flips). ``sigma`` is the parameter, not a
rate (``noise.rate`` must be null), so the count is not fixed: the record states the realized flip rate, the rate the
model expects on these pairs, and where the flips fell.

Summary: ``sigma``, ``expected_rate`` (the mean of the flip probabilities above), ``realized_rate`` (the base
class's, against the data's labels) and ``realized_rate_vs_gold``, ``rate_near_ties`` / ``rate_clear``,
``mean_abs_gap_flipped`` / ``mean_abs_gap_kept``, ``gold_source``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.core.options import option
from noise.base import check_number
from noise.gold import GoldTeacher


def flip_probability(gap: np.ndarray, sigma: float) -> np.ndarray:
    """``P(gold(chosen) + sigma e1 < gold(rejected) + sigma e2) = Phi(-gap / (sigma sqrt 2))`` per pair."""
    gap = np.asarray(gap, dtype=float)
    if sigma == 0:
        return np.zeros(len(gap))
    return np.array([0.5 * math.erfc(g / (2.0 * sigma)) for g in gap])  # Phi(-x) = erfc(x / sqrt 2) / 2


class GaussianReward(GoldTeacher):
    name = "gaussian_reward"
    RATE_IS_PARAMETER, SCALE = False, "sigma"

    class Options(GoldTeacher.Options):
        sigma: Any = option("the standard deviation of the noise on each response's gold reward, on the gold "
                            "reward's own scale")

    def _validate_scale(self) -> None:
        self.sigma = check_number("sigma", self.sigma, why="the standard deviation of the "
                                             "noise on each response's gold reward, on the gold reward's own scale")

    def _choose(self, feats, k, rng):
        e = rng.standard_normal((len(feats["gap"]), 2)) * self.sigma
        return feats["gap"] + e[:, 0] - e[:, 1] < 0, None, {}

    def _summary(self, mask, annotator, feats, calib):
        sigma = self.sigma
        return {"sigma": sigma, "expected_rate": float(flip_probability(feats["gap"], sigma).mean()),
                **self._gold_summary(mask, feats)}
