"""``length_biased``: an annotator who likes long answers, so flips fall where the rejected response is longer.

Model. Pair i gets the log length ratio ``d_i = log((1 + words(rejected)) / (1 + words(chosen)))`` and is flipped
with probability ``p_i = sigmoid(b + strength * d_i)``. The odds of a flip therefore scale as
``(length ratio) ** strength``: with the default ``strength: 3`` a pair whose rejected answer is twice as long as
the chosen one is 2**3 = 8 times likelier (in odds) to be flipped than a pair of equal lengths, and 64 times
likelier than a pair whose chosen answer is the twice-as-long one. ``strength: 0`` is ``random_flip``; large
values (>= 20) approach "flip the pairs with the largest length ratio first". The offset ``b`` is calibrated by
bisection so that ``sum(p_i) = round(rate * n)``, then exactly that many pairs are drawn with those inclusion
probabilities (``noise.base.sample_exact``).

Eligible pairs (the ones the bias targets) are those whose rejected response has more words than the chosen one.
Why a smooth weight rather than "only eligible pairs": real length-biased raters are not deterministic, and the
smooth model needs no special case when the rate is high. When ``rate`` exceeds the eligible fraction, the flips
that do not fit among the eligible pairs fall on the others, most likely on those with the smallest length gap
(ties first, then pairs whose chosen answer is only a little longer): the model's own ordering. A warning says so,
and the summary reports ``rate_longer_rejected`` (flip rate among eligible pairs), ``rate_other`` and
``eligible_fraction`` so the record shows how concentrated the noise really was.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from bench.core.options import ConfigError, option
from noise.base import (
    Injector,
    calibrate_shift,
    rates_where,
    sample_exact,
    sigmoid,
    texts,
    word_count,
)


class LengthBiased(Injector):
    name = "length_biased"

    class Options(Injector.Options):
        strength: Any = option("how strongly flips fall where the rejected answer is the longer (0: uniform flips, "
                               "3: default, >= 20: near-deterministic)")

    def validate(self) -> None:
        super().validate()
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s) or s < 0:
            raise ConfigError(
                f"noise.strength must be a finite number >= 0 (0 = uniform flips, 3 = default, >= 20 = "
                f"near-deterministic), got {s!r}"
            )
        self.strength = float(s)

    def _features(self, ds):
        lc, lr = word_count(texts(ds, "chosen")), word_count(texts(ds, "rejected"))
        return {"len_chosen": lc, "len_rejected": lr, "log_ratio": np.log1p(lr) - np.log1p(lc)}

    def _choose(self, feats, k, rng):
        d = feats["log_ratio"]
        n, eligible = len(d), int((feats["len_rejected"] > feats["len_chosen"]).sum())
        if k > eligible:
            warnings.warn(
                f"length_biased: noise.rate asks for {k} flips but only {eligible} of {n} pairs have the longer "
                f"response rejected; the other {k - eligible} flips fall on the remaining pairs, mostly those "
                "with the smallest length gap",
                stacklevel=3,
            )
        if not 0 < k < n:
            return np.full(n, k == n), None, {}
        logits = self.strength * d
        shift = calibrate_shift(logits, k)
        return sample_exact(rng, sigmoid(logits + shift), k), None, {"logit_shift": shift}

    def _summary(self, mask, annotator, feats, calib):
        eligible = feats["len_rejected"] > feats["len_chosen"]
        gap = (feats["len_rejected"] - feats["len_chosen"]).astype(float)
        rates = rates_where(mask, {"rate_longer_rejected": eligible, "rate_other": ~eligible})
        return {
            "strength": self.strength,
            "eligible_fraction": float(eligible.mean()),
            **rates,
            "eligible_share_of_flips": float(eligible[mask].mean()) if mask.any() else None,
            "mean_word_gap_flipped": float(gap[mask].mean()) if mask.any() else None,
            "mean_word_gap_all": float(gap.mean()),
            **calib,
        }
