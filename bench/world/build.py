"""Build (once) and load the embedded world: reference policy, training pairs, held-out evaluation material.

The artifact is cached under a hash of everything that determines it (world seed and sizes, model architecture,
SFT settings, the world's code version), so every cell of a sweep reuses it. Contents of the cache folder:

    reference/              tokenizer + LlamaForCausalLM (save_pretrained), the SFT reference policy
    train_pairs.jsonl       on-policy pairs on training prompts, labelled by the gold reward (ties dropped)
    eval_pairs.jsonl        clean held-out pairs on evaluation (test) prompts (implicit-reward accuracy)
    eval_samples.jsonl      evaluation prompts with the reference policy's samples and their gold rewards
    rm_pairs.jsonl          pairs on the reward-model split (disjoint from all others), for a proxy reward model
    val_pairs.jsonl         pairs on the validation split (disjoint from all others), labelled like the training
                            pairs: model selection noises them with the cell's injector and scores on them
    meta.json               sizes, build timings, reference statistics

Every split's pairs are the reference policy's own samples labelled by the gold reward; which prompts feed which
split is ``rules.split_of``. The random draws come in a fixed order (train, eval, rm, val), so adding a split at the
end never changes the ones before it. The default world ships with the code (``bench.world.prebuilt``): its key's
folder is unpacked from the repository instead of built.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.config.schema import TinyModel, WorldData
from bench.config.typed import identity_values
from bench.core.cache import get_or_build, stable_hash
from bench.core.files import read_jsonl, write_jsonl
from bench.models import sampling
from bench.world import prebuilt, pretrained, tiny_lm
from bench.world import rules as world
from bench.world import sft as sft_mod
from bench.world.pretrained import user_turn
from bench.world.rules import WORLD_CODE_VERSION


def world_key(data: WorldData, model) -> str:
    """What determines the artifact: the world's settings and the reference policy's (not their labels)."""
    return stable_hash({"v": WORLD_CODE_VERSION, "data": identity_values(data), "model": identity_values(model)})


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


def build(out: Path, data: WorldData, model_cfg) -> None:
    t0 = time.time()
    if model_cfg.kind == "tiny":
        model, tokenizer, history, timings = _reference_policy(out, data, model_cfg)
        reference, chat = out / "reference", False
    else:  # a pretrained LM as the reference policy (bench.world.pretrained)

        model, tokenizer, history, timings, reference, chat = pretrained.reference_policy(out, data, model_cfg)
    sample = _Sampler(model, tokenizer, data, chat)
    rng = np.random.default_rng([data.seed, 2])
    base = data.seed * 1000

    t = time.time()
    picked = sample.draw("train", data.n_train_prompts, rng)
    write_jsonl(out / "train_pairs.jsonl", sample.pairs(picked, base + 1, "sampling training pairs"))
    timings["train_pairs"] = time.time() - t

    t = time.time()
    eval_prompts = sample.prompts("eval")
    if data.n_eval_prompts is not None and data.n_eval_prompts < len(eval_prompts):
        keep = np.random.default_rng([data.seed, 6]).choice(len(eval_prompts), data.n_eval_prompts, replace=False)
        eval_prompts = [eval_prompts[i] for i in sorted(keep)]
    write_jsonl(out / "eval_pairs.jsonl", sample.pairs(eval_prompts, base + 2, "sampling evaluation pairs"))
    prompts_k = [p for p in eval_prompts for _ in range(data.eval_samples_per_prompt)]
    ref = sample.generate(prompts_k, base + 3, "reference samples")
    samples = [{"prompt": p, "reference": r, "gold": world.gold_reward(p, r)} for p, r in zip(prompts_k, ref)]
    write_jsonl(out / "eval_samples.jsonl", samples)
    timings["eval_material"] = time.time() - t

    t = time.time()
    picked = sample.draw("rm", data.n_rm_prompts, rng)
    write_jsonl(out / "rm_pairs.jsonl", sample.pairs(picked, base + 4, "sampling reward-model pairs"))
    timings["rm_pairs"] = time.time() - t

    t = time.time()
    picked = sample.draw("val", data.n_val_prompts, rng)
    write_jsonl(out / "val_pairs.jsonl", sample.pairs(picked, base + 5, "sampling validation pairs"))
    timings["val_pairs"] = time.time() - t

    timings["total"] = time.time() - t0
    golds = [s["gold"] for s in samples]
    meta = {
        "data": asdict(data),
        "model": asdict(model_cfg),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        # "reference" (this folder's) or a pretrained model's own folder (used as it is, no SFT)
        "reference_path": "reference" if Path(reference) == out / "reference" else str(reference),
        "chat": chat,  # prompts as user turns through the model's chat template
        "n_eval_prompts": len(eval_prompts),
        "sft_final_loss": history[-1]["loss"] if history else None,
        "reference_gold_mean": float(np.mean(golds)),
        "reference_gold_std": float(np.std(golds)),
        "timings": timings,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def _reference_policy(out: Path, data: WorldData, model_cfg: TinyModel):
    """The world's reference policy, saved to ``out/reference``: a tiny Llama with its own tokenizer, fine-tuned
    with TRL's SFTTrainer on world text of mixed quality. Returns (model, tokenizer, SFT history, timings)."""

    t0 = time.time()
    sft = model_cfg.sft
    corpus = [(p + "\n", r) for p, r in world.sft_corpus(sft.steps * sft.batch_size, data.seed)]
    tokenizer = tiny_lm.build_tokenizer([p + r for p, r in corpus], model_cfg.vocab_size)
    model = tiny_lm.build_model(tokenizer, model_cfg, data.seed)
    timings = {"tokenizer": time.time() - t0}
    t = time.time()
    history = sft_mod.sft(model, tokenizer, corpus, sft, model_cfg.max_positions, out, data.seed)
    timings["sft"] = time.time() - t
    model.save_pretrained(out / "reference")
    tokenizer.save_pretrained(out / "reference")
    return model, tokenizer, history, timings


