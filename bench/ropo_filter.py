"""The parts of ROPO's full method (bench/ropo_full.py) that work on scores, not on training: which pairs the
filter drops and how well that finds the injected flips, the rejection-sampling rule that picks a replacement
pair, and the per-pair log-probs both are computed from (TRL's own collator and reference forward).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


# ------------------------------------------------------------------------------------------ filter accounting
def exact_count(fraction: float, n: int) -> int:
    """round(fraction * n), halves up (as the noise injectors count flips)."""
    return min(n, max(0, int(math.floor(fraction * n + 0.5))))


def highest_loss(losses, k: int) -> np.ndarray:
    """Boolean mask of the k pairs with the highest loss (NaN counts as highest; ties go to the lower index)."""
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    key = np.where(np.isnan(losses), np.inf, losses)
    order = np.lexsort((np.arange(n), -key))  # primary: loss descending, then index ascending
    mask = np.zeros(n, dtype=bool)
    mask[order[: max(0, min(k, n))]] = True
    return mask


def auroc(scores, positive) -> float | None:
    """P(score of a random positive > score of a random negative), ties half: the loss as a flip detector."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def filter_stats(dropped, flipped, losses=None) -> dict[str, Any]:
    """Precision and recall of one filter against the injected noise mask (``flipped``; None if unknown).

    precision = |dropped & flipped| / |dropped| (None if nothing dropped); recall = |dropped & flipped| / |flipped|
    (None if nothing is flipped); chance_precision = |flipped| / n, the expected precision of a random filter.
    """
    dropped = np.asarray(dropped, dtype=bool)
    n, k = len(dropped), int(dropped.sum())
    out: dict[str, Any] = {"n_scored": n, "n_dropped": k}
    if flipped is None:
        return {**out, "n_flipped": None, "n_dropped_flipped": None, "precision": None, "recall": None,
                "chance_precision": None}
    flipped = np.asarray(flipped, dtype=bool)
    if flipped.shape != dropped.shape:
        raise ValueError(f"flip mask has {flipped.shape[0]} entries, the filter {n}")
    tp, nf = int((dropped & flipped).sum()), int(flipped.sum())
    out.update(
        n_flipped=nf,
        n_dropped_flipped=tp,
        precision=tp / k if k else None,
        recall=tp / nf if nf else None,
        chance_precision=nf / n if n else None,
    )
    if losses is not None:
        losses = np.asarray(losses, dtype=float)
        out["auroc"] = auroc(losses, flipped)
        out["mean_loss_flipped"] = float(losses[flipped].mean()) if nf else None
        out["mean_loss_clean"] = float(losses[~flipped].mean()) if nf < n else None
    return out


def pooled_precision(rounds: list[dict]) -> float | None:
    """Flipped dropped over dropped, summed over filter rounds (None without a mask or with nothing dropped)."""
    if not rounds or any(r.get("n_dropped_flipped") is None for r in rounds):
        return None
    k = sum(r["n_dropped"] for r in rounds)
    return sum(r["n_dropped_flipped"] for r in rounds) / k if k else None


def mean_of(rounds: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rounds if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


# ---------------------------------------------------------------------------------------- rejection sampling
@dataclass
class Choice:
    chosen: int  # candidate indices
    rejected: int
    loss: float
    margin: float
    accepted: bool


def choose_pair(loss, pol, ref, lengths, texts: list, cut: float | None) -> Choice | None:
    """The ordered pair of distinct candidates with the lowest loss; accepted if its loss is <= cut (None: always).

    ``pol``/``ref``: each candidate's summed log-prob under the current policy / the reference (ref may be None
    for reference-free losses); ``lengths``: completion lengths. Returns None when fewer than two distinct
    candidates exist.
    """
    m = len(texts)
    idx = [(i, j) for i in range(m) for j in range(m) if i != j and texts[i] != texts[j]]
    if not idx:
        return None
    ii = torch.tensor([a for a, _ in idx])
    jj = torch.tensor([b for _, b in idx])
    pol, lengths = torch.as_tensor(pol, dtype=torch.float64), torch.as_tensor(lengths, dtype=torch.float64)
    ref = None if ref is None else torch.as_tensor(ref, dtype=torch.float64)
    args = (pol[ii], pol[jj], None if ref is None else ref[ii], None if ref is None else ref[jj], lengths[ii], lengths[jj])
    with torch.no_grad():
        values = loss(*args)
        c, r = loss.rewards(*args)
    best = int(torch.argmin(values))  # first minimum: deterministic
    value = float(values[best])
    return Choice(chosen=int(ii[best]), rejected=int(jj[best]), loss=value, margin=float(c[best] - r[best]),
                  accepted=cut is None or value <= cut)


# ------------------------------------------------------------------------------------------------ scoring
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
