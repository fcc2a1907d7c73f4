"""Evaluators: score a trained policy's responses on held-out prompts.

An evaluator is a plug-in like every other (``bench.config.plugin``): a subclass of ``Evaluator`` with a ``name``,
its options (``Options``), ``metrics`` (``{metric name: direction}`` for every metric it reports, direction one of
``True`` (higher is better), ``False`` (lower), ``None`` (no direction) or ``"counter"`` (bookkeeping, never
compared); ``bench.core.metrics``) and ``evaluate(batch: EvalBatch) -> dict[str, float]``; optionally
``check_data(data)`` (what it needs of the data, at start-up) and ``per_checkpoint = False`` (scored at the end only).

``evaluators.get(name, **options)`` builds a registered one with its values from ``conf/evaluator/<name>.yaml``
(as composed) overridden by ``options``; ``evaluators.from_config(node, where="evaluator.<key>")`` builds a registered
one or a user's own (``_target_``) from a config node and checks it against the contract.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.config.plugin import Kind, Plugin
from bench.core.metrics import DIRECTIONS

__all__ = ["KIND", "EvalBatch", "Evaluator", "from_config", "get", "names"]


@dataclass
class EvalBatch:
    """Everything an evaluator may look at for one cell. Lists are aligned: one entry per evaluation sample."""

    prompts: list[str]
    policy: list[str]  # the trained policy's response to prompts[i]
    reference: list[str]  # the reference (SFT) policy's response to the same prompt
    task: str = "general"  # "world" for the embedded world, "general" otherwise (picks judge templates)
    gold_reward: Callable[[str, str], float] | None = None  # the embedded world's r*(prompt, response), if known
    world_dir: str | None = None  # the embedded world's folder: its reward-model split and clean held-out pairs
    cache_root: str | None = None  # the shared artifact cache (where an embedded reward model is kept)
    val_pairs: list[dict] = field(default_factory=list)  # off the world: validation pairs as text (a reward model's)
    test_pairs: list[dict] = field(default_factory=list)  # off the world: the test pairs as text


class Evaluator(Plugin):
    """Base of every evaluator (see the module docstring)."""

    kind = "evaluator"
    metrics: ClassVar[dict[str, Any]] = {}
    per_checkpoint: ClassVar[bool] = True  # False: scored at the end of training only (an LLM judge's calls cost)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        bad = {m: d for m, d in dict(cls.metrics).items() if not any(d is x or d == x for x in DIRECTIONS)}
        if bad:
            raise TypeError(f"{cls.__qualname__}: metric direction(s) {bad}; valid: True, False, None or 'counter'.")

    @classmethod
    def option_head(cls) -> str:
        return f"evaluator.{cls.name}"

    def check_data(self, data) -> None:
        """At start-up, before any data or model is loaded: what the evaluator needs of the data (``data``: the
        typed ``data`` config)."""

    def evaluate(self, batch: EvalBatch) -> dict[str, float]:
        raise NotImplementedError


KIND = Kind("evaluator", Evaluator, {
    "gold": "evaluators.gold:GoldEvaluator",
    "llm_judge": "evaluators.llm_judge:LLMJudge",
    # its module loads torch: its options are named apart (evaluators.options), for a cell's identity
    "reward_model": ("evaluators.reward_model:RewardModelEvaluator", "evaluators.options:RewardModelOptions"),
}, required=("name", "metrics", "evaluate()"))

get, names, from_config = KIND.get, KIND.names, KIND.from_config
