"""Losses built for noisy labels: cDPO, rDPO (an assumed flip rate eps), ROPO, Dr. DPO, SymPO and UDPO.

Formulas and sources: ``docs/losses.md``; golden values: ``tests/test_losses.py``; options: ``bench.losses.options``.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from bench.losses.base import PairLoss
from bench.losses.options import CDPOOptions, DrDPOOptions, RDPOOptions, ROPOOptions, SymPOOptions, UDPOOptions


class CDPO(PairLoss):
    """conservative DPO (Mitchell's cDPO note, eq. 3): ``-(1-eps) log sigma(z) - eps log sigma(-z)``.

    Its optimum is bounded, ``sigma(z*) = 1 - eps``. (TRL 1.x dropped it: ``sigmoid`` ignores label_smoothing.)

    Soft labels (``soft_labels``): where the cell's pairs carry a label confidence ``c`` (the probability that the
    labelled chosen response is preferred: ``noise=tie``, ``natural``'s majority vote), the cell turns on
    ``read_label_confidence`` and each pair gets ``eps_i = (1 - c) + eps (2c - 1)``, the probability that its label
    is wrong when it is right with probability ``c`` and then flips at the assumed rate ``eps``: ``c = 1`` is plain
    cDPO, a tie (``c = 1/2``) has ``eps_i = 1/2``, whose optimum is a margin of 0. Other losses train without ties.
    """

    name, label = "cdpo", "cDPO"
    needs_reference_model, length_normalized = True, False

    Options = CDPOOptions  # beta, eps
    soft_labels = True  # can read extras["label_confidence"] (bench.cell.noising turns it on where the pairs have it)
    reads_label_confidence = False

    def read_label_confidence(self, on: bool = True) -> None:
        self.reads_label_confidence = bool(on)

    @property
    def uses_extras(self) -> bool:
        return self.reads_label_confidence

    def loss_of_margin(self, z, extras=None):
        eps = self.eps
        if extras is not None and "label_confidence" in extras:
            c = extras["label_confidence"].to(z.dtype)
            eps = (1 - c) + self.eps * (2 * c - 1)
        return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


class RDPO(PairLoss):
    """robust DPO (Chowdhury et al., ICML 2024): ``[(1-eps)(-log sigma(z)) - eps(-log sigma(-z))] / (1-2 eps)``.

    Identical to TRL 1.16's ``loss_type="robust"`` with ``label_smoothing=eps`` (tested by calling TRL). An
    unbiased estimate of the clean loss, unbounded below: its gradient weight never falls under
    ``eps/(1-2eps)``, so margins keep growing; watch them.
    """

    name, label = "rdpo", "rDPO"
    needs_reference_model, length_normalized = True, False

    Options = RDPOOptions  # beta, eps

    def loss_of_margin(self, z):
        return (-(1 - self.eps) * F.logsigmoid(z) + self.eps * F.logsigmoid(-z)) / (1 - 2 * self.eps)


class ROPO(PairLoss):
    """ROPO's loss alone (Liang et al., arXiv 2404.04102, ICML 2025): ``4a/(1+a)^2 [-log sigma(z) + a sigma(-z)]``.

    Only the loss: the paper's full method also filters high-loss pairs each round and regenerates responses
    (``method=ropo_full``, ``bench.methods.ropo_full``), hence the label "ROPO (loss only)". ``|d loss/d z| =
    4a/(1+a)^2 sigma(-z) (1 + a sigma(z)) <= 1`` for every a > 0. The paper requires a > 2 (its analysis); values
    in (0, 2] are allowed with a warning, a <= 0 is an error.
    """

    name, label = "ropo", "ROPO (loss only)"
    needs_reference_model, length_normalized = True, False

    Options = ROPOOptions  # beta, alpha

    def validate(self):
        if self.alpha <= 2:
            warnings.warn(f"ROPO alpha={self.alpha:g}: the paper requires alpha > 2 (default 14)", stacklevel=3)

    def loss_of_margin(self, z):
        a = self.alpha
        return 4 * a / (1 + a) ** 2 * (-F.logsigmoid(z) + a * torch.sigmoid(-z))


class DrDPO(PairLoss):
    """Dr. DPO (Wu et al., ICLR 2025), batch-level: ``L = -beta' log( mean_i exp(-l_i / beta') )``, l_i the DPO loss.

    The batch loss is not a sum over pairs, so each per-pair value returned is ``L`` itself (``L.expand(N)``): the
    mean is exactly ``L`` and its gradient is exactly ``dL/dtheta``, which weights pair i's DPO gradient by
    ``softmax_i(-l / beta')`` (low-loss pairs count more, likely-flipped high-loss pairs less). Consequences:
    per-pair values are not separable (``batch_level = True``: don't mask, weight or filter them per pair), and
    the loss depends on the batch (micro-batches under gradient accumulation each get their own L).
    Computed as ``l_min - beta' log mean exp(-(l_i - l_min)/beta')`` with expm1/log1p, which is exact in float32
    both for small beta' (no overflow) and huge beta' (where L -> mean_i l_i, the DPO loss).
    ``diagnostics`` adds ``dpo_loss`` (l_i) and ``pair_weight`` (``N softmax_i``, 1 for DPO).
    """

    name, label = "drdpo", "Dr. DPO"
    needs_reference_model, length_normalized = True, False
    batch_level = True

    Options = DrDPOOptions  # beta, beta_prime

    def loss_of_margin(self, z):
        l = -F.logsigmoid(z)
        bp = self.beta_prime
        l_min = l.min().detach()  # any constant gives the same value and gradient; the min avoids overflow
        batch = l_min - bp * torch.log1p(torch.expm1(-(l - l_min) / bp).mean())
        return batch.expand(z.shape)

    def diagnostics(self, *args, **kwargs):
        out = super().diagnostics(*args, **kwargs)
        l = -F.logsigmoid(out["margin"])
        out["dpo_loss"] = l
        out["pair_weight"] = l.numel() * torch.softmax(-l / self.beta_prime, dim=0)
        return out


class SymPO(PairLoss):
    """SymPO (Nishimori et al. 2025, arXiv 2505.24709): a symmetric loss, ``l(z) + l(-z) = const``.

    ``variant="sigmoid"``: ``sigma(-z)`` (sum 1); ``variant="ramp"``: ``clip(0.5 - 0.5 z, 0, 1)`` (sum 1; the SymPO
    code's ``symmetric_ramp``). Each response's reward ``beta * log-ratio`` is clamped to ``[-clip, clip]`` before
    the margin is taken, as in the SymPO code (``clip: True, clip_value: 10`` in its final config); a clamped
    reward passes no gradient. ``clip: null`` turns clipping off. ``diagnostics`` adds ``clipped`` (1.0 where
    either reward of the pair is at the clip).
    """

    name = "sympo"
    needs_reference_model, length_normalized = True, False

    Options = SymPOOptions  # beta, variant, clip

    @property
    def label(self):
        return f"SymPO ({self.variant})"

    def rewards(self, *args, **kwargs):
        chosen, rejected = super().rewards(*args, **kwargs)
        if self.clip is not None:
            chosen, rejected = chosen.clamp(-self.clip, self.clip), rejected.clamp(-self.clip, self.clip)
        return chosen, rejected

    def loss_of_margin(self, z):
        if self.variant == "sigmoid":
            return torch.sigmoid(-z)
        return torch.clamp(0.5 - 0.5 * z, 0.0, 1.0)

    def diagnostics(self, *args, extras: dict | None = None, **kwargs):
        out = super().diagnostics(*args, extras=extras, **kwargs)
        if self.clip is not None:
            chosen, rejected = self.rewards(*args, **kwargs)
            at_clip = (chosen.detach().abs() >= self.clip) | (rejected.detach().abs() >= self.clip)
            out["clipped"] = at_clip.to(out["margin"].dtype)
        return out


class UDPO(PairLoss):
    """UDPO (Wang et al., ICML 2026): ``-log((e^z + c) / (e^z + 1))``, ``c = eps/(1-eps)``.

    The forward-corrected noisy Bradley-Terry likelihood (up to the constant ``-log(1-eps)``); eps 0 is DPO. The
    loss is bounded by ``-log c`` for confidently "wrong" pairs. Computed as ``-log sigma(-z) - logaddexp(z, log c)``.
    """

    name, label = "udpo", "UDPO"
    needs_reference_model, length_normalized = True, False

    Options = UDPOOptions  # beta, eps

    def loss_of_margin(self, z):
        log_c = math.log(self.eps / (1 - self.eps)) if self.eps > 0 else -math.inf
        return -F.logsigmoid(-z) - torch.logaddexp(z, torch.full_like(z, log_c))
