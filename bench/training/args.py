"""TRL's ``DPOConfig`` for a cell, from its typed ``train`` config: every value from the composed config."""
from __future__ import annotations

from pathlib import Path

from trl import DPOConfig

from bench.config.schema import TrainConfig
from bench.models.devices import pick_device, use_bf16


def dpo_config(train: TrainConfig, out_dir: Path, seed: int, *, report_to: str = "none") -> DPOConfig:
    device = pick_device(train.device)
    return DPOConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps or -1,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_steps,
        max_length=train.max_length,
        logging_steps=train.logging_steps,
        save_strategy="no",
        report_to=report_to,
        bf16=use_bf16(train.bf16, device),
        activation_checkpointing=False,  # slower and unneeded at these sizes; TRL's default is on
        use_cpu=device == "cpu",
        precompute_ref_log_probs=True,  # reference log-probs come from the precompute path, never a live model
        precompute_ref_batch_size=train.ref_batch_size,
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,  # the cell's own bar shows the steps (bench.training.callbacks)
        dataloader_num_workers=0,
        dataset_num_proc=None,
        beta=0.1,  # unused by our losses (they carry their own hyperparameters); kept at TRL's default
    )