class _Sampler:
    """The reference policy's samples on a split's prompts, and gold-labelled pairs of two samples per prompt."""

    def __init__(self, model, tokenizer, data: WorldData, chat: bool = False):
        self.model, self.tokenizer, self.data, self.chat = model, tokenizer, data, chat

    def prompts(self, split: str) -> list[str]:
        return [p.text + "\n" for p in world.prompts_for(split, self.data.seed)]

    def draw(self, split: str, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` prompts of the split, drawn with replacement (several pairs per goal, different samples)."""
        prompts = self.prompts(split)
        return [prompts[i] for i in rng.integers(len(prompts), size=n)]

    def generate(self, prompts: list[str], seed: int, desc: str) -> list[str]:

        if self.chat:  # the prompt as a user turn; the model answers as the assistant

            prompts = [self.tokenizer.apply_chat_template(user_turn(p), tokenize=False, add_generation_prompt=True)
                       for p in prompts]
        return sampling.generate(self.model, self.tokenizer, prompts, seed=seed, desc=desc,
                                 max_new_tokens=self.data.max_new_tokens, batch_size=self.data.generation_batch_size)

    def pairs(self, prompts: list[str], seed: int, desc: str) -> list[dict]:
        both = self.generate(prompts + prompts, seed, desc)
        return _labelled_pairs(prompts, both[: len(prompts)], both[len(prompts):])


@dataclass
class EmbeddedWorld:
    path: Path
    meta: dict

    @property
    def reference_path(self) -> Path:
        return self.path / self.meta.get("reference_path", "reference")  # an absolute path stays itself

    def rows(self, name: str) -> list[dict]:
        return read_jsonl(self.path / f"{name}.jsonl")


def load(data: WorldData, model, cache_root: str | Path) -> EmbeddedWorld:
    """The world of ``data`` with the reference policy of ``model`` (the tiny model, or any pretrained LM)."""
    key = world_key(data, model)
    path = get_or_build(cache_root, "world", key, lambda tmp: prebuilt.unpack(key, tmp) or build(tmp, data, model))
    return EmbeddedWorld(path, json.loads((path / "meta.json").read_text()))
