"""The embedded reference policy: a byte-level BPE tokenizer and a small Llama (930,048 parameters at the default
conf/model/tiny.yaml: hidden 128, 4 layers; the BPE learns 601 tokens from world text, under its cap of 1,024),
trained on world text.

Built locally in about a minute on one CPU thread, no hub. The tokenizer is trained with `tokenizers` on the
world corpus; the model is a standard `LlamaForCausalLM`, supervised-fine-tuned with TRL's `SFTTrainer` on
(prompt, response) pairs, so its samples are fluent world sentences of varying gold reward.
"""
from __future__ import annotations

from pathlib import Path

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


def sft(model, tokenizer, pairs: list[tuple[str, str]], cfg, out_dir: Path, seed: int):
    """Supervised fine-tuning on (prompt, response) with TRL's SFTTrainer (loss on the completion only); ``cfg`` is
    the ``TinyModel`` config (its ``sft`` settings and context length)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from bench.models.callbacks import quiet

    ds = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [r for _, r in pairs]})
    args = SFTConfig(
        output_dir=str(out_dir / "sft_run"),
        per_device_train_batch_size=cfg.sft.batch_size,
        max_steps=cfg.sft.steps,
        learning_rate=cfg.sft.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, cfg.sft.steps // 20),
        weight_decay=0.0,
        logging_steps=max(1, cfg.sft.steps // 10),
        save_strategy="no",
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        max_length=cfg.max_positions,
        dataset_num_proc=None,
        disable_tqdm=True,
    )
    trainer = quiet(SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer), "world: SFT")
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    model.eval()
    return history
