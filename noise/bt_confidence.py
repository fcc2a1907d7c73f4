"""``bt_confidence``: Bradley-Terry noise, the simulated teacher of B-Pref (Lee et al. 2021).

Model. A teacher who sees gold rewards through a temperature ``T`` keeps the dataset's label with probability
``sigmoid(|gap| / T)``, so pair i is flipped with probability ``p_i = sigmoid(-|gap_i| / T)`` where
``gap_i = gold(prompt, chosen) - gold(prompt, rejected)``: near-ties flip about half the time, clear pairs
rarely. ``T`` is calibrated by bisection (on log T) so that ``sum(p_i) = round(rate * n)``, then exactly that many
pairs are drawn with inclusion probabilities ``p_i`` (``noise.base.sample_exact``). The gap enters as ``|gap|``
because the dataset label is the reference the noise is measured against; where the gold reward disagrees with
that label the summary says how often (``gold_disagreement_rate``).

Reachable rates. ``p_i <= 1/2`` for every T, and ``T -> inf`` makes the teacher a coin (rate 1/2), so rates above
0.5 cannot be produced by this model: ``noise.rate > 0.5`` is a ValueError at construction (use ``random_flip`` or an
``annotator_biased`` pool with adversarial annotators for those). At rate 0.5 (or when rounding asks for more than
n/2 flips) the draw is uniform, the ``T = inf`` limit (the summary's ``temperature`` is then null: JSON has no
inf). Exact ties (gap 0) flip with probability 1/2 at every T > 0; if the rate is so low that even the ties
alone would flip too often, the flips are spread uniformly over the ties (the ``T -> 0`` limit, temperature 0).

Gold rewards, in order of preference (``noise.gold``): numeric columns ``gold_chosen`` / ``gold_rejected`` (how the
embedded world provides them), else ``gold_reward=callable(prompt, response) -> float``, else ``reward_model=`` a
callable with the same signature (a learned proxy). Without any of them the injector cannot run and says how to
supply one.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.core.counting import bisect_increasing
from bench.core.options import ConfigError, option
from noise.base import Injector, rates_where, sample_exact, sigmoid
from noise.gold import GOLD_COLUMNS, gold_pair  # noqa: F401  (GOLD_COLUMNS: part of this module's API)


class BTConfidence(Injector):
    name = "bt_confidence"

    class Options(Injector.Options):
        gold_reward: Any = option("where the data has no gold columns: a callable (prompt, response) -> float, "
                                  "passed from Python")
        reward_model: Any = option("a learned proxy, the same kind of callable (used when gold_reward is null)")

    def validate(self) -> None:
        super().validate()
        if self.rate > 0.5:
            raise ConfigError(
                f"noise.rate={self.rate} is not reachable by bt_confidence: a Bradley-Terry teacher flips each pair "
                "with probability at most 1/2 (a coin at infinite temperature), so its rate is at most 0.5. Use "
                "random_flip, or annotator_biased with adversarial annotators, for higher rates"
            )
        for key in ("gold_reward", "reward_model"):
            fn = getattr(self, key)
            if fn is not None and not callable(fn):
                raise ConfigError(
                    f"noise.{key} must be a callable (prompt, response) -> float, got {type(fn).__name__} {fn!r}; "
                    f"build the scorer in Python and pass it: noise.get('bt_confidence', ..., {key}=scorer)"
                )

    def _features(self, ds):
        gc, gr, source = gold_pair(ds, self.name, self.gold_reward, self.reward_model)
        return {"gap": gc - gr, "source": source}

    def _choose(self, feats, k, rng):
        g = np.abs(feats["gap"])
        n, ties = len(g), g == 0
        if k == 0:
            return np.zeros(n, dtype=bool), None, {"temperature": 0.0}
        if 2 * k >= n:  # rate 0.5, or rounding up past n/2: the T = inf coin
            return sample_exact(rng, np.full(n, k / n), k), None, {"temperature": math.inf}
        if k <= 0.5 * ties.sum():  # even T -> 0 flips the ties too often: spread the flips over the ties
            return sample_exact(rng, ties * (k / ties.sum()), k), None, {"temperature": 0.0}
        nz = g[~ties]
        lo, hi = math.log(nz.min()) - 40.0, math.log(nz.max()) + 40.0
        # the expected number of flips, sum of sigmoid(-g / T), increases with log T
        t = math.exp(bisect_increasing(lambda log_t: float(sigmoid(-g / math.exp(log_t)).sum()), k, lo, hi))
        return sample_exact(rng, sigmoid(-g / t), k), None, {"temperature": t}

    def _summary(self, mask, annotator, feats, calib):
        g = np.abs(feats["gap"])
        q1, q3 = np.quantile(g, [0.25, 0.75])
        return {
            "gold_source": feats["source"],
            **calib,
            **rates_where(mask, {"rate_near_ties": g <= q1, "rate_clear": g >= q3}),
            "mean_abs_gap_flipped": float(g[mask].mean()) if mask.any() else None,
            "mean_abs_gap_kept": float(g[~mask].mean()) if (~mask).any() else None,
            "gold_disagreement_rate": float((feats["gap"] < 0).mean()),
        }
