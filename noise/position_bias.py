"""``position_bias``: an LLM annotator that favours the response it is shown first, most where the pair is close.

Source: the position bias of LLM judges, Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena"
(NeurIPS 2023 Datasets and Benchmarks) and Wang et al., "Large Language Models are not Fair Evaluators" (ACL 2024):
the verdict changes with the order of the two responses, mostly on close pairs.

"Shown first", defined. Each pair gets a presentation order from its own seeded generator (``presentation_order``,
seeded by ``(seed, name, "order")``), counterbalanced: exactly ``ceil(n / 2)`` pairs, drawn at random, show the
rejected response first, the others the chosen one. A real annotation run would have its own order; this one is the
simulated annotator's, and it is what the flips depend on.

Model. The annotator can only err towards the response it saw first, so a pair whose chosen response was shown first
is never flipped. A pair whose rejected response was shown first is flipped with probability
``2 sigmoid(-|g| / T)`` (``g`` its gold margin): an exact tie goes to the first response always, a clear pair hardly
ever. ``T`` is calibrated so that exactly ``round(rate * n)`` pairs flip (drawn with those inclusion probabilities,
``noise.base.sample_exact``). The flips therefore depend on the presentation order and on how close the pair is,
and on nothing else about the responses (length, wording). Rates above 0.5 cannot be reached (only the pairs shown
rejected-first can flip): a ``ConfigError``.

Summary: ``rate_rejected_shown_first`` and ``rate_chosen_shown_first`` (0), ``share_rejected_shown_first``,
``temperature``, the near-tie/clear rates among the pairs shown rejected-first, ``realized_rate_vs_gold``,
``gold_source``.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from bench.core.counting import bisect_increasing
from bench.core.options import ConfigError
from noise.base import rates_where, sample_exact, sigmoid
from noise.gold import GoldTeacher, gap_rates


class PositionBias(GoldTeacher):
    name = "position_bias"
    def _validate_scale(self) -> None:
        if self.rate > 0.5:
            raise ConfigError(f"noise.rate={self.rate} is not reachable by position_bias: only the pairs whose "
                              "rejected response is shown first (half of them) can flip; valid: a rate in [0, 0.5]")

    def presentation_order(self, n: int) -> np.ndarray:
        """True where pair i shows its rejected response first: exactly ceil(n / 2) pairs, seeded by the noise seed."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.name.encode()), 1]))
        first = np.zeros(n, dtype=bool)
        first[rng.permutation(n)[: (n + 1) // 2]] = True
        return first

    def _features(self, ds):
        return {**super()._features(ds), "rejected_first": self.presentation_order(len(ds))}

    def _choose(self, feats, k, rng):
        g, first = np.abs(feats["gap"]), feats["rejected_first"]
        n, ties = len(g), first & (g == 0)
        if k == 0:
            return np.zeros(n, dtype=bool), None, {"temperature": 0.0}
        if k >= first.sum():
            return first.copy(), None, {"temperature": None}
        if k <= ties.sum():  # even T -> 0 flips every exact tie shown rejected-first: spread the flips over them
            return sample_exact(rng, ties * (k / ties.sum()), k), None, {"temperature": 0.0}
        nz = g[first & ~ties]

        def probs(t: float) -> np.ndarray:
            return np.where(first, 2.0 * sigmoid(-g / t), 0.0)

        lo, hi = math.log(nz.min()) - 40.0, math.log(nz.max()) + 40.0
        t = math.exp(bisect_increasing(lambda log_t: float(probs(math.exp(log_t)).sum()), k, lo, hi))
        return sample_exact(rng, probs(t), k), None, {"temperature": t}

    def _summary(self, mask, annotator, feats, calib):
        first = feats["rejected_first"]
        near = gap_rates(mask[first], feats["gap"][first])
        return {
            **rates_where(mask, {"rate_rejected_shown_first": first, "rate_chosen_shown_first": ~first}),
            "share_rejected_shown_first": float(first.mean()),
            **({"temperature": calib["temperature"]} if "temperature" in calib else {}),
            **{f"{key}_rejected_first": v for key, v in near.items()},
            **self._gold_summary(mask, feats),
        }
