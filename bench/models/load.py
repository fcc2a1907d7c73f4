"""Loading a reference policy: a local folder or hub name (``model=local``), or SmolLM2 from a PyPI package.

The world's tiny model is built by ``bench.world``; its folder then loads like any other.
"""
from __future__ import annotations

import torch

from bench.models.smollm2 import ensure_smollm2_folder


def resolve_model_path(model) -> str:
    """The folder (or hub name) of a ``model`` config (``bench.config.schema.PretrainedModel`` / ``SmolLM2Model``)."""
    if model.kind == "pretrained":
        return str(model.path)
    if model.kind == "smollm2":
        # shared with the judge tests' server: $PREFNOISE_CACHE_DIR or ~/.cache/prefnoise, converted once
        return str(ensure_smollm2_folder())
    raise ValueError(f"model.kind={model.kind!r} has no folder to load; valid here: pretrained, smollm2")


def load_causal_lm(path: str, device: str, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a folder or hub name, on ``device``; the tokenizer pads on the left."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    except OSError as e:
        raise ValueError(f"model.path={path!r}: not a model folder and not reachable on the hub ({e})") from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation appends on the right
    return model, tokenizer
