"""The embedded reward model: a backbone (``bench.rewards.backbones``, by default all-MiniLM-L6-v2) with a fresh
one-logit head, trained with TRL's ``RewardTrainer`` (Bradley-Terry loss) and cached, keyed by everything that
determines it, so every cell of a sweep reuses it. What it trains on is the caller's (``bench.rewards.load``):

- ``World``: the embedded world's clean gold-labelled ``rm_pairs.jsonl`` (prompts disjoint from the policy's
  training and evaluation prompts), or that split with some labels swapped (the noisy proxy); its meta holds its
  held-out accuracy against the gold reward on ``eval_pairs.jsonl``;
- ``Heldout``: off the world, a data set's validation pairs as labelled, measured on its test pairs;
- ``Given``: pairs of the caller's under the caller's key (a reward-model ensemble's bootstrap resamples).

Measured on a 2-core CPU, 1 thread: the default (40 steps x 8 pairs, embeddings frozen) trains in ~40 s on a quiet
host (~80 s under load), ~50 s for the whole build, and reached 0.66-0.71 held-out accuracy against gold on default
worlds (~550 rm_pairs, ~270 eval_pairs); scoring a cell's ~1150 responses takes ~15 s. A tiny world whose reference
policy yields fewer than 8 rm_pairs (experiment=smoke) is an error, not a silently useless proxy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.config.schema import EMBEDDED, RewardModelRecipe  # noqa: F401  (EMBEDDED: part of this API)
from bench.core.cache import get_or_build, stable_hash
from bench.core.files import read_jsonl
from bench.core.options import ConfigError
from bench.models.callbacks import quiet
from bench.rewards.backbones import KIND as BACKBONES
from bench.rewards.model import PairCollator, RewardModel

log = logging.getLogger(__name__)

RM_CODE_VERSION = 1  # bump when the embedded reward model's training or encoding changes what it produces
MIN_TRAIN_PAIRS = 8


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "absent"


def world_key(world_dir: Path, recipe: RewardModelRecipe) -> str:
    """The clean world model's cache key (a noised split's key adds its flip mask)."""
    return stable_hash({
        "v": RM_CODE_VERSION,
        "base": BACKBONES.get(recipe.backbone).key(),
        "world": world_dir.name,
        "rm_pairs": _file_digest(world_dir / "rm_pairs.jsonl"),
        "eval_pairs": _file_digest(world_dir / "eval_pairs.jsonl"),
        "train": recipe.train.values(),
        "max_length": recipe.max_length,
    })


def _train_dataset(rm: RewardModel, rows: list[dict]):
    from datasets import Dataset

    data = []
    for r in rows:
        c, j = rm.encode(r["prompt"], r["chosen"]), rm.encode(r["prompt"], r["rejected"])
        ex = {"chosen_ids": c["input_ids"], "rejected_ids": j["input_ids"]}
        if "token_type_ids" in c:
            ex["chosen_token_type_ids"], ex["rejected_token_type_ids"] = c["token_type_ids"], j["token_type_ids"]
        data.append(ex)
    return Dataset.from_list(data)


def training_rows(world_dir: Path, recipe: RewardModelRecipe, where: str) -> list[dict]:
    """The clean rm_pairs the model trains on: those whose gold margin is at least ``train.min_margin`` (0: all
    of them, since the world drops ties), at least ``MIN_TRAIN_PAIRS`` of them."""
    all_rows = read_jsonl(world_dir / "rm_pairs.jsonl")
    margin = float(recipe.train.min_margin)
    rows = [r for r in all_rows if r["gold_chosen"] - r["gold_rejected"] >= margin - 1e-9]
    if len(rows) < MIN_TRAIN_PAIRS:
        kept = f" ({len(rows)} with gold margin >= train.min_margin={margin})" if margin > 0 else ""
        raise ConfigError(
            f"{where}.path=embedded: {world_dir / 'rm_pairs.jsonl'} holds {len(all_rows)} pairs{kept}, fewer than "
            f"{MIN_TRAIN_PAIRS} to train a reward model on (a tiny world, or a reference policy whose samples tie). "
            f"Raise data.n_rm_prompts / model.sft.steps, or give {where}.path a trained reward model")
    return rows


def _reward_config(out: Path, train, device: str):
    from trl import RewardConfig

    return RewardConfig(
        output_dir=str(out / "trainer"),
        max_steps=int(train.max_steps) if int(train.max_steps) > 0 else -1,
        num_train_epochs=float(train.epochs),
        per_device_train_batch_size=int(train.batch_size),
        learning_rate=float(train.learning_rate),
        warmup_steps=float(train.warmup_steps),
        weight_decay=float(train.weight_decay),
        max_grad_norm=float(train.max_grad_norm),
        lr_scheduler_type="linear",
        seed=int(train.seed),
        data_seed=int(train.seed),
        bf16=False,  # no bf16 instructions on these CPUs (~10x slower); fp32 everywhere keeps CPU and GPU alike
        fp16=False,
        activation_checkpointing=False,  # TRL turns it on by default: slower, not needed for 22.7M parameters
        use_cpu=device == "cpu",
        max_length=None,  # encode() already truncated; TRL would drop longer pairs instead
        remove_unused_columns=False,  # keep token_type_ids for PairCollator
        dataloader_num_workers=0,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
    )


def fit(out: Path, rows: list[dict], recipe: RewardModelRecipe, device: str):
    """The recipe's backbone + a fresh head trained with TRL's RewardTrainer on ``rows`` (prompt/chosen/rejected
    text), saved to ``out/model``; returns the loaded RewardModel and what the training did (steps, loss, history,
    seconds)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardTrainer

    backbone, train = BACKBONES.get(recipe.backbone), recipe.train
    folder = backbone.folder()
    torch.manual_seed(int(train.seed))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    rm = RewardModel(model, tokenizer, max_length=recipe.max_length, use_chat_template="auto")
    if train.freeze_embeddings:
        for p in backbone.embeddings(model):
            p.requires_grad_(False)
    trainer = quiet(RewardTrainer(model=model, args=_reward_config(out, train, device),
                                  train_dataset=_train_dataset(rm, rows), processing_class=tokenizer,
                                  data_collator=PairCollator(tokenizer.pad_token_id)), "reward model")
    t1 = time.time()
    result = trainer.train()
    train_s = time.time() - t1
    model.eval()
    shutil.rmtree(out / "trainer", ignore_errors=True)
    for p in model.parameters():  # saved frozen or not, the folder is a plain reward model
        p.requires_grad_(True)
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")
    history = [h for h in trainer.state.log_history if "loss" in h]
    return rm, {"train_steps": int(trainer.state.global_step), "train_loss": float(result.training_loss),
                "train_accuracy_last_log": history[-1].get("accuracy") if history else None,  # on training batches
                "history": history, "train_s": train_s}


