"""``none``: the clean baseline. Flips nothing and records a target rate of 0, whatever rate it was given.

A cross-product sweep (``noise=none,random_flip noise.rate=0.2,0.4``) hands ``none`` a non-zero rate too; that
cell still runs (with a warning) so the sweep does not crash, and its record says ``target_rate: 0`` so it is
never mistaken for a noisy cell. The requested rate is kept as ``requested_rate`` in the summary.
"""
from __future__ import annotations

import warnings

import numpy as np

from noise.base import Injector


class NoNoise(Injector):
    name = "none"

    def validate(self) -> None:
        super().validate()
        if self.rate != 0.0:
            warnings.warn(
                f"noise 'none' ignores noise.rate={self.rate}: nothing is flipped and the target rate is "
                "recorded as 0",
                stacklevel=3,
            )

    @property
    def target_rate(self) -> float:
        return 0.0

    def _choose(self, feats, k, rng):
        return np.zeros(len(feats["index"]), dtype=bool), None, {}

    def _features(self, ds):
        return {"index": np.arange(len(ds))}

    def _summary(self, mask, annotator, feats, calib):
        return {"requested_rate": self.rate}
