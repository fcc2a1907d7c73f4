"""``skip``: B-Pref's skipping teacher: a query where neither response is good enough is not answered.

Source: Lee, Smith, Dragan and Abbeel, "B-Pref: Benchmarking Preference-Based Reinforcement Learning" (NeurIPS 2021
Datasets and Benchmarks; code rll-research/BPref, ``teacher_thres_skip``: a query is skipped when the better of
its two segments has a reward below the threshold).

Model. The teacher skips exactly ``round(rate * n)`` pairs: those whose better response (``max(gold_chosen,
gold_rejected)``) has the lowest gold reward, pairs with equal maxima in a seeded random order. B-Pref states the
threshold; here the rate sets it, so ``skip`` sweeps at the same rates as the other injectors, and the record states
the threshold it came to (``skip_threshold``: the best response of the best skipped pair). No label changes: no pair
is flipped (``flip_rate`` 0). A skipped pair stays in the returned rows with ``keep`` False, so the reference
log-probs and every per-row mask line up; the cell trains on the kept pairs only (``noise.base.training_rows``).

Summary: ``n_skipped``, ``skipped_rate`` (exactly the rate), ``skip_threshold``, ``mean_best_gold_skipped`` and
``mean_best_gold_kept``, ``gold_source``.
"""
from __future__ import annotations

import numpy as np

from noise.base import KEEP, seeded_order
from noise.gold import GoldTeacher, gold_pair


class Skip(GoldTeacher):
    name = "skip"
    @property
    def flip_rate(self) -> float:
        return 0.0

    def _features(self, ds):
        gc, gr, source = gold_pair(ds, self.name, self.gold_reward)
        return {"gap": gc - gr, "best": np.maximum(gc, gr), "source": source}

    def _choose(self, feats, k, rng):
        n = len(feats["best"])
        skipped = np.zeros(n, dtype=bool)
        skipped[seeded_order(feats["best"], rng)[:k]] = True
        return np.zeros(n, dtype=bool), None, {f"_{KEEP}": ~skipped, "_counted": skipped}

    def _summary(self, mask, annotator, feats, calib):
        keep, best = np.asarray(calib[f"_{KEEP}"], dtype=bool), feats["best"]
        return {
            "gold_source": feats["source"],
            "skip_threshold": float(best[~keep].max()) if (~keep).any() else None,
            "mean_best_gold_skipped": float(best[~keep].mean()) if (~keep).any() else None,
            "mean_best_gold_kept": float(best[keep].mean()) if keep.any() else None,
        }