# ------------------------------------------------------------------------------------------------ what it trains on
@dataclass
class World:
    """The embedded world's reward-model split: clean, or with the labels of the pairs ``flips`` names swapped (one
    bool per row of ``training_rows``: a proxy that saw noisy labels, as a practitioner's would). The cache key holds
    the flip mask itself, so every injector configuration with the same mask shares one model (a rate-0 mask is the
    clean model's). ``labels`` says where the flips came from, for the meta. Its held-out accuracy against the gold
    reward is measured on ``eval_pairs.jsonl`` (prompts disjoint from its training prompts)."""

    world_dir: Path
    flips: list[bool] | None = None
    labels: dict | None = None

    def ensure(self, cache_root, recipe: RewardModelRecipe, device: str, where: str) -> Path:
        world_dir = Path(self.world_dir)
        if not (world_dir / "rm_pairs.jsonl").exists():
            raise FileNotFoundError(f"{where}.path=embedded: {world_dir} has no rm_pairs.jsonl (not an "
                                    "embedded-world artifact)")
        key, rows = world_key(world_dir, recipe), None
        if self.flips is not None and any(self.flips):
            rows = training_rows(world_dir, recipe, where)
            if len(self.flips) != len(rows):
                raise ValueError(f"{len(self.flips)} flips for {len(rows)} reward-model training pairs")
            rows = [_swapped(r) if f else r for r, f in zip(rows, self.flips)]
            key = stable_hash({"clean": key, "flips": "".join("1" if f else "0" for f in self.flips)})

        def build(tmp: Path) -> None:
            train_world(tmp, world_dir, recipe, device, where, rows=rows, labels=self.labels if rows else None)

        return get_or_build(cache_root, "reward_model", key, build)


