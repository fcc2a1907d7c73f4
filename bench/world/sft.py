"""Supervised fine-tuning of a world's reference policy on world text, with TRL's ``SFTTrainer``: the tiny model
trained from scratch, or a pretrained LM taught the world's sentences before it samples the world's pairs."""
from __future__ import annotations

from pathlib import Path

import torch

from bench.models.callbacks import quiet


def sft(model, tokenizer, pairs: list[tuple], settings, max_length: int, out_dir: Path, seed: int):
    """Supervised fine-tuning on (prompt, response) with TRL's SFTTrainer (loss on the completion only).

    ``settings`` is an ``SFTConfig`` of ``bench.config.schema`` (steps, batch size, learning rate); prompts and
    responses are strings, or message lists for a chat model (TRL applies its chat template)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    ds = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [r for _, r in pairs]})
    args = SFTConfig(
        output_dir=str(out_dir / "sft_run"),
        per_device_train_batch_size=settings.batch_size,
        max_steps=settings.steps,
        learning_rate=settings.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, settings.steps // 20),
        weight_decay=0.0,
        logging_steps=max(1, settings.steps // 10),
        save_strategy="no",
        report_to="none",
        bf16=False,
        activation_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        data_seed=seed,
        max_length=max_length,
        dataset_num_proc=None,
        disable_tqdm=True,
    )
    trainer = quiet(SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer), "world: SFT")
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    model.eval()
    return history
