"""``data=world``: the embedded world (``bench.world``) as ``PreferenceData``, with its gold reward."""
from __future__ import annotations

from datasets import Dataset

from bench.data.base import PreferenceData
from bench.world import build, rules
from bench.world.pretrained import assistant_turn, user_turn

WORLD_COLUMNS = ("pair_id", "prompt", "chosen", "rejected", "gold_chosen", "gold_rejected")


def load_world(data, model, cache_root: str) -> PreferenceData:
    """The world of ``data`` (``WorldData``) with the reference policy of ``model`` (the tiny model or a pretrained
    LM), built once and cached."""

    w = build.load(data, model, cache_root)
    chat = bool(w.meta.get("chat"))  # a chat model's world: prompts are user turns, responses assistant turns
    train = _pairs(w.rows("train_pairs"), chat)
    eval_pairs = _pairs(w.rows("eval_pairs"), chat)
    val = _pairs(w.rows("val_pairs"), chat)
    samples = w.rows("eval_samples")
    prompts = [user_turn(s["prompt"]) if chat else s["prompt"] for s in samples]
    return PreferenceData(
        name="world",
        task="world",
        train=train,
        eval_pairs=eval_pairs,
        eval_prompts=prompts,
        model_path=str(w.reference_path),
        fingerprint=w.path.name,
        gold_reward=rules.gold_reward,
        world_dir=str(w.path),
        meta={"world": w.meta},
        val_pairs=val,
        val_prompts=_distinct(val["prompt"]),
    )


def _pairs(rows: list[dict], chat: bool = False) -> Dataset:
    if chat:
        rows = [{**r, "prompt": user_turn(r["prompt"]), "chosen": assistant_turn(r["chosen"]),
                 "rejected": assistant_turn(r["rejected"])} for r in rows]
    return Dataset.from_dict({c: [r[c] for r in rows] for c in WORLD_COLUMNS})


def _distinct(prompts: list) -> list:
    seen, out = set(), []
    for p in prompts:
        key = p if isinstance(p, str) else p[-1]["content"]
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