@dataclass
class Heldout:
    """Off the world: a data set's validation pairs as labelled (prompts disjoint from training and test), measured
    on its test pairs as labelled; cached by the pairs and the recipe. Its meta says so (``trained_on``), so the
    record never passes it off as a gold-labelled model."""

    train_rows: list[dict]
    test_rows: list[dict]

    def ensure(self, cache_root, recipe: RewardModelRecipe, device: str, where: str) -> Path:
        if len(self.train_rows) < MIN_TRAIN_PAIRS:
            raise ConfigError(f"{where}.path=embedded: the validation split holds {len(self.train_rows)} pairs, "
                              f"fewer than {MIN_TRAIN_PAIRS} to train a reward model on; raise data.val_fraction or "
                              f"give {where}.path a trained reward model")
        backbone = BACKBONES.get(recipe.backbone)
        key = stable_hash({"v": RM_CODE_VERSION, "base": backbone.key(), "rows": self.train_rows,
                           "test": self.test_rows, "train": recipe.train.values(), "max_length": recipe.max_length})

        def build(tmp: Path) -> None:
            t0 = time.time()
            rm, fitted = fit(tmp, self.train_rows, recipe, device)
            meta = {"base": backbone.describe(),
                    "trained_on": "the data's validation split, as labelled (prompts disjoint from training and test)",
                    "train": recipe.train.values(), "max_length": recipe.max_length,
                    "n_train_pairs": len(self.train_rows), **{k: v for k, v in fitted.items() if k != "train_s"},
                    "heldout_accuracy": rm.pairwise_accuracy(self.test_rows) if self.test_rows else float("nan"),
                    "heldout_n": len(self.test_rows), "timings": {"train": fitted["train_s"], "total": time.time() - t0}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

        return get_or_build(cache_root, "reward_model_heldout", key, build)


@dataclass
class Given:
    """Pairs of the caller's, cached under the caller's ``key`` in ``namespace`` (a reward-model ensemble's bootstrap
    resamples: ``bench.methods.ensemble``)."""

    rows: list[dict]
    key: str
    namespace: str = "rm_ensemble"

    def ensure(self, cache_root, recipe: RewardModelRecipe, device: str, where: str) -> Path:
        def build(tmp: Path) -> None:
            _, fitted = fit(tmp, self.rows, recipe, device)
            (tmp / "meta.json").write_text(json.dumps({k: v for k, v in fitted.items() if k != "history"}))

        return get_or_build(cache_root, self.namespace, self.key, build)


def train_world(out: Path, world_dir: Path, recipe: RewardModelRecipe, device: str, where: str,
                rows: list[dict] | None = None, labels: dict | None = None) -> dict:
    """Train the world's reward model into ``out/model``; returns its meta (also in ``out/meta.json``). ``rows``
    are its training pairs (default: the clean rm_pairs, ``training_rows``); ``labels`` says where their labels
    came from (``{"noise": ..., "realized_rate": ...}`` for a noised split)."""
    t0 = time.time()
    rows = training_rows(world_dir, recipe, where) if rows is None else rows
    eval_rows = read_jsonl(world_dir / "eval_pairs.jsonl") if (world_dir / "eval_pairs.jsonl").exists() else []
    rm, fitted = fit(out, rows, recipe, device)
    t2 = time.time()
    gold_acc = rm.pairwise_accuracy(eval_rows)
    meta = {
        "base": BACKBONES.get(recipe.backbone).describe(),
        "world_dir": str(world_dir), "train": recipe.train.values(), "max_length": recipe.max_length,
        "device": device, "labels": labels or {"noise": None},
        "n_rm_pairs": sum(1 for _ in open(world_dir / "rm_pairs.jsonl")), "n_train_pairs": len(rows),
        "n_eval_pairs": len(eval_rows),
        **{k: v for k, v in fitted.items() if k != "train_s"},
        "gold_accuracy": gold_acc,  # held-out pairwise accuracy against the gold reward
        "gold_n": len(eval_rows),
        "timings": {"train": fitted["train_s"], "measure": time.time() - t2, "total": time.time() - t0},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log.info("embedded reward model: %d steps in %.1fs, held-out accuracy vs gold %.3f on %d pairs",
             meta["train_steps"], fitted["train_s"], gold_acc, len(eval_rows))
    return meta


def _swapped(row: dict) -> dict:
    out = dict(row)
    for a, b in (("chosen", "rejected"), ("gold_chosen", "gold_rejected")):
        out[a], out[b] = row[b], row[a]
    return out
