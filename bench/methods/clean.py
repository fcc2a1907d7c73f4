"""``method=clean``: a detector names suspect training pairs, an action removes, flips or down-weights them, then
one TRL run with the cell's loss (``bench.methods.cleaning``, ``bench.methods.detectors``).

    python bench/run.py method=clean method.detector=oracle method.action=remove noise.rate=0.4   # positive control
    python bench/run.py method=clean method.detector=random noise.rate=0.4                        # negative control
    python bench/run.py method=clean method.detector=rm_margin loss=dpo noise.rate=0.4           # a realistic one

The detector names ``fraction`` of the pairs (``null``: the cell's noise rate, as the injector states it), the
highest-scoring ones. The oracle at the noise rate names exactly the flipped pairs; the random detector names as
many at random. Every cell records the detector's precision, recall, F1 and AUROC against the true flip mask
(``clean_*`` metrics and the record's ``clean`` block) and, for the two controls, ``control``: positive or negative.

A cleaner whose fraction names no pair runs no detector. Removing none (at flip rate 0, where the fraction is the
noise rate) it trains as ``method=standard`` does, step for step (``trains_as_standard``): such a cell takes its
standard twin's results from that cell's record (``bench.cell.borrow``).

``method=subset method.keep=0.36``: a seeded random ``keep`` share of the pairs and nothing else; with
``noise.rate=0`` it is the **clean learning curve** (``keep`` = (1 - 2 eps)^2 is the signal a flip rate eps leaves:
0.64, 0.36, 0.16, 0.04 at eps 0.1 to 0.4).
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from bench.core.counting import exact_count
from bench.core.options import ConfigError
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.cleaning import (
    check_weights,
    detector_metrics,
    flipped_of,
    result_of,
    stats_record,
    top_k,
    train_cleaned,
)
from bench.methods.detectors import KIND as DETECTORS
from bench.methods.detectors import RANDOM_SEED
from bench.methods.options import CleanOptions, SubsetOptions

CONTROLS = {"oracle": "positive", "random": "negative"}


class Clean(Method):
    name = "clean"
    stops_early = True  # one run on the cleaned pairs (a detector's warm-up carries no callbacks)

    Options = CleanOptions  # the detector is built (and checked) here, from the detectors' registry

    def validate(self) -> None:
        self.detector_part = DETECTORS.from_ref(self.options.detector, where="method.detector")

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return ("pair_weight",) if self.options.action == "weight" else ()

    def check(self, loss) -> str:
        check_weights(loss, self.options.action, self.name)
        return f"{getattr(loss, 'label', loss.name)} + {self.options.detector} cleaner ({self.options.action})"

    def _fraction(self, noise_rate: float | None) -> float | None:
        """``method.fraction``, or (null) the injector's stated noise rate; None when neither says."""
        fraction = self.options.fraction if self.options.fraction is not None else noise_rate
        return None if fraction is None else float(fraction)

    def share(self, noise_rate: float | None) -> float:
        """The share of pairs it names: ``method.fraction``, or (null) the injector's stated noise rate."""
        fraction = self._fraction(noise_rate)
        if fraction is None:
            raise ConfigError("method.fraction=null takes the cell's noise rate, and this injector states none; "
                              "valid: method.fraction=<share of pairs to name>")
        return fraction

    def trains_as_standard(self, noise_rate: float | None) -> bool:
        """Naming no pair (fraction 0: at flip rate 0 when it takes the noise rate) and removing them, it trains on
        every pair as labelled, for the standard cell's steps: method=standard's run, step for step."""
        return self._fraction(noise_rate) == 0.0 and self.options.action == "remove"

    def standard_result(self, ds) -> tuple[dict, dict, dict]:
        """What a cell that names no pair adds to its record: (record fields, metrics, their directions)."""
        stats = stats_record(np.zeros(len(ds), dtype=bool), flipped_of(ds))
        return (self._record(0.0, stats, len(ds), {}), *detector_metrics("clean", stats))

    def train(self, ctx: TrainContext) -> TrainResult:
        cfg, ds = self.options, ctx.train_dataset
        fraction = self.share(ctx.noise_rate)
        k = exact_count(fraction, len(ds))
        t0 = time.time()
        scores, info, named = None, {}, np.zeros(len(ds), dtype=bool)
        if k:  # naming nothing, the detector's scores would choose no pair: it is not run
            scores, info = self.detector_part.scores(ctx, cfg)
            named = top_k(scores, k, ctx.seed)
        t_detect = time.time() - t0
        stats = stats_record(named, flipped_of(ds), scores)
        ctx.log(f"clean ({cfg.detector}): {stats['n_named']} of {len(ds)} pairs named, precision {stats['precision']}, "
                f"recall {stats['recall']} (chance {stats['chance_precision']}); {cfg.action}")
        weights = np.where(named, cfg.named_weight, 1.0) if cfg.action == "weight" else None
        run, n_trained = train_cleaned(ctx, named, cfg.action, cfg.budget, "clean", weights=weights)
        return result_of(run, self._record(fraction, stats, n_trained, info), "clean", stats,
                         timings={"detect": t_detect})

    def _record(self, fraction: float, stats: dict, n_trained: int, info: dict) -> dict:
        cfg = self.options
        return {"clean": {"config": {k: v for k, v in asdict(cfg).items() if k != "rm"}, "fraction": fraction,
                          **stats, "n_trained_pairs": n_trained, **info},
                "control": CONTROLS.get(cfg.detector) if isinstance(cfg.detector, str) else None}


class Subset(Method):
    name = "subset"
    stops_early = True

    Options = SubsetOptions

    def check(self, loss) -> str:
        return f"{getattr(loss, 'label', loss.name)} on {self.options.keep:.0%} of pairs"

    def train(self, ctx: TrainContext) -> TrainResult:
        n = len(ctx.train_dataset)
        dropped = top_k(np.random.default_rng([ctx.seed, RANDOM_SEED, 1]).random(n),
                        n - exact_count(float(self.options.keep), n), ctx.seed)
        run, n_trained = train_cleaned(ctx, dropped, "remove", self.options.budget, "subset")
        return run.result({"subset": {**asdict(self.options), "n_trained_pairs": n_trained}})
