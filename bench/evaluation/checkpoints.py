"""One cell's policy scored at checkpoints within its training run, and at the end, by one function.

``PolicyEvaluation`` scores a policy: the test split (the core metrics and every evaluator; at intermediate
checkpoints the evaluators that opt out, ``per_checkpoint = False`` like the LLM judge, are skipped), the
validation split in tuning cells, and the margin diagnostics of ``bench.evaluation.margins``. ``Checkpoints`` is a
``transformers.TrainerCallback`` that calls it every ``eval.checkpoints.every`` epochs (passes over the pairs the
run trains on, counted from its first trainer's data loader) or steps, with the random-number state saved and
restored around it: training takes exactly the same steps with or without checkpoints. The end of training is
always scored (the cell's final evaluation); a checkpoint that falls on a trainer's last step waits: a staged
method's next trainer scores it as it begins (the policy is the one that stage left), and after the last trainer the
final evaluation stands for it.

The record carries the whole curve (``curve``: one point per checkpoint, the last one the end) and the headline
``metrics`` are the end's, unless a tuning selection picked a checkpoint (``hp_source.checkpoint``: the report then
reads that point of the curve).
"""
from __future__ import annotations

import math
import random
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import TrainerCallback

from bench.core.metrics import infos
from bench.evaluation import margins as margin_diag
from bench.evaluation import validation as val
from bench.evaluation.core import CORE_METRICS, evaluate_policy
from bench.models import load_causal_lm
from bench.models.adapters import AdapterOff, is_peft


@dataclass
class Scored:
    """What one evaluation gives: metrics, their directions (``metric_info``), the test samples, the margins."""

    metrics: dict[str, float]
    info: dict[str, dict]
    samples: list[dict] = field(default_factory=list)
    val_samples: list[dict] = field(default_factory=list)
    z: np.ndarray | None = None


class PolicyEvaluation:
    """Scores a policy of one cell (see the module docstring); the reference model is loaded once."""

    def __init__(self, data, parts, noisy, tokenizer, noise_node: dict, cache_root: str | None):

        self.data, self.parts, self.tokenizer = data, parts, tokenizer
        self.noise_node, self.cache_root = noise_node, cache_root
        self._ref = None  # loaded on first use, and never for a LoRA policy (``reference``)
        key = {"data": data.fingerprint, "model": data.model_path}
        self.probe = margin_diag.MarginProbe(noisy, parts.eval.checkpoints.diagnostic_pairs, parts.run.seed,
                                             parts.loss, tokenizer, key, cache_root)

    @property
    def ref_model(self):
        """The reference policy, loaded once (on the CPU; ``reference`` moves it to the policy's device)."""
        if self._ref is None:
            self._ref, _ = load_causal_lm(self.data.model_path, "cpu")
        return self._ref

    def reference(self, policy):
        """The reference to score ``policy`` against: a LoRA policy's own base model with its adapter disabled (the
        same weights as the reference, no second copy in memory); otherwise the loaded reference, on its device."""
        if is_peft(policy):
            return AdapterOff(policy)
        device = str(next(policy.parameters()).device)
        if str(next(self.ref_model.parameters()).device) != device:
            self.ref_model.to(device)
        return self.ref_model

    def __call__(self, policy, final: bool = True) -> Scored:
        ref = self.reference(policy)
        p = self.parts
        evaluators = p.evaluators if final else [e for e in p.evaluators if getattr(e, "per_checkpoint", True)]
        metrics, info, samples = evaluate_policy(policy, ref, self.tokenizer, self.data, p.loss, p.eval,
                                                 evaluators, p.run.seed, cache_root=self.cache_root)
        val_samples = []
        if p.eval.validation.enabled:
            v, val_samples = val.score_validation(policy, ref, self.tokenizer, self.data, p.loss, p.eval,
                                                  self.noise_node, p.run.seed, self.cache_root)
            metrics.update(v)
            info.update(infos({k: val.METRICS[k] for k in v}, "validation"))
        diag, z = self.probe(policy, ref)
        metrics.update(diag)
        info.update(infos({k: margin_diag.METRICS[k] for k in diag}, "diagnostics"))
        return Scored(metrics, info, samples, val_samples, z)


