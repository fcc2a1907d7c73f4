"""Margin diagnostics: where the policy stands on the training pairs as labelled, split into flipped and clean.

For a seeded sample of the cell's noisy training pairs (labels as the injector left them), the loss's own margin
``z = chosen reward - rejected reward`` (``loss.rewards``: ``beta * log-ratio`` for the DPO family) under the
current policy. Near the reference every z is 0, and every reference-anchored loss is DPO with a rescaled learning
rate (``docs/losses.md``); a robust loss can only act differently once margins reach ``|z|`` of order 1. So:

    diag_memorized      share of flipped pairs whose margin agrees with their (wrong) label: z > 0
    diag_fit            share of clean pairs whose margin agrees with their label: z > 0
    diag_z_{flipped,clean}_q{05,25,50,75,95}   quantiles of z in each group
    diag_abs_z_median   median |z| over all sampled pairs: how far from the reference regime the policy is
    diag_n_flipped, diag_n_clean               how many pairs of each were measured

The sample takes up to half of its pairs from the flipped ones (so memorization is measured on enough of them)
and the rest from the clean ones, the same pairs at every checkpoint of a cell. Reference log-probs come from the
cache (the same for every cell of a data set and model).
"""
from __future__ import annotations

import numpy as np

from bench.core.metrics import COUNTER
from bench.evaluation.core import pair_rewards

QUANTILES = (5, 25, 50, 75, 95)
SAMPLE_SEED = 5_000_011
METRICS = {"diag_memorized": COUNTER, "diag_fit": COUNTER, "diag_abs_z_median": COUNTER,
           "diag_n_flipped": COUNTER, "diag_n_clean": COUNTER,
           **{f"diag_z_{g}_q{q:02d}": COUNTER for g in ("flipped", "clean") for q in QUANTILES}}


def sample_pairs(noisy, n: int, seed: int) -> np.ndarray:
    """Row indices of up to ``n`` pairs of ``noisy``: up to half flipped, the rest clean, seeded, sorted."""
    flipped = np.asarray(noisy["is_flipped"], dtype=bool) if "is_flipped" in noisy.column_names else \
        np.zeros(len(noisy), dtype=bool)
    rng = np.random.default_rng([seed, SAMPLE_SEED])
    fl, cl = np.flatnonzero(flipped), np.flatnonzero(~flipped)
    k_f = min(len(fl), n // 2)
    k_c = min(len(cl), n - k_f)
    k_f = min(len(fl), n - k_c)  # too few clean pairs: more flipped ones
    pick = np.concatenate([rng.choice(fl, k_f, replace=False), rng.choice(cl, k_c, replace=False)])
    return np.sort(pick.astype(int))


def summarize(z: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    """The diagnostics of margins ``z`` of pairs whose flip mask is ``flipped`` (see the module docstring)."""
    z, flipped = np.asarray(z, dtype=float), np.asarray(flipped, dtype=bool)
    out = {"diag_n_flipped": float(flipped.sum()), "diag_n_clean": float((~flipped).sum()),
           "diag_memorized": float((z[flipped] > 0).mean()) if flipped.any() else float("nan"),
           "diag_fit": float((z[~flipped] > 0).mean()) if (~flipped).any() else float("nan"),
           "diag_abs_z_median": float(np.median(np.abs(z))) if len(z) else float("nan")}
    for group, sel in (("flipped", flipped), ("clean", ~flipped)):
        qs = np.percentile(z[sel], QUANTILES) if sel.any() else [float("nan")] * len(QUANTILES)
        out.update({f"diag_z_{group}_q{q:02d}": float(v) for q, v in zip(QUANTILES, qs)})
    return out


class MarginProbe:
    """The margins of one cell's sampled training pairs, measured on demand (at each checkpoint and the end)."""

    def __init__(self, noisy, n_pairs: int, seed: int, loss, tokenizer, key: dict, cache_root: str | None):
        self.rows = sample_pairs(noisy, n_pairs, seed)
        self.pairs = noisy.select(self.rows.tolist())
        self.flipped = np.asarray(self.pairs["is_flipped"], dtype=bool) if "is_flipped" in noisy.column_names else \
            np.zeros(len(self.rows), dtype=bool)
        self.loss, self.tokenizer, self.cache_root = loss, tokenizer, cache_root
        # the reference's log-probs of these pairs depend on which pairs (and the data), not on the labels' orientation
        self.key = {**key, "split": "train_diagnostics", "rows": self.rows.tolist()}

    def __call__(self, policy, ref_model) -> tuple[dict[str, float], np.ndarray]:
        """(the diagnostics, the margins z in the order of ``self.rows``)."""

        if len(self.rows) == 0:
            return {}, np.zeros(0)
        cr, rj = pair_rewards(policy, ref_model, self.tokenizer, self.pairs, self.loss, self.key, self.cache_root)
        z = (cr - rj).double().numpy()
        return summarize(z, self.flipped), z
