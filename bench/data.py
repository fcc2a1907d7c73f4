"""Preference data for one cell: the embedded world (``data=world``) or any dataset (``data=hf``).

Whatever the source, a cell gets a ``PreferenceData``: training pairs with ``prompt``/``chosen``/``rejected``
columns (TRL's plain or conversational form), clean held-out pairs, the evaluation prompts, and, for the world,
the gold reward and the reference policy's cached evaluation samples.

``data=hf`` reads a dataset by hub name or local path (JSONL/JSON or Parquet), with column names mapped in config.
Conversational rows (lists of ``{"role", "content"}`` messages, as in UltraFeedback-binarized) are split into a
prompt (the shared leading messages) and the two completions; plain rows without a prompt column (Anthropic HH
style transcripts) get their prompt extracted with TRL's ``extract_prompt``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from datasets import Dataset

from bench import world
from bench.cache import stable_hash

REQUIRED = ("prompt", "chosen", "rejected")


@dataclass
class PreferenceData:
    name: str
    task: str  # "world" or "general": picks judge templates
    train: Dataset
    eval_pairs: Dataset | None
    eval_prompts: list  # one entry per evaluation sample (strings, or message lists for conversational data)
    model_path: str  # the reference policy: the trained policy starts from it
    fingerprint: str  # what determines the training data (for cache keys)
    gold_reward: Callable[[str, str], float] | None = None
    meta: dict = field(default_factory=dict)


def validate(ds: Dataset, where: str) -> None:
    """Clear errors for missing columns and empty responses, naming the field and the row."""
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; have {ds.column_names}. Map names with data.columns "
            "(e.g. data.columns.chosen=response_a)."
        )
    if len(ds) == 0:
        raise ValueError(f"{where}: no preference pairs")
    for col in ("chosen", "rejected"):
        for i, v in enumerate(ds[col]):
            text = v if isinstance(v, str) else " ".join(str(m.get("content", "")) for m in v or [])
            if not text.strip():
                raise ValueError(f"{where}: empty response in column {col!r} at row {i}")


# ------------------------------------------------------------------------------------------ embedded world
def load_world(data_cfg: dict, model_cfg: dict, cache_root: str) -> PreferenceData:
    from bench import embedded

    if model_cfg.get("kind") != "tiny":
        raise ValueError(
            f"data=world trains its own reference policy and needs model=tiny (got model={model_cfg.get('name')!r}); "
            "use data=hf with a real model"
        )
    w = embedded.load(data_cfg, model_cfg, cache_root)
    cols = ("pair_id", "prompt", "chosen", "rejected", "gold_chosen", "gold_rejected")
    train_rows = w.rows("train_pairs")
    train = Dataset.from_dict({c: [r[c] for r in train_rows] for c in cols})
    eval_rows = w.rows("eval_pairs")
    eval_pairs = Dataset.from_dict({c: [r[c] for r in eval_rows] for c in cols})
    samples = w.rows("eval_samples")
    return PreferenceData(
        name="world",
        task="world",
        train=train,
        eval_pairs=eval_pairs,
        eval_prompts=[s["prompt"] for s in samples],
        model_path=str(w.reference_path),
        fingerprint=w.path.name,
        gold_reward=world.gold_reward,
        meta={"world": w.meta, "world_dir": str(w.path)},
    )


# ------------------------------------------------------------------------------------------ any dataset
def _read(path: str, split: str) -> Dataset:
    from datasets import load_dataset

    p = Path(path)
    if p.suffix in (".jsonl", ".json"):
        return load_dataset("json", data_files=str(p), split="train")
    if p.suffix == ".parquet":
        return load_dataset("parquet", data_files=str(p), split="train")
    if p.exists():
        raise ValueError(f"data.path={path!r}: unsupported file type {p.suffix!r}; valid: .jsonl, .json, .parquet")
    try:  # a hub name: works where the hub is reachable or the dataset is in the local HF cache
        return load_dataset(path, split=split)
    except Exception as e:  # noqa: BLE001 - re-raised with the field named
        raise ValueError(f"data.path={path!r}: not a local file and could not be loaded from the hub ({e})") from e


def _split_conversation(chosen: list, rejected: list) -> tuple[list, list, list]:
    """Shared leading messages are the prompt; the rest of each conversation is its completion."""
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return chosen[:n], chosen[n:], rejected[n:]


def to_preference_form(ds: Dataset, columns: dict) -> Dataset:
    rename = {v: k for k, v in columns.items() if v and v != k and v in ds.column_names}
    ds = ds.rename_columns(rename) if rename else ds
    for col in ("chosen", "rejected"):
        if col not in ds.column_names:
            raise ValueError(
                f"data: missing column {col!r} (mapped from data.columns.{col}={columns.get(col)!r}); "
                f"have {ds.column_names}"
            )
    first = ds[0]
    conversational = isinstance(first["chosen"], list)
    if conversational:

        def split(row):
            prompt, c, r = _split_conversation(row["chosen"], row["rejected"])
            if "prompt" in row and isinstance(row["prompt"], list) and row["prompt"]:
                prompt = row["prompt"]
            elif "prompt" in row and isinstance(row["prompt"], str) and not prompt:
                prompt = [{"role": "user", "content": row["prompt"]}]
            return {"prompt": prompt, "chosen": c, "rejected": r}

        return ds.map(split, remove_columns=[c for c in ds.column_names if c not in REQUIRED + ("annotator",)])
    if "prompt" not in ds.column_names:
        from trl.data_utils import extract_prompt

        ds = ds.map(extract_prompt)
    return ds.select_columns([c for c in ds.column_names if c in REQUIRED + ("annotator",)])


def prompt_text(prompt) -> str:
    """A prompt as plain text (the last user turn of a conversation), for evaluators and judges."""
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else str(prompt[-1]["content"])


def load_hf(data_cfg: dict, model_cfg: dict) -> PreferenceData:
    ds = to_preference_form(_read(data_cfg["path"], data_cfg.get("split", "train")), dict(data_cfg.get("columns") or {}))
    validate(ds, f"data.path={data_cfg['path']}")
    if data_cfg.get("max_pairs"):
        ds = ds.select(range(min(len(ds), int(data_cfg["max_pairs"]))))
    # hold out whole prompts (not rows) for evaluation, deterministically by a hash of the prompt
    frac = float(data_cfg.get("eval_fraction", 0.1))
    is_eval = [int(stable_hash(str(p), 8), 16) / 16**8 < frac for p in ds["prompt"]]
    train = ds.select([i for i, e in enumerate(is_eval) if not e])
    eval_pairs = ds.select([i for i, e in enumerate(is_eval) if e])
    if len(train) == 0 or len(eval_pairs) == 0:
        raise ValueError(f"data.eval_fraction={frac} leaves an empty train or eval split ({len(ds)} pairs)")
    train = train.add_column("pair_id", list(range(len(train))))
    k = int(data_cfg.get("eval_samples_per_prompt", 1))
    prompts = list({stable_hash(p): p for p in eval_pairs["prompt"]}.values())[: data_cfg.get("max_eval_prompts")]
    from bench.models import resolve_model_path

    return PreferenceData(
        name=data_cfg.get("name", "hf"),
        task="general",
        train=train,
        eval_pairs=eval_pairs,
        eval_prompts=[p for p in prompts for _ in range(k)],
        model_path=resolve_model_path(model_cfg, data_cfg.get("cache_dir")),
        fingerprint=stable_hash([data_cfg.get("path"), train._fingerprint, len(train)]),
    )


def load(data_cfg: dict, model_cfg: dict, cache_root: str) -> PreferenceData:
    kind = data_cfg.get("kind")
    if kind == "world":
        return load_world(data_cfg, model_cfg, cache_root)
    if kind == "hf":
        return load_hf(data_cfg, {**model_cfg, "cache_root": cache_root})
    raise ValueError(f"data.kind={kind!r}; valid choices: world, hf")