@contextmanager
def preserved_rng():
    """Whatever the evaluation draws, the training's random streams continue as if it had not run."""
    state = (torch.get_rng_state(), np.random.get_state(), random.getstate(),
             torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])
        if state[3] is not None:
            torch.cuda.set_rng_state_all(state[3])


class Checkpoints(TrainerCallback):
    """Scores the policy every ``every`` epochs or steps of its run (``points``: one dict per checkpoint).

    ``stop_after`` (epochs): the run ends at the first checkpoint at or past it (``stopped`` says where), left
    unscored here: the final evaluation scores that policy as the run's end. Only for a method that says it can
    (``Method.stops_early``): one schedule spans its trainers, so every step up to there is the one the whole run
    takes, and it trains no stage after the stop. ``planned_steps`` (set by ``Staged``: every stage's steps) is the
    whole run's length, so a checkpoint on a stage's last step can be the stop; else the trainer's own."""

    def __init__(self, evaluate: PolicyEvaluation, every: float, unit: str = "epochs", stop_after: float | None = None):
        self.evaluate, self.every, self.unit = evaluate, float(every), unit
        self.stop_after = None if stop_after is None else float(stop_after)
        self.stopped: dict | None = None  # {"step", "epoch", "stop_after", "planned_steps"} once the run ended early
        self.points: list[dict] = []
        self.z: list[np.ndarray] = []
        self.step = 0  # optimizer steps across every trainer of the run (a staged method has several)
        self.steps_per_epoch: int | None = None
        self.pending: int | None = None  # a checkpoint due on a trainer's last step: the next trainer's first act
        self.planned_steps: int | None = None  # the whole run's optimizer steps (a staged method's: all stages')

    def on_train_begin(self, args, state, control, train_dataloader=None, model=None, **kwargs):
        if self.steps_per_epoch is None and train_dataloader is not None:
            self.steps_per_epoch = max(1, math.ceil(len(train_dataloader) / args.gradient_accumulation_steps))
        if self.pending is not None and model is not None:  # a staged method's stage ended on a checkpoint
            self._score(model, self.pending)
        self.pending = None

    def interval(self) -> float:
        return self.every if self.unit == "steps" else self.every * float(self.steps_per_epoch or 1)

    def epoch(self, step: int) -> float:
        return step / float(self.steps_per_epoch or 1)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.step += 1
        due = math.floor(self.step / self.interval() + 1e-9) > math.floor((self.step - 1) / self.interval() + 1e-9)
        if not due or model is None:
            return
        planned = self.planned_steps or int(state.max_steps)
        if self.stop_after is not None and self.step < planned and \
                round(self.epoch(self.step), 4) >= round(self.stop_after, 4):
            self.stopped = {"step": self.step, "epoch": round(self.epoch(self.step), 6), "stop_after": self.stop_after,
                            "planned_steps": planned}
            control.should_training_stop = True  # the final evaluation scores this policy: the curve's end
            return control
        if state.global_step >= state.max_steps:  # this trainer's last step: the run's end, or a stage's
            self.pending = self.step
            return
        self._score(model, self.step)

    def _score(self, model, step: int) -> None:
        with preserved_rng():
            scored = self.evaluate(model, final=False)
        model.train()
        self.points.append(point(step, self.epoch(step), scored.metrics))
        self.z.append(scored.z)


def point(step: int, epoch: float, metrics: dict) -> dict:
    return {"step": int(step), "epoch": round(float(epoch), 6), **metrics}


def curve_metrics() -> dict:
    """The directions of the metrics a curve point may carry beyond the evaluators' own."""
    return {**CORE_METRICS, **val.METRICS, **margin_diag.METRICS}
