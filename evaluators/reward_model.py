"""Reward-model evaluator: score policy and reference responses with a sequence-classification reward model.

Any ``AutoModelForSequenceClassification`` with one output logit is a reward model here: a local folder or a hub
name (``path``). A (prompt, response) pair is encoded with the tokenizer's chat template when it has one (prompt
as the user turn, response as the assistant turn), else as a text pair ``tokenizer(prompt, response)`` (BERT-style
``[CLS] prompt [SEP] response [SEP]``; ``bench.rewards.model``). Metrics, all prefixed ``rm_``:

    rm_reward, rm_reward_ref   mean reward of the policy's / the reference policy's responses (higher is better;
                               the reference's own is the same for every cell: not compared)
    rm_gain                    rm_reward - rm_reward_ref (higher is better)
    rm_win_rate                policy vs reference on the same prompt, ties count half (higher is better)
    rm_gold_accuracy, rm_gold_n  data=world only: the reward model's pairwise accuracy against the gold reward on
                               the world's clean held-out pairs (eval_pairs.jsonl), and the number of pairs behind
                               it: facts about the instrument, not the policy (counters, never compared)

The reward model is a proxy, never the gold: on the world, report rm_* next to gold_* (evaluator=[gold,
reward_model]) and read rm_gold_accuracy to see how far the proxy can be trusted.

Embedded default (``path: embedded``; ``bench.rewards.embedded``): a backbone (all-MiniLM-L6-v2, offline) with a
fresh one-logit head, trained with TRL's ``RewardTrainer`` on the world's ``rm_pairs.jsonl`` (clean gold-labelled
pairs on prompts disjoint from the policy's training and evaluation prompts) or, off the world, on the data's
validation split as labelled; built once and cached, so every cell of a sweep reuses it. The model comes from the
one ``bench.rewards.load``, its recipe (``Options``, the recipe plus this evaluator's ``gold_accuracy``) from
``bench.config.schema.RewardModelRecipe`` (declared in the light ``evaluators.options``).

    python bench/run.py evaluator=[gold,reward_model]
    python bench/run.py evaluator=[reward_model] evaluator.reward_model.path=/models/my-rm data=hh

    from evaluators import get, EvalBatch
    get("reward_model", path="/models/my-rm").evaluate(EvalBatch(prompts, policy, reference))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cache import user_cache_dir
from bench.core.files import read_jsonl
from bench.core.metrics import COUNTER, HIGHER
from bench.core.options import ConfigError
from bench.rewards.load import EMBEDDED, Heldout, World, load
from evaluators import EvalBatch, Evaluator
from evaluators.options import RewardModelOptions

WHERE = "evaluator.reward_model"

METRICS = {
    "rm_reward": HIGHER,
    "rm_reward_ref": COUNTER,  # the reference policy's own score: the same for every cell
    "rm_gain": HIGHER,
    "rm_win_rate": HIGHER,
    "rm_gold_accuracy": COUNTER,  # world only: the proxy's own accuracy vs gold on clean held-out pairs
    "rm_gold_n": COUNTER,  # pairs behind rm_gold_accuracy
    # other data, path embedded: the model is trained on the data's validation split (as labelled) and measured on
    # its test pairs (as labelled): facts about the instrument, never compared
    "rm_heldout_accuracy": COUNTER,
    "rm_heldout_n": COUNTER,
    "rm_train_n": COUNTER,
}


class RewardModelEvaluator(Evaluator):
    name = "reward_model"
    metrics = METRICS

    Options = RewardModelOptions  # the recipe and gold_accuracy

    def validate(self) -> None:
        self.last_info: dict[str, Any] = {}  # where the model came from, for logs, tests and the record

    def check_data(self, data) -> None:
        """At start-up: the embedded model needs the world's pairs or, off the world, a validation split."""
        if self.path == EMBEDDED and data.kind != "world" and not float(getattr(data, "val_fraction", 0) or 0) > 0:
            raise ConfigError(f"{WHERE}.path=embedded with data={data.name} trains on the data's validation split, "
                              f"and data.val_fraction={data.val_fraction} leaves none; valid: data.val_fraction > 0, "
                              f"or {WHERE}.path=<a reward-model folder or hub name>.")

    def _reward_model(self, batch: EvalBatch):
        pairs = None
        if batch.world_dir:
            pairs = World(Path(batch.world_dir))
        elif batch.val_pairs:  # other data: trained on its validation split as labelled
            pairs = Heldout(batch.val_pairs, batch.test_pairs)
        loaded = load(self.options, WHERE, batch.cache_root or user_cache_dir(), pairs)
        if loaded.folder is None:
            self.last_info = {"path": self.path}
        else:
            self.last_info = {"path": str(loaded.folder / "model"), "cache_folder": str(loaded.folder),
                              "meta": loaded.meta}
        return loaded.model, loaded.meta

    def evaluate(self, batch: EvalBatch) -> dict[str, float]:
        n = len(batch.prompts)
        if len(batch.policy) != n or len(batch.reference) != n:
            raise ValueError(f"reward_model: {n} prompts, {len(batch.policy)} policy and {len(batch.reference)} "
                             "reference responses; they must be aligned")
        rm, meta = self._reward_model(batch)
        both = rm.score(batch.prompts + batch.prompts, batch.policy + batch.reference)  # one pass, deduplicated
        pol, ref = both[:n], both[n:]
        nan = float("nan")
        out = {
            "rm_reward": float(pol.mean()) if n else nan,
            "rm_reward_ref": float(ref.mean()) if n else nan,
            "rm_gain": float(pol.mean() - ref.mean()) if n else nan,
            "rm_win_rate": float(np.mean((pol > ref) + 0.5 * (pol == ref))) if n else nan,
        }
        if meta is not None and "gold_accuracy" in meta:  # the embedded model: measured once, at build time
            out["rm_gold_accuracy"] = float(meta["gold_accuracy"])
            out["rm_gold_n"] = float(meta["gold_n"])
        elif meta is not None:  # trained on another data set's validation split: its accuracy on the test pairs
            out["rm_heldout_accuracy"] = float(meta["heldout_accuracy"])
            out["rm_heldout_n"] = float(meta["heldout_n"])
            out["rm_train_n"] = float(meta["n_train_pairs"])
        elif self.gold_accuracy and batch.world_dir:
            pairs_file = Path(batch.world_dir) / "eval_pairs.jsonl"
            rows = read_jsonl(pairs_file) if pairs_file.exists() else []
            out["rm_gold_accuracy"] = rm.pairwise_accuracy(rows)
            out["rm_gold_n"] = float(len(rows))
        self.last_scores = {"policy": pol, "reference": ref}
        return out
