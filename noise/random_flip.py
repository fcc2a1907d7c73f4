"""``random_flip``: symmetric noise. Exactly round(rate * n) pairs, chosen uniformly, have their labels swapped.

This is the noise of rDPO, Dr. DPO, SymPO, ROPO and PLC-DPO, except that the count is exact rather than each pair
flipping independently with probability ``rate`` (see ``noise.base`` for why).
"""
from __future__ import annotations

import numpy as np

from noise.base import Injector


class RandomFlip(Injector):
    name = "random_flip"

    def _features(self, ds):
        return {"index": np.arange(len(ds))}

    def _choose(self, feats, k, rng):
        n = len(feats["index"])
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=k, replace=False)] = True
        return mask, None, {}
