"""``targeted``: data poisoning. The pairs the gold reward is surest about are flipped first.

Source: preference-label poisoning flips chosen pairs, not random ones (e.g. Wang et al., "RLHFPoison: Reward
Poisoning Attack for Reinforcement Learning with Human Feedback in Large Language Models", ACL 2024, which picks the
pairs to flip by a selection rule of its own). The rule here, largest gold margin first, is this project's: the
simplest worst case for a learner that trusts clear labels, and the opposite of ``bt_confidence``.

Model. Exactly ``round(rate * n)`` pairs are flipped: those with the largest gold margin
``gold(chosen) - gold(rejected)`` (as labelled), equal margins in a seeded random order. It is the opposite of
``bt_confidence``, whose flips fall on near-ties: here every flipped pair has a margin at least as large as every
kept one (the summary's ``min_gap_flipped`` >= ``max_gap_kept``).

Summary: ``min_gap_flipped``, ``max_gap_kept``, ``rate_near_ties`` / ``rate_clear`` (flip rates among the lowest and
highest quarter of |gap|), ``mean_abs_gap_flipped`` / ``mean_abs_gap_kept``, ``realized_rate_vs_gold``,
``gold_source``.
"""
from __future__ import annotations

import numpy as np

from noise.base import seeded_order
from noise.gold import GoldTeacher


class Targeted(GoldTeacher):
    name = "targeted"
    def _choose(self, feats, k, rng):
        gap = feats["gap"]
        mask = np.zeros(len(gap), dtype=bool)
        mask[seeded_order(gap, rng, descending=True)[:k]] = True
        return mask, None, {}

    def _summary(self, mask, annotator, feats, calib):
        gap = feats["gap"]
        return {
            "min_gap_flipped": float(gap[mask].min()) if mask.any() else None,
            "max_gap_kept": float(gap[~mask].max()) if (~mask).any() else None,
            **self._gold_summary(mask, feats),
        }
