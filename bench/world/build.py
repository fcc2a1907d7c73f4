"""Build (once) and load the embedded world: reference policy, training pairs, held-out evaluation material.

The artifact is cached under a hash of everything that determines it (world seed and sizes, model architecture,
SFT settings, the world's code version), so every cell of a sweep reuses it. Contents of the cache folder:

    reference/              tokenizer + LlamaForCausalLM (save_pretrained), the SFT reference policy
    train_pairs.jsonl       on-policy pairs on training prompts, labelled by the gold reward (ties dropped)
    eval_pairs.jsonl        clean held-out pairs on evaluation prompts (implicit-reward accuracy)
    eval_samples.jsonl      evaluation prompts with the reference policy's samples and their gold rewards
    rm_pairs.jsonl          clean pairs on the reward-model split (disjoint from both), for a proxy reward model
    meta.json               sizes, build timings, reference statistics
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.config.schema import TinyModel, WorldData
from bench.config.typed import identity_of
from bench.core.cache import get_or_build, stable_hash
from bench.core.files import read_jsonl, write_jsonl
from bench.world import rules as world

WORLD_CODE_VERSION = 3  # bump when world.py or this builder changes what they produce


def world_key(data: WorldData, model: TinyModel) -> str:
    """What determines the artifact: the world's settings and the reference policy's (not their labels)."""
    return stable_hash({"v": WORLD_CODE_VERSION, "data": identity_of(data), "model": identity_of(model)})


def _labelled_pairs(prompts: list[str], a: list[str], b: list[str], start_id: int = 0) -> list[dict]:
    """Label two samples per prompt by the gold reward: chosen = higher; ties and empty responses dropped."""
    rows = []
    for i, (p, ra, rb) in enumerate(zip(prompts, a, b)):
        if not ra or not rb:
            continue
        ga, gb = world.gold_reward(p, ra), world.gold_reward(p, rb)
        if ga == gb:
            continue
        c, r, gc, gr = (ra, rb, ga, gb) if ga > gb else (rb, ra, gb, ga)
        rows.append(
            {"pair_id": start_id + i, "prompt": p, "chosen": c, "rejected": r, "gold_chosen": gc, "gold_rejected": gr}
        )
    return rows


def build(out: Path, data: WorldData, model_cfg: TinyModel) -> None:
    from bench.models import sampling
    from bench.world import tiny_lm

    seed = data.seed
    t0 = time.time()
    timings: dict[str, float] = {}
    sft_cfg = model_cfg.sft
    corpus = [(p + "\n", r) for p, r in world.sft_corpus(sft_cfg.steps * sft_cfg.batch_size, seed)]
    tokenizer = tiny_lm.build_tokenizer([p + r for p, r in corpus], model_cfg.vocab_size)
    model = tiny_lm.build_model(tokenizer, model_cfg, seed)
    timings["tokenizer"] = time.time() - t0

    t = time.time()
    history = tiny_lm.sft(model, tokenizer, corpus, model_cfg, out, seed)
    timings["sft"] = time.time() - t
    model.save_pretrained(out / "reference")
    tokenizer.save_pretrained(out / "reference")

    rng = np.random.default_rng([seed, 2])
    gen = dict(max_new_tokens=data.max_new_tokens, batch_size=data.generation_batch_size)

    def two_samples(prompts: list[str], s: int, desc: str) -> tuple[list[str], list[str]]:
        both = sampling.generate(model, tokenizer, prompts + prompts, seed=s, desc=desc, **gen)
        return both[: len(prompts)], both[len(prompts) :]

    t = time.time()
    train_prompts = [p.text + "\n" for p in world.prompts_for("train", seed)]
    picked = [train_prompts[i] for i in rng.integers(len(train_prompts), size=data.n_train_prompts)]
    a, b = two_samples(picked, seed * 1000 + 1, "sampling training pairs")
    write_jsonl(out / "train_pairs.jsonl", _labelled_pairs(picked, a, b))
    timings["train_pairs"] = time.time() - t

    t = time.time()
    eval_prompts = [p.text + "\n" for p in world.prompts_for("eval", seed)]
    a, b = two_samples(eval_prompts, seed * 1000 + 2, "sampling evaluation pairs")
    write_jsonl(out / "eval_pairs.jsonl", _labelled_pairs(eval_prompts, a, b))
    k = data.eval_samples_per_prompt
    prompts_k = [p for p in eval_prompts for _ in range(k)]
    ref = sampling.generate(model, tokenizer, prompts_k, seed=seed * 1000 + 3, desc="reference samples", **gen)
    samples = [{"prompt": p, "reference": r, "gold": world.gold_reward(p, r)} for p, r in zip(prompts_k, ref)]
    write_jsonl(out / "eval_samples.jsonl", samples)
    timings["eval_material"] = time.time() - t

    rm_prompts = [p.text + "\n" for p in world.prompts_for("rm", seed)]
    rm_picked = [rm_prompts[i] for i in rng.integers(len(rm_prompts), size=data.n_rm_prompts)]
    t = time.time()
    a, b = two_samples(rm_picked, seed * 1000 + 4, "sampling reward-model pairs")
    write_jsonl(out / "rm_pairs.jsonl", _labelled_pairs(rm_picked, a, b))
    timings["rm_pairs"] = time.time() - t

    timings["total"] = time.time() - t0
    golds = [s["gold"] for s in samples]
    meta = {
        "data": asdict(data),
        "model": asdict(model_cfg),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "sft_final_loss": history[-1]["loss"] if history else None,
        "reference_gold_mean": float(np.mean(golds)),
        "reference_gold_std": float(np.std(golds)),
        "timings": timings,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


@dataclass
class EmbeddedWorld:
    path: Path
    meta: dict

    @property
    def reference_path(self) -> Path:
        return self.path / "reference"

    def rows(self, name: str) -> list[dict]:
        return read_jsonl(self.path / f"{name}.jsonl")


def load(data: WorldData, model: TinyModel, cache_root: str | Path) -> EmbeddedWorld:
    key = world_key(data, model)
    path = get_or_build(cache_root, "world", key, lambda tmp: build(tmp, data, model))
    return EmbeddedWorld(path, json.loads((path / "meta.json").read_text()))
