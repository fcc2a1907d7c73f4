"""LoRA on TRL's own route: the cell's ``train.lora`` as peft's ``LoraConfig``, handed to ``DPOTrainer`` as its
``peft_config`` (TRL wraps the policy with ``peft.get_peft_model``), and what the rest of a cell needs to know
about an adapted policy.

The reference is the base model with the adapter disabled: no second copy is held, and the reference log-probs
(TRL's precompute, or the shared cache) are the base model's, the same numbers a full fine-tuning cell of the same
data and model uses. The adapter's factor B starts at zero (peft's default), so the policy starts at the reference.

A method that trains one policy in several TRL runs (rounds, stages) hands the same ``PeftModel`` to each later
trainer; TRL then adds a frozen ``ref`` adapter (a copy of the trained one, its reference for a pretrained
adapter), which ``PreferenceTrainer`` removes again: the reference stays the adapter-disabled base.
"""
from __future__ import annotations

from pathlib import Path

from bench.config.schema import LoraAdapterConfig
from bench.models.adapters import is_peft  # noqa: F401  (part of this module's API)


def peft_config(lora: LoraAdapterConfig):
    """peft's ``LoraConfig`` for a typed ``train.lora`` block (a causal LM's adapters, no bias terms trained)."""
    from peft import LoraConfig

    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    return LoraConfig(r=int(lora.rank), lora_alpha=float(lora.alpha), lora_dropout=float(lora.dropout),
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def settings(lora: LoraAdapterConfig | None) -> dict | None:
    """The LoRA settings as a record states them (None: full fine-tuning)."""
    if lora is None:
        return None
    targets = lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules)
    return {"rank": int(lora.rank), "alpha": float(lora.alpha), "dropout": float(lora.dropout),
            "target_modules": targets}


def parameter_counts(model) -> dict[str, int]:
    """Trainable and total parameters of a model (a ``PeftModel`` counts its base and its adapters)."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"trainable": trainable, "total": total}


def save_policy(model, tokenizer, folder: str | Path) -> list[str]:
    """The trained policy in ``folder`` as ``save_pretrained`` writes it: the adapter alone (``adapter_config.json``,
    ``adapter_model.safetensors``: load it over the base model named in its config) for a ``PeftModel``, the whole
    model otherwise; and the tokenizer. Returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return sorted(p.name for p in folder.iterdir())
