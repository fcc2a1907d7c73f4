"""Loading the reference policy: the world's tiny LM, a local folder, a hub name, or SmolLM2 from a PyPI package."""
from __future__ import annotations

import torch


def resolve_model_path(model_cfg: dict, cache_dir: str | None = None) -> str:
    kind = model_cfg.get("kind")
    if kind == "pretrained":
        path = model_cfg.get("path")
        if not path:
            raise ValueError("model.path is required for a pretrained model (a local folder or a hub name)")
        return str(path)
    if kind == "smollm2":
        from evaluators.smollm2 import ensure_smollm2_folder

        # shared with the judge tests' server: $PREFNOISE_CACHE_DIR or ~/.cache/prefnoise, converted once
        return str(ensure_smollm2_folder())
    raise ValueError(f"model.kind={kind!r} cannot be loaded here; valid choices: pretrained, smollm2 (tiny: data=world)")


def load_causal_lm(path: str, device: str, dtype: torch.dtype = torch.float32):
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
