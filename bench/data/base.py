"""What a cell gets from any data source: ``PreferenceData`` (training pairs, clean held-out pairs, evaluation
prompts, the reference policy, and the gold reward where one is known), and the checks every source passes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from datasets import Dataset

from bench.core.options import ConfigError
from bench.core.text import completion_text, prompt_text, text_of

REQUIRED = ("prompt", "chosen", "rejected")


class DataError(ConfigError):
    """The data a config points at cannot be read or has the wrong shape: one line naming the field (and the file
    and line, or the column and row) and what is valid. A single run ends with it like a config error (exit 2)."""


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
    world_dir: str | None = None  # the embedded world's folder (its reward-model split, its held-out pairs)
    meta: dict = field(default_factory=dict)
    # the validation split: prompts disjoint from training and evaluation, pairs labelled like the training pairs
    # (clean here: a tuning cell noises them with its injector and its own mask); None where the source has none
    val_pairs: Dataset | None = None
    val_prompts: list = field(default_factory=list)  # distinct validation prompts, for sampling the policy


def validate(ds: Dataset, where: str) -> None:
    """Clear errors for missing columns and empty responses, naming the field and the row."""
    missing = [c for c in REQUIRED if c not in ds.column_names]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {missing}; have {ds.column_names}. Map names with data.columns "
            "(e.g. data.columns.chosen=response_a)."
        )
    if len(ds) == 0:
        raise DataError(f"{where}: no preference pairs")
    for col in ("chosen", "rejected"):
        for i, v in enumerate(ds[col]):
            if not text_of(v or []).strip():
                raise DataError(f"{where}: empty response in column {col!r} at row {i}")


def text_rows(pairs: Dataset | None) -> list[dict]:
    """``[{prompt, chosen, rejected}]`` as plain text (conversations rendered as text), for reward models."""
    if pairs is None or len(pairs) == 0:
        return []
    return [{"prompt": prompt_text(p), "chosen": completion_text(c), "rejected": completion_text(r)}
            for p, c, r in zip(pairs["prompt"], pairs["chosen"], pairs["rejected"])]
