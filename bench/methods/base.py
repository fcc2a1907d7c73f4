"""What a method is: one way of training a policy on the cell's (noisy) pairs with the cell's loss.

A method is a plug-in like every other (``bench.config.plugin``): a subclass of ``Method`` with a ``name``, its
options (``Options``: what of them counts for a cell's identity is declared there; a built-in method's live in
``bench.methods.options``, light, so a cell's id reads them without importing this trainer code) and
``train(ctx: TrainContext) -> TrainResult``; optionally ``check(loss)`` (start-up checks against the cell's loss,
before any data is loaded; it may return the label the cell's results carry). ``standard`` is one TRL run;
``ropo_full`` trains in rounds with a loss-based filter and rejection sampling. A user's own method is a class like
these in the user's package, named by ``_target_`` in ``conf/method/<name>.yaml`` on their ``hydra.searchpath``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config.plugin import Plugin
from bench.methods.options import MethodOptions
from bench.training import PreferenceTrainer, dpo_config


@dataclass
class TrainContext:
    """Everything a method may use to train one cell's policy (in place)."""

    policy: Any  # the policy to train: starts as the reference policy
    tokenizer: Any
    train_dataset: Any  # the noisy training pairs, with ``is_flipped`` where the noise mask is known
    loss: Any  # a bench.losses loss (or a user's object meeting its contract)
    train: Any  # the cell's typed ``train`` config (bench.config.schema.TrainConfig)
    out_dir: Path  # the cell's folder: a method may write its own files here
    seed: int
    reference_path: str  # the reference policy's folder (a frozen copy for new pairs' reference log-probs)
    ref_cache: Any = None  # bench.training.ref_cache.ReferenceLogpCache, or None to compute in this cell
    report_to: str = "none"  # "wandb" when the cell logs to W&B
    gold_reward: Callable[[str, str], float] | None = None  # for after-the-fact diagnosis only, never for choices
    max_new_tokens: int = 48  # response length of the data's pairs (for methods that sample new responses)
    log: Callable[[str], None] = print
    scorer: Any = None  # bench.evaluation.scorer.Scorer when the loss or method reads scores (score(prompts, responses))
    extra_columns: tuple[str, ...] = ()  # per-pair columns the trainer carries into batches (scores, annotator)
    cache_root: str | None = None  # the shared artifact cache (a method's own cached models: rm_ensemble)
    data_key: str = ""  # what determines the clean training pairs (the data's fingerprint), for such cache keys
    heldout_pairs: list | None = None  # clean held-out pairs {prompt, chosen, rejected} (text), for diagnostics only
    callbacks: list = field(default_factory=list)  # every trainer of the run carries them (checkpoint scoring)
    noise_rate: float | None = None  # the injector's stated rate (a cleaner's default fraction), None if it states none
    proxy_reward_model: Callable | None = None  # () -> (RewardModel, meta) | None: the proxy trained on noisy labels

    def args(self, out: str = "trainer", **changes: Any):
        """TRL's DPOConfig for this cell, with ``train`` fields changed (``max_steps=...``)."""
        return dpo_config(dataclasses.replace(self.train, **changes), self.out_dir / out, self.seed,
                          report_to=self.report_to)

    def plan(self, total_steps: int, steps_per_epoch: int | None = None) -> None:
        """Tells the run's callbacks how many optimizer steps the whole run takes (a staged method: every stage's),
        so a checkpoint on a stage's last step can be the run's stop (``eval.checkpoints.stop_after``), and, where
        its first trainer sees fewer pairs than an epoch passes over, how many steps an epoch is."""
        for cb in self.callbacks:
            if hasattr(cb, "planned_steps"):
                cb.planned_steps = int(total_steps)
            if steps_per_epoch is not None and hasattr(cb, "steps_per_epoch"):
                cb.steps_per_epoch = int(steps_per_epoch)

    def stopped(self) -> bool:
        """Whether a callback ended the run at a checkpoint (``eval.checkpoints.stop_after``): a method that trains
        in stages runs none after it."""
        return any(getattr(cb, "stopped", None) for cb in self.callbacks)

    def trainer(self, dataset, args=None, model=None, with_callbacks: bool = True, **kwargs):
        """The one trainer path (bench.training.PreferenceTrainer) on ``dataset`` with the cell's loss; it trains
        the cell's policy and carries the cell's callbacks unless told otherwise (a detector's warm-up copy).
        Under LoRA (``train.lora``) the first trainer wraps the policy in its adapter (TRL's route) and ``policy``
        becomes that ``PeftModel``: later trainers train the same adapter, samples come from the adapted policy."""
        callbacks = [*kwargs.pop("callbacks", []), *(self.callbacks if with_callbacks else [])]
        trainer = PreferenceTrainer(model=self.policy if model is None else model,
                                    args=args if args is not None else self.args(), train_dataset=dataset,
                                    processing_class=self.tokenizer, pref_loss=self.loss,
                                    print_logs=self.train.print_logs,
                                    extra_columns=kwargs.pop("extra_columns", self.extra_columns), callbacks=callbacks,
                                    packing=self.train.packing, share_prompt=self.train.share_prompt,
                                    lora=getattr(self.train, "lora", None), **kwargs)
        if model is None:
            self.policy = trainer.model  # the same model, or (LoRA) the PeftModel around it
        return trainer


