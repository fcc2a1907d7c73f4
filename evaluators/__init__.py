"""Evaluators: score a trained policy's responses on held-out prompts.

Contract: ``evaluators.get(name, **options)`` returns an object with
- ``name``: str
- ``metrics``: ``{metric name: higher_is_better}`` for every metric it reports (lm-eval-harness style), and
- ``evaluate(batch: EvalBatch) -> dict[str, float]``.
Defaults come from ``conf/evaluator/<name>.yaml``; keyword options override them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from bench.registry import Registry

REGISTRY: Registry = Registry("evaluator", "evaluator")


@dataclass
class EvalBatch:
    """Everything an evaluator may look at for one cell. Lists are aligned: one entry per evaluation sample."""

    prompts: list[str]
    policy: list[str]  # the trained policy's response to prompts[i]
    reference: list[str]  # the reference (SFT) policy's response to the same prompt
    task: str = "general"  # "world" for the embedded world, "general" otherwise (picks judge templates)
    gold_reward: Callable[[str, str], float] | None = None  # the embedded world's r*(prompt, response), if known
    extra: dict = field(default_factory=dict)


class Evaluator(Protocol):
    name: str
    metrics: dict[str, bool]

    def evaluate(self, batch: EvalBatch) -> dict[str, float]: ...


def get(name: str, **options) -> Evaluator:
    factory = REGISTRY.lookup(name)
    return factory(**{**REGISTRY.defaults(name), **options})


def _register_builtins() -> None:
    # imported for their registration side effect; lazy-heavy modules import their heavy deps inside functions
    import importlib

    for mod in ("gold", "llm_judge", "reward_model"):
        try:
            importlib.import_module(f"evaluators.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"evaluators.{mod}":
                raise


_register_builtins()
