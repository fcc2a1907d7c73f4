"""Training in stages with one optimizer and one learning-rate schedule across them (``curriculum``, ``self_play``,
``rm_ensemble``'s single stage), and the training budget they share with ``method=standard``.

``budget: matched`` gives a method as many optimizer steps as the standard cell (``train.max_steps``, else
``train.epochs`` passes over the cell's training pairs, counted as transformers counts them), split over its stages;
``per_stage`` gives every stage the whole budget (a method that costs stages x as many steps, said so in its record).
A run asked to end at a checkpoint (``eval.checkpoints.stop_after``) ends there whatever stage it is in: ``Staged``
tells the checkpoints the whole run's length, and the method trains no stage after ``Staged.stopped``.
"""
from __future__ import annotations

import math
import time

from bench.core.options import ConfigError
from bench.methods.base import TrainContext, TrainResult


def total_steps(train, n_pairs: int) -> int:
    """The standard cell's optimizer steps on ``n_pairs`` pairs (``train``: the cell's TrainConfig)."""
    if train.max_steps:
        return int(train.max_steps)
    return math.ceil(float(train.epochs) * steps_per_epoch(train, n_pairs))


def steps_per_epoch(train, n_pairs: int) -> int:
    """Optimizer steps of one pass over ``n_pairs`` pairs: transformers 5 takes ceil(batches / accumulation) (the
    last one on fewer micro-batches)."""
    return max(math.ceil(math.ceil(n_pairs / train.batch_size) / train.gradient_accumulation_steps), 1)


def split_steps(total: int, weights: list[float], where: str, per_stage: str = "method.budget=per_stage") -> list[int]:
    """``total`` steps over stages in proportion to ``weights`` (largest remainder), at least one step each;
    ``per_stage`` names the caller's setting that gives every stage the whole budget (for the error)."""
    k = len(weights)
    if total < k:
        raise ConfigError(f"{where}: the training budget is {total} steps, fewer than its {k} stages; raise "
                                f"train.max_steps / train.epochs, use fewer stages, or {per_stage}")
    s = float(sum(weights))
    raw = [total * w / s for w in weights] if s > 0 else [total / k] * k  # each stage's exact share
    steps = [int(math.floor(r)) for r in raw]
    for i in sorted(range(k), key=lambda i: (steps[i] - raw[i], i))[: total - sum(steps)]:
        steps[i] += 1
    for i in range(k):  # a stage whose share rounds to 0 takes a step from the stage most above its share
        if steps[i] == 0:
            j = max((j for j in range(k) if steps[j] > 1), key=lambda j: (steps[j] - raw[j], -j))
            steps[j] -= 1
            steps[i] += 1
    return steps


class Staged:
    """Stage after stage on one policy: each stage a TRL run (``ctx.trainer``) of its own dataset and length, the
    optimizer and the schedule (warmup and decay over the sum of all stages) carried from one to the next."""

    def __init__(self, ctx: TrainContext, steps: list[int], name: str, unit: str = "stage",
                 epoch_pairs: int | None = None):
        """``epoch_pairs``: the pairs one epoch passes over, where the first stage trains on fewer (a curriculum's
        stages split them); by default the checkpoints count epochs on the first stage's data loader."""
        self.ctx, self.steps, self.name, self.unit = ctx, list(steps), name, unit  # unit: "stage" or "round"
        self.optimizer = self.scheduler = self.trainer = None
        self.history: list[dict] = []
        self.done: list[int] = []  # optimizer steps each stage trained (its planned ones, unless the run stopped)
        self.loss_sum, self.global_step = 0.0, 0
        self.timings = {"trainer_init": 0.0, "train": 0.0}
        # the run's whole length (a checkpoint on a stage's last step may be its stop) and its epoch
        ctx.plan(sum(self.steps), None if epoch_pairs is None else steps_per_epoch(ctx.train, epoch_pairs))

    @property
    def stopped(self) -> bool:
        """Whether the run ended at a checkpoint (``eval.checkpoints.stop_after``): no stage after it trains."""
        return self.ctx.stopped()

    def args(self, i: int):
        args = self.ctx.args(f"{self.unit}_{i + 1}", max_steps=self.steps[i])
        args.data_seed = self.ctx.seed + i  # stage 1's order is the standard cell's
        return args

    def prepare(self, dataset, **kwargs):
        """A trainer on ``dataset`` for stage 1 (TRL tokenizes it and attaches the reference log-probs, from the
        shared cache where the cell has one); its ``train_dataset`` is the tokenized data later stages select from."""
        t0 = time.time()
        self.trainer = self.ctx.trainer(dataset, args=self.args(0), ref_cache=self.ctx.ref_cache, **kwargs)
        self.timings["trainer_init"] += time.time() - t0
        if self.trainer.accelerator.num_processes > 1:
            raise ConfigError(f"method={self.name} runs in one process (its stages are not distributed)")
        self._schedule()
        return self.trainer.train_dataset

    def _schedule(self) -> None:
        from transformers import get_scheduler

        args = self.trainer.args
        self.optimizer = self.trainer.create_optimizer()
        self.scheduler = get_scheduler(args.lr_scheduler_type, optimizer=self.optimizer,
                                       num_warmup_steps=args.get_warmup_steps(sum(self.steps)),
                                       num_training_steps=sum(self.steps), scheduler_specific_kwargs=args.lr_scheduler_kwargs)
        self.trainer.lr_scheduler = self.scheduler

    def run(self, i: int, dataset=None, **kwargs) -> float:
        """Train stage ``i`` on ``dataset`` (stage 0: the prepared one, unless given); returns its training loss."""
        if dataset is not None or self.trainer is None:
            t0 = time.time()
            if self.optimizer is None:
                self.trainer = self.ctx.trainer(dataset, args=self.args(i), ref_cache=self.ctx.ref_cache, **kwargs)
                self._schedule()
            else:
                self.trainer = self.ctx.trainer(dataset, args=self.args(i), optimizers=(self.optimizer, self.scheduler),
                                                **kwargs)
            self.timings["trainer_init"] += time.time() - t0
        t0 = time.time()
        out = self.trainer.train()
        self.timings["train"] += time.time() - t0
        done = int(self.trainer.state.global_step)
        self.done.append(done)
        self.loss_sum += float(out.training_loss) * done
        self.history += [{**h, self.unit: i + 1, "step": self.global_step + int(h.get("step", 0))}
                         for h in self.trainer.state.log_history if "loss" in h]
        self.global_step += done
        self.ctx.log(f"{self.name} {self.unit} {i + 1}/{len(self.steps)}: {done} steps on {len(self.trainer.train_dataset)} "
                     f"pairs, train loss {float(out.training_loss):.4f}"
                     + (f"; the run ends here, at step {self.global_step} of {sum(self.steps)} (a checkpoint at or "
                        "past eval.checkpoints.stop_after)" if self.stopped else ""))
        return float(out.training_loss)

    def result(self, record: dict, metrics: dict | None = None, directions: dict | None = None,
               timings: dict | None = None) -> TrainResult:
        self.ctx.policy.eval()
        extra = dict(timings or {})
        return TrainResult(
            training_loss=self.loss_sum / self.global_step if self.global_step else float("nan"),
            global_step=self.global_step, log_history=self.history, record=record, metrics=metrics or {},
            directions=directions or {},
            timings={"trainer_init": self.timings["trainer_init"], "train": self.timings["train"] + sum(extra.values()),
                     **({"parts": extra} if extra else {})},  # train includes the method's own parts, named here
        )