@dataclass
class TrainResult:
    """What a method hands back: the training summary and whatever it adds to the cell record."""

    training_loss: float
    global_step: int
    log_history: list[dict]
    is_main_process: bool = True  # False on the other ranks of a multi-GPU cell (rank 0 evaluates and records)
    record: dict = field(default_factory=dict)  # extra record fields (the method's own summary)
    metrics: dict[str, float] = field(default_factory=dict)
    directions: dict[str, Any] = field(default_factory=dict)  # {metric: direction} (bench.core.metrics)
    # must hold "trainer_init" and "train" (all of the method's training time); "parts": {name: seconds} of train
    timings: dict[str, Any] = field(default_factory=dict)


class Method(Plugin):
    """Base of every method (see the module docstring)."""

    kind = "method"
    Options = MethodOptions
    extra_columns: tuple[str, ...] = ()  # per-pair columns its trainers carry into batches (``pair_weight``)
    # the run may end at a checkpoint (``eval.checkpoints.stop_after``): its trainers carry the cell's callbacks, one
    # schedule spans them (``bench.methods.stages.Staged``), and it trains no stage after ``ctx.stopped()``; a method
    # that cannot say so runs to its end
    stops_early: bool = False

    @property
    def needs_scores(self) -> bool:
        """Whether it reads the scorer's per-response scores: its options say (``MethodOptions.needs_scores``); a
        method of your own may also set ``needs_scores = True`` in its class."""
        return bool(getattr(self.options, "needs_scores", False))

    def check(self, loss) -> str | None:
        """Start-up checks against the cell's loss; the label of the cell's results (None: the loss's own)."""
        return None

    def trains_as_standard(self, noise_rate: float | None) -> bool:
        """Whether, in a cell whose injector states ``noise_rate``, it trains exactly as ``method=standard`` does (a
        cleaner that names no pair): such a cell may take the results of its standard twin from that cell's record
        (``reuse_standard``, ``bench.cell.borrow``). A method that can say True gives ``standard_result`` too."""
        return False

    def standard_result(self, ds) -> tuple[dict, dict, dict]:
        """What it adds to the record of a cell where it trains as the standard method does, on the pairs ``ds``:
        (record fields, metrics, {metric: direction}), as its ``train`` would give them."""
        raise NotImplementedError(f"method {self.name!r} says it trains as the standard method, and gives no "
                                  "standard_result")

    def train(self, ctx: TrainContext) -> TrainResult:
        raise NotImplementedError
