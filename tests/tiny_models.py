"""A tiny policy for trainer tests, built in memory in about a second: a byte-level BPE tokenizer trained on world
text (``bench.world.tiny_lm.build_tokenizer``) and a freshly initialised 2-layer ``LlamaForCausalLM``, with a handful
of world preference pairs. Tests copy the initial weights so that every test starts from the same model.
``train_config(**changes)`` is the composed default ``train`` config, typed, with changes."""
from __future__ import annotations

import copy
from functools import lru_cache

import torch

from bench.config.compose import train_config  # noqa: F401  (the typed default train config, with changes)

TRAIN = train_config(  # one step, every pair in it, a learning rate that moves everything
    batch_size=8,
    learning_rate=1e-2,
    max_steps=1,
    warmup_steps=0,  # with warmup the first step's learning rate is 0
    lr_scheduler="constant",
    logging_steps=1,
    max_length=96,
    progress=False,
    device="cpu",
    ref_batch_size=16,
)


@lru_cache(maxsize=1)
def _build():
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.world import rules as world
    from bench.world import tiny_lm

    corpus = world.sft_corpus(400, seed=0)
    tokenizer = tiny_lm.build_tokenizer([p + "\n" + r for p, r in corpus], vocab_size=300)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    pairs = []  # 8 pairs with two different responses to the same prompt
    for i in range(0, len(corpus) - 1):
        (p, a), (_, b) = corpus[i], corpus[i + 1]
        if a != b:
            pairs.append((p + "\n", a, b))
        if len(pairs) == 8:
            break
    return tokenizer, model.state_dict(), config, pairs


def tokenizer():
    return _build()[0]


def model():
    """A fresh copy of the same initial tiny model."""
    from transformers import LlamaForCausalLM

    _, state, config, _ = _build()
    m = LlamaForCausalLM(copy.deepcopy(config))
    m.load_state_dict(state)
    return m


def pairs_dataset(n: int = 8, flipped: list[bool] | None = None):
    from datasets import Dataset

    pairs = _build()[3][:n]
    cols = {"prompt": [p for p, _, _ in pairs], "chosen": [c for _, c, _ in pairs], "rejected": [r for _, _, r in pairs]}
    if flipped is not None:
        cols["is_flipped"] = list(flipped)
    return Dataset.from_dict(cols)
