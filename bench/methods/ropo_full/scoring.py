"""Per-pair log-probs as training sees them: TRL's own preprocessing, collator and reference forward, run with any
model (the current policy, or the frozen reference for new pairs)."""
from __future__ import annotations

import torch


@torch.no_grad()
def pair_logps(trainer, model, tokenized, batch_size: int) -> dict[str, torch.Tensor]:
    """Summed log-probs and completion lengths of each pair's chosen and rejected response under ``model``.

    Runs TRL's own collator and ``compute_ref_log_probs`` (the precompute's forward) on a dataset tokenized by
    TRL (``prompt_ids``/``chosen_ids``/``rejected_ids``), so tokenization, truncation and the forward are exactly
    those of training and of TRL's reference precompute.
    """
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    cols = ["prompt_ids", "chosen_ids", "rejected_ids"]
    loader = DataLoader(tokenized.select_columns(cols), batch_size=batch_size, shuffle=False,
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
    return {k: torch.cat(v) for k, v in out.items()}


def pair_losses(loss, scores: dict, ref_c, ref_r) -> torch.Tensor:
    with torch.no_grad():
        return loss(scores["chosen"].double(), scores["rejected"].double(),
                    None if ref_c is None else torch.as_tensor(ref_c, dtype=torch.float64),
                    None if ref_r is None else torch.as_tensor(ref_r, dtype=torch.float64),
                    scores["chosen_len"].double(), scores["rejected_len"].double())


def tokenize_pairs(trainer, dataset, name: str):
    """TRL's own preprocessing (EOS, tokenization) of a prompt/chosen/rejected dataset; rows must all survive."""
    out = trainer._prepare_dataset(dataset, trainer.processing_class, trainer.args, name)
    if len(out) != len(dataset):
        raise RuntimeError(
            f"TRL dropped {len(dataset) - len(out)} of {len(dataset)} {name} rows (prompt alone fills "
            f"train.max_length={trainer.args.max_length}); raise train.max_length"
        )
    return out
