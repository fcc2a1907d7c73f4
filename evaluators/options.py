"""What an evaluator whose module is heavy declares, apart from how it scores: the reward-model evaluator's options
(its module loads torch and transformers), so a cell's identity reads them without importing either (issue 24).
``RewardModelEvaluator`` says ``Options = RewardModelOptions``: they are declared once, here. The light evaluators
(``gold``, ``llm_judge``) declare theirs in their own class.

Light by contract: this module imports only ``bench.core`` and ``bench.config``.
"""
from __future__ import annotations

from bench.config.schema import RewardModelRecipe
from bench.core.options import option

__all__ = ["RewardModelOptions"]


class RewardModelOptions(RewardModelRecipe):
    """``evaluator.reward_model``: the reward model's recipe (``bench.config.schema.RewardModelRecipe``: what of it
    counts for a cell's identity) and this evaluator's own ``gold_accuracy``."""

    gold_accuracy: bool = option("a non-embedded model on the world: also measure its accuracy against gold on "
                                 "eval_pairs (it adds rm_gold_accuracy: part of the evaluator's result)")
