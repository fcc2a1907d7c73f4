"""``method=rm_ensemble`` (after Coste et al., ICLR 2024, "Reward Model Ensembles Help Mitigate Overoptimization"):
``k`` reward models trained on bootstrap resamples of the cell's *noisy* training pairs judge every pair, and the
pairs whose conservative margin falls below ``threshold`` are dropped, relabelled or down-weighted before one TRL
run with the cell's loss.

The ensemble is ``bench.methods.ensemble`` (also the cleaner's ``rm_ensemble`` detector); each member is the
embedded reward model's recipe (``method.rm``, the composed ``evaluator/reward_model`` recipe). Margins ``m_j = r_j(chosen) -
r_j(rejected)`` of each pair as labelled are combined as the paper combines rewards: ``mean``, ``worst_case``
(``min_j m_j``) or ``uncertainty`` (``mean_j m_j - coeff * var_j m_j``). Then:

- ``drop``: disputed pairs are left out (the remaining pairs get the standard cell's number of steps);
- ``relabel``: disputed pairs have chosen and rejected swapped (and their scores; the reference log-probs follow
  through ``is_flipped``, which then says whether the pair differs from its clean label);
- ``weight``: every pair weighs ``sigmoid(m / temperature)`` in a weighted mean of the per-pair loss.

These are the cleaners' actions (``bench.methods.cleaning``: remove, flip, weight), on the standard cell's budget;
``method=clean method.detector=rm_ensemble`` names a fixed fraction of pairs by the same ensemble instead of a
threshold.

No clean label is used. The record gives the precision and recall of the disputed pairs against the flip mask
(after the fact), the chance precision (the realized flip rate) and each member's accuracy on the data's
held-out pairs (on the world: against gold).
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from bench.core.detection import detection_stats
from bench.core.metrics import COUNTER, HIGHER
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.cleaning import check_weights, flipped_of, relabel, train_cleaned  # noqa: F401  (relabel: API)
from bench.methods.ensemble import combine, ensemble_margins  # noqa: F401  (combine: part of this API)
from bench.methods.options import RMEnsembleOptions

ACTION = {"drop": "remove", "relabel": "flip", "weight": "weight"}  # this method's words for the cleaners' actions


class RMEnsemble(Method):
    name = "rm_ensemble"
    stops_early = True  # one run on the pairs as the ensemble left them (its members train apart, no callbacks)

    Options = RMEnsembleOptions  # its check: the members' recipe is the embedded one

    @classmethod
    def from_options(cls, options: dict, **context) -> RMEnsemble:
        method = cls(**options)
        method.rm_node = dict(options["rm"])  # the record keeps the recipe as configured
        return method

    @property
    def extra_columns(self) -> tuple[str, ...]:
        return ("pair_weight",) if self.options.action == "weight" else ()

    def check(self, loss) -> str:
        check_weights(loss, self.options.action, self.name)
        return f"{getattr(loss, 'label', loss.name)} + RM ensemble ({self.options.action}, {self.options.combine})"

    def train(self, ctx: TrainContext) -> TrainResult:
        cfg, ds = self.options, ctx.train_dataset
        t0 = time.time()
        margins, members = ensemble_margins(ds, cfg.k, cfg.rm, ctx)
        combined = combine(margins, cfg.combine, cfg.coeff)
        disputed = combined < cfg.threshold
        t_ensemble = time.time() - t0
        stats = touched_stats(disputed, flipped_of(ds))
        ctx.log(f"rm_ensemble: {stats['n_touched']} of {len(ds)} pairs disputed ({cfg.combine}), precision "
                f"{stats['precision']}, recall {stats['recall']} (chance {stats['chance_precision']}); {cfg.action}")
        if cfg.action == "drop" and disputed.all():
            raise RuntimeError(f"method=rm_ensemble: the ensemble disputes all {len(ds)} pairs (combine={cfg.combine}, "
                               f"threshold={cfg.threshold}); nothing is left to train on: lower method.threshold or use "
                               "method.action=weight")
        # the cleaners' one mechanism (bench.methods.cleaning), on the standard cell's budget whatever is dropped
        run, _ = train_cleaned(ctx, disputed, ACTION[cfg.action], "steps", "rm_ensemble",
                               weights=weights(combined, cfg.temperature) if cfg.action == "weight" else None)
        record = {"rm_ensemble": {"config": {**asdict(cfg), "rm": getattr(self, "rm_node", cfg.rm.values())}, **stats,
                                  "members": members,
                                  "combined_margin_mean": float(np.mean(combined))}}
        metrics = {"rm_ensemble_precision": _nan(stats["precision"]), "rm_ensemble_recall": _nan(stats["recall"]),
                   "rm_ensemble_touched": float(stats["n_touched"])}
        return run.result(record, metrics=metrics,
                          directions={"rm_ensemble_precision": HIGHER, "rm_ensemble_recall": HIGHER,
                                      "rm_ensemble_touched": COUNTER},
                          timings={"ensemble": t_ensemble})


def weights(combined: np.ndarray, temperature: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-combined / temperature))


def touched_stats(touched: np.ndarray, flipped: np.ndarray | None) -> dict:
    """Precision and recall of the touched pairs against the flip mask (None where undefined), in the record's
    words (``bench.core.detection`` computes them)."""
    d = detection_stats(touched, flipped)
    return {"n_pairs": d["n"], "n_touched": d["n_named"], "precision": d["precision"], "recall": d["recall"],
            "chance_precision": d["chance_precision"]}


def _nan(v):
    return float("nan") if v is None else float(v)


