"""The embedded world on any causal LM (``data=world model=smollm2_135m`` or ``model=local``): the reference
policy is the pretrained model, optionally after ``model.sft.steps`` of supervised fine-tuning on world text (the
world's sentences, of mixed quality, as the tiny model learns them), and every split's pairs are its own samples
labelled by the same gold reward. A model whose tokenizer has a chat template sees every prompt as a user turn and
answers as the assistant (the SFT, the world's samples, training and evaluation alike); the world's files keep
plain text, and ``bench.data.world`` hands the cell conversational pairs (``meta["chat"]``).
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.models import load_causal_lm
from bench.models.devices import pick_device
from bench.models.load import resolve_model_path
from bench.world import rules as world
from bench.world import sft as sft_mod


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def user_turn(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt.strip()}]


def assistant_turn(response: str) -> list[dict]:
    return [{"role": "assistant", "content": response}]


def reference_policy(out: Path, data, model_cfg):
    """(model, tokenizer, SFT history, timings, reference folder, chat) for a pretrained model on the world; the
    fine-tuned policy is saved to ``out/reference``, an untouched one is used from its own folder."""

    t0 = time.time()
    path = resolve_model_path(model_cfg)
    model, tokenizer = load_causal_lm(path, pick_device("auto"))
    chat = has_chat_template(tokenizer)
    timings = {"load": time.time() - t0}
    settings = model_cfg.sft
    if settings.steps == 0:
        return model, tokenizer, [], timings, Path(path), chat
    corpus = world.sft_corpus(settings.steps * settings.batch_size, data.seed)
    pairs = [(user_turn(p), assistant_turn(r)) if chat else (p + "\n", r) for p, r in corpus]
    t = time.time()
    history = sft_mod.sft(model, tokenizer, pairs, settings, 256, out, data.seed)
    timings["sft"] = time.time() - t
    model.save_pretrained(out / "reference")
    tokenizer.save_pretrained(out / "reference")
    return model, tokenizer, history, timings, out / "reference", chat
