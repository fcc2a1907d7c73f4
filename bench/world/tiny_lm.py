"""The embedded reference policy: a byte-level BPE tokenizer and a small Llama (930,048 parameters at the default
conf/model/tiny.yaml: hidden 128, 4 layers; the BPE learns 601 tokens from world text, under its cap of 1,024),
trained on world text.

Built locally in about a minute on one CPU thread, no hub. The tokenizer is trained with `tokenizers` on the
world corpus; the model is a standard `LlamaForCausalLM`, supervised-fine-tuned with TRL's `SFTTrainer` on
(prompt, response) pairs, so its samples are fluent world sentences of varying gold reward.
"""
from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}


def build_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # left padding: generation appends to the right end of every row
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **SPECIALS)


def build_model(tokenizer: PreTrainedTokenizerFast, cfg, seed: int) -> LlamaForCausalLM:
    """A fresh ``LlamaForCausalLM`` of the architecture ``cfg`` (a ``bench.config.schema.TinyModel``)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)
