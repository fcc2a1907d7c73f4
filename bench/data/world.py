"""``data=world``: the embedded world (``bench.world``) as ``PreferenceData``, with its gold reward."""
from __future__ import annotations

from datasets import Dataset

from bench.data.base import PreferenceData
from bench.world import rules

WORLD_COLUMNS = ("pair_id", "prompt", "chosen", "rejected", "gold_chosen", "gold_rejected")


def load_world(data, model, cache_root: str) -> PreferenceData:
    """The world of ``data`` (``WorldData``) with the reference policy of ``model``, built once and cached."""
    from bench.world import build

    if model.kind != "tiny":
        raise ValueError(
            f"data=world trains its own reference policy and needs model=tiny (got model={model.name!r}); "
            "use data=hf with a real model"
        )
    w = build.load(data, model, cache_root)
    train = _pairs(w.rows("train_pairs"))
    eval_pairs = _pairs(w.rows("eval_pairs"))
    val = _pairs(w.rows("val_pairs"))
    samples = w.rows("eval_samples")
    return PreferenceData(
        name="world",
        task="world",
        train=train,
        eval_pairs=eval_pairs,
        eval_prompts=[s["prompt"] for s in samples],
        model_path=str(w.reference_path),
        fingerprint=w.path.name,
        gold_reward=rules.gold_reward,
        meta={"world": w.meta, "world_dir": str(w.path)},
        val_pairs=val,
        val_prompts=list(dict.fromkeys(val["prompt"])),
    )


def _pairs(rows: list[dict]) -> Dataset:
    return Dataset.from_dict({c: [r[c] for r in rows] for c in WORLD_COLUMNS})
