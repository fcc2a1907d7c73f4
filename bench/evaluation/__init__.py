"""Scoring a trained policy on held-out prompts: the core metrics (length, KL to the reference, implicit-reward
accuracy on clean pairs) and every configured evaluator (``evaluators/``).

Slim on purpose: ``bench.evaluation.scorer_config`` (what a cell's identity reads) imports no model code; the
names below come from ``bench.evaluation.core`` on first use."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CORE_METRICS", "evaluate_policy", "implicit_accuracy", "reference_samples", "render_prompts"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("bench.evaluation.core"), name)
    try:  # a submodule (``from bench.evaluation import scorer``)
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
