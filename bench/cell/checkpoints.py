"""A cell's checkpoint scoring: the callback its method's trainers carry, the time it took, the curve it leaves.

``eval.checkpoints.every`` (epochs or steps) makes ``bench.evaluation.checkpoints.Checkpoints`` score the policy
within the run; the end is always scored by the same ``PolicyEvaluation``. The record's ``curve`` is every
checkpoint's metrics then the end's; ``margins.json`` keeps the margins z of the sampled training pairs at each
point (the report's histograms), with which pairs they are and which of them were flipped.
"""
from __future__ import annotations

import time

from bench.evaluation.checkpoints import Checkpoints, PolicyEvaluation, Scored, point


class CellCheckpoints:
    def __init__(self, evaluation: PolicyEvaluation, cfg, stop_after: float | None = None):
        self.evaluation = evaluation
        self.callback = None
        if cfg.every is not None:
            self.callback = Checkpoints(self._timed, cfg.every, cfg.unit, stop_after)
        self.seconds = 0.0

    @property
    def stopped(self) -> dict | None:
        """Where the run ended before its schedule's end (``eval.checkpoints.stop_after``), else None."""
        return self.callback.stopped if self.callback is not None else None

    @property
    def callbacks(self) -> list:
        return [self.callback] if self.callback is not None else []

    @property
    def points(self) -> list[dict]:
        return self.callback.points if self.callback is not None else []

    def _timed(self, policy, final: bool = False) -> Scored:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return Scored({}, {})  # a multi-GPU cell: rank 0 scores, the others go on
        t0 = time.time()
        try:
            return self.evaluation(policy, final=final)
        finally:
            self.seconds += time.time() - t0

    def evaluate(self, policy, final: bool = True) -> Scored:
        return self.evaluation(policy, final=final)

    def curve(self, global_step: int, final: Scored) -> list[dict]:
        """Every checkpoint's point, then the end's (its epoch as the checkpoints count epochs, when they ran)."""
        spe = self.callback.steps_per_epoch if self.callback is not None else None
        end = point(global_step, global_step / spe if spe else float("nan"), final.metrics)
        return [*self.points, end]

    def margins(self, curve: list[dict], final: Scored) -> dict:
        probe = self.evaluation.probe
        zs = (list(self.callback.z) if self.callback is not None else []) + [final.z]
        return {"rows": probe.rows.tolist(), "is_flipped": probe.flipped.tolist(),
                "points": [{"step": p["step"], "epoch": p["epoch"], "z": [round(float(v), 5) for v in z]}
                           for p, z in zip(curve, zs) if z is not None]}
