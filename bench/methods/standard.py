"""``method=standard``: one TRL run over the (noisy) training pairs with the cell's loss."""
from __future__ import annotations

import time

from bench.methods.base import Method, TrainContext, TrainResult


class Standard(Method):
    name = "standard"
    stops_early = True

    def train(self, ctx: TrainContext) -> TrainResult:
        t0 = time.time()
        trainer = ctx.trainer(ctx.train_dataset, ref_cache=ctx.ref_cache)
        init = time.time() - t0  # includes the reference pass, unless the shared cache had it
        t0 = time.time()
        out = trainer.train()
        ctx.policy.eval()
        return TrainResult(
            training_loss=float(out.training_loss),
            global_step=int(trainer.state.global_step),
            log_history=[h for h in trainer.state.log_history if "loss" in h],
            is_main_process=trainer.accelerator.is_main_process,
            timings={"trainer_init": init, "train": time.time() - t0},
        )
