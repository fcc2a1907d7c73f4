"""Helpers for the reward-model tests (imported by tests/test_reward_model.py; kept out of conftest.py).

- ``save_tiny_bert_rm``: a randomly initialised 2-layer ``BertForSequenceClassification`` (one logit) with the
  all-MiniLM-L6-v2 tokenizer (no chat template: the text-pair path), saved to a folder. Sub-second.
- ``save_tiny_llama_rm``: a randomly initialised ``LlamaForSequenceClassification`` with a byte-level BPE
  tokenizer trained here on world text and given a chat template (the chat-template path, decoder-style reward
  read at the last non-pad token). About a second.
- ``write_world_pairs``: a stand-in embedded-world folder holding only what the embedded reward model reads,
  ``rm_pairs.jsonl`` and ``eval_pairs.jsonl``, made of clean gold-labelled world pairs drawn directly from
  ``bench.world`` (``prompts_for("rm")`` for training, ``prompts_for("eval")`` for held-out evaluation: the same
  disjoint splits the real artifact uses). The smoke world's reference policy is too untrained to yield pairs
  (its rm_pairs.jsonl is empty), so this is what gives the "beats chance" test something to learn, in seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def save_tiny_bert_rm(folder: Path, seed: int = 0, num_labels: int = 1) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from bench.rewards.backbones import KIND as BACKBONES

    tokenizer = AutoTokenizer.from_pretrained(BACKBONES.get("minilm").folder())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_llama_rm(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from bench.world import rules as world
    from bench.world import tiny_lm

    texts = [p + "\n" + r for p, r in world.sft_corpus(300, seed)] + ["<|user|><|assistant|>"]
    tokenizer = tiny_lm.build_tokenizer(texts, 400)
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def world_pairs(split: str, n: int, seed: int) -> list[dict]:
    """Up to n clean pairs on the world's ``split`` prompts: two sampled responses, chosen = higher gold reward."""
    from bench.world import rules as world
    from bench.world.build import _labelled_pairs

    rng = np.random.default_rng([seed, 7])
    prompts = world.prompts_for(split)
    picked = [prompts[i] for i in rng.permutation(len(prompts))[:n]]
    a = [world.sample_response(p, rng) for p in picked]
    b = [world.sample_response(p, rng) for p in picked]
    return _labelled_pairs([p.text + "\n" for p in picked], a, b)


def write_world_pairs(folder: Path, n_rm: int, n_eval: int, seed: int = 0) -> Path:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for name, split, n in (("rm_pairs", "rm", n_rm), ("eval_pairs", "eval", n_eval)):
        rows = world_pairs(split, n, seed)
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
