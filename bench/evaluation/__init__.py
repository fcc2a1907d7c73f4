"""Scoring a trained policy on held-out prompts: the core metrics (length, KL to the reference, implicit-reward
accuracy on clean pairs) and every configured evaluator (``evaluators/``)."""
from bench.evaluation.core import CORE_METRICS, evaluate_policy, implicit_accuracy, reference_samples, render_prompts

__all__ = ["CORE_METRICS", "evaluate_policy", "implicit_accuracy", "reference_samples", "render_prompts"]
