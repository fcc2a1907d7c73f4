"""What methods that re-score or re-sample pairs share: per-pair log-probs as training sees them (TRL's own
preprocessing, collator and reference forward, run with any model: the current policy, or a frozen reference for new
pairs, under LoRA the policy with its adapter disabled), the per-pair loss of scored pairs, and samples of the current policy per prompt."""
from __future__ import annotations

import torch

from bench.evaluation import render_prompts
from bench.models import sampling
from bench.models.adapters import AdapterOff


@torch.no_grad()
def pair_logps(trainer, model, tokenized, batch_size: int) -> dict[str, torch.Tensor]:
    """Summed log-probs and completion lengths of each pair's chosen and rejected response under ``model``.

    Runs TRL's own collator and ``compute_ref_log_probs`` (the precompute's forward) on a dataset tokenized by
    TRL (``prompt_ids``/``chosen_ids``/``rejected_ids``), so tokenization, truncation and the forward are exactly
    those of training and of TRL's reference precompute. Pairs are batched in order of length (and the results put
    back in the dataset's order), so a batch pads to little more than its own pairs' length.
    """
    import numpy as np
    from torch.utils.data import DataLoader

    if isinstance(model, AdapterOff):  # a LoRA policy's base model: the policy itself, its adapter disabled
        with model.policy.disable_adapter():
            return pair_logps(trainer, model.policy, tokenized, batch_size)
    was_training = model.training
    model.eval()
    cols = ["prompt_ids", "chosen_ids", "rejected_ids"]
    ids = tokenized.select_columns(cols)
    width = [len(p) + max(len(c), len(r)) for p, c, r in zip(ids["prompt_ids"], ids["chosen_ids"], ids["rejected_ids"])]
    order = np.argsort(width, kind="stable")
    loader = DataLoader(ids.select(order.tolist()), batch_size=batch_size, shuffle=False,
                        collate_fn=trainer.data_collator)
    device = trainer.accelerator.device
    out: dict[str, list] = {"chosen": [], "rejected": [], "chosen_len": [], "rejected_len": []}
    for batch in loader:
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        c, r = trainer.compute_ref_log_probs(model, batch)
        lc, lr = batch["completion_mask"][:, 1:].sum(dim=1).float().chunk(2, dim=0)
        for key, v in zip(out, (c, r, lc, lr)):
            out[key].append(v.float().cpu())
    if was_training:
        model.train()
    if not out["chosen"]:
        return {k: torch.zeros(0) for k in out}
    back = torch.as_tensor(np.argsort(order, kind="stable"))  # sorted position of each pair of the dataset
    return {k: torch.cat(v)[back] for k, v in out.items()}


def pair_losses(loss, scores: dict, ref_c, ref_r, extras: dict | None = None) -> torch.Tensor:
    """Per-pair values of ``loss`` on pairs scored by ``pair_logps``; ``extras`` for losses that read scores."""
    args = (scores["chosen"].double(), scores["rejected"].double(),
            None if ref_c is None else torch.as_tensor(ref_c, dtype=torch.float64),
            None if ref_r is None else torch.as_tensor(ref_r, dtype=torch.float64),
            scores["chosen_len"].double(), scores["rejected_len"].double())
    with torch.no_grad():
        if getattr(loss, "uses_extras", False):
            return loss(*args, extras={k: torch.as_tensor(v, dtype=torch.float64) for k, v in (extras or {}).items()})
        return loss(*args)


def tokenize_pairs(trainer, dataset, name: str):
    """TRL's own preprocessing (EOS, tokenization) of a prompt/chosen/rejected dataset; rows must all survive."""
    out = trainer._prepare_dataset(dataset, trainer.processing_class, trainer.args, name)
    if len(out) != len(dataset):
        raise RuntimeError(
            f"TRL dropped {len(dataset) - len(out)} of {len(dataset)} {name} rows (prompt alone fills "
            f"train.max_length={trainer.args.max_length}); raise train.max_length"
        )
    return out


def sample_candidates(policy, tokenizer, prompts: list, n: int, *, max_new_tokens: int, seed: int,
                      temperature: float, top_p: float, desc: str) -> list[list[str]]:
    """``n`` samples of the current policy per prompt; empty ones dropped, duplicates removed (sampling order)."""

    texts = render_prompts(list(prompts), tokenizer)
    asks = [t for t in texts for _ in range(n)]
    samples = sampling.generate(policy, tokenizer, asks, max_new_tokens=max_new_tokens, seed=seed,
                                temperature=temperature, top_p=top_p, desc=desc) if asks else []
    out = []
    for a in range(len(texts)):
        got = [s for s in samples[a * n:(a + 1) * n] if s.strip()]
        out.append(list(dict.fromkeys(got)))
    return out
