"""Gold-reward evaluator: the embedded world knows r*(prompt, response), so quality is measured, not guessed."""
from __future__ import annotations

import numpy as np

from bench.core.metrics import COUNTER, HIGHER
from bench.core.options import ConfigError
from evaluators import EvalBatch, Evaluator


class GoldEvaluator(Evaluator):
    name = "gold"
    metrics = {
        "gold_reward": HIGHER,
        "gold_reward_ref": COUNTER,  # the reference policy's own score: the same for every cell, the curves' baseline
        "gold_gain": HIGHER,
        "gold_win_rate": HIGHER,
    }

    def check_data(self, data) -> None:
        """At start-up, before any data or model is loaded: only the embedded world knows the gold reward."""
        if data.kind != "world":
            raise ConfigError(f"evaluator=gold with data={data.name}: the gold reward exists only on data=world; valid "
                              "here: evaluator=[reward_model] (the default off the world), [llm_judge], or [] (the "
                              "core metrics only).")

    def evaluate(self, batch: EvalBatch) -> dict[str, float]:
        if batch.gold_reward is None:
            raise ValueError(
                "evaluator=gold needs a gold reward, which only data=world has; "
                "use evaluator=[reward_model] or [llm_judge] on other data"
            )
        pol = np.array([batch.gold_reward(p, r) for p, r in zip(batch.prompts, batch.policy)])
        ref = np.array([batch.gold_reward(p, r) for p, r in zip(batch.prompts, batch.reference)])
        # win rate against the reference on the same prompt; ties count half
        win = np.mean((pol > ref) + 0.5 * (pol == ref))
        return {
            "gold_reward": float(pol.mean()),
            "gold_reward_ref": float(ref.mean()),
            "gold_gain": float(pol.mean() - ref.mean()),
            "gold_win_rate": float(win),
        }
