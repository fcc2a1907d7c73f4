"""Losses that read a scorer's per-response scores (``needs_scores``): SPPO, MADPO, SmPO/BRAIn-smoothed DPO and
DA-DPO. The scores come from a reward model (``scorer=proxy``: trained on the noisy reward-model split;
``scorer=oracle``: on clean labels, an upper bound; ``scorer=rm``: any reward-model folder), one per response,
computed once per data set; the margin ``m = s_w - s_l`` is taken at batch time from the pair as labelled, so a
flipped pair's margin flips with it. Every weight or target derived from it is held constant (no gradient).
Their options, and whether they read scores with them (``needs_scores``), are in ``bench.losses.options``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.losses.base import PairLoss, _require, score_margin
from bench.losses.options import DADPOOptions, MADPOOptions, SmDPOOptions, SPPOOptions


class SPPO(PairLoss):
    """SPPO (Wu et al. 2024): squared distance of each response's log-ratio to its win-rate target.

    ``variant: hard`` (TRL's ``sppo_hard``): ``(u_w - 1/(2 beta))^2 + (u_l + 1/(2 beta))^2``.
    ``variant: single``: ``0.5 [(u_w - (p - 1/2)/beta)^2 + (u_l + (p - 1/2)/beta)^2]`` with ``p = sigma(s_w - s_l)``,
    the scorer as a Bradley-Terry preference model; at p = 1 it is half the hard loss. Not a function of the margin
    alone: rewards are ``beta * u`` for margins and accuracy.
    """

    name = "sppo"
    needs_reference_model, length_normalized = True, False

    Options = SPPOOptions  # beta, variant (single: needs_scores)

    @property
    def label(self):
        return f"SPPO ({self.variant})"

    def forward(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                chosen_lengths=None, rejected_lengths=None, extras=None):
        cw, cl = self.rewards(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps)
        uw, ul = cw / self.beta, cl / self.beta
        if self.variant == "hard":
            return (uw - 0.5 / self.beta) ** 2 + (ul + 0.5 / self.beta) ** 2
        # forward() is overridden, so the base class's check on extras (in _of_margin) does not run: do it here
        _require(self, extras, "extras", "it needs per-pair scores (set a scorer: scorer=proxy)")
        target = (torch.sigmoid(score_margin(extras)).detach().to(uw.dtype) - 0.5) / self.beta
        return 0.5 * ((uw - target) ** 2 + (ul + target) ** 2)


class MADPO(PairLoss):
    """Margin-Adaptive DPO: ``-w log sigma(z)`` with a weight from the scorer's margin ``m`` (detached).

    ``a = |m|``, ``c(a) = c_min + (c_max - c_min) / (1 + ((c_max - 1)/(1 - c_min)) exp(lam (a - tau)))``,
    ``w = sigma(c m) / sigma(m)``: agreeing pairs weigh a little more, moderately disagreeing ones much less (the
    scorer suspects a flip). With ``reset: true`` strong disagreement (``m <= -tau``) resets w to 1 (the method's
    choice for margins so large the scorer itself is suspect). Defaults from the authors' results notebook: beta
    0.1, c_max 2, c_min 0.5, lam 1, tau log(999) ~ 6.91 (their class default is tau 2).
    """

    name, label = "madpo", "MADPO"
    needs_reference_model, length_normalized = True, False
    Options = MADPOOptions  # beta, c_max, c_min, lam, tau, reset (needs_scores)

    def weight(self, m: torch.Tensor) -> torch.Tensor:
        a = m.abs()
        k = (self.c_max - 1) / (1 - self.c_min)
        c = self.c_min + (self.c_max - self.c_min) / (1 + k * torch.exp(self.lam * (a - self.tau)))
        w = torch.exp(F.logsigmoid(c * m) - F.logsigmoid(m))
        return torch.where(m <= -self.tau, torch.ones_like(w), w) if self.reset else w

    def loss_of_margin(self, z, extras=None):
        return -self.weight(score_margin(extras).detach().to(z.dtype)) * F.logsigmoid(z)


class SmDPO(PairLoss):
    """DPO with a scorer-smoothed label, ``p = sigma(m / temperature)``.

    ``variant: smpo`` (SmPO's signed scale, carried from diffusion to text): ``-log sigma((2p - 1) z)``: a pair the
    scorer doubts is pushed less, one it contradicts is pushed the other way. ``variant: brain`` (BRAIn's soft
    label with two samples): ``-[p log sigma(z) + (1 - p) log sigma(-z)]``, cDPO with a per-pair eps = 1 - p.
    """

    name = "smdpo"
    needs_reference_model, length_normalized = True, False
    Options = SmDPOOptions  # beta, temperature, variant (needs_scores)

    @property
    def label(self):
        return f"smoothed DPO ({self.variant})"

    def loss_of_margin(self, z, extras=None):
        p = torch.sigmoid(score_margin(extras).detach().to(z.dtype) / self.temperature)
        if self.variant == "smpo":
            return -F.logsigmoid((2 * p - 1) * z)
        return -(p * F.logsigmoid(z) + (1 - p) * F.logsigmoid(-z))


class DADPO(PairLoss):
    """DA-DPO: a difficulty-scaled beta, ``-log sigma(a_db (1 + |s_w - s_l|) z)``: pairs the scorer finds easy get a
    larger effective beta (the opposite bias of MADPO, which down-weights the pairs the scorer disputes)."""

    name, label = "dadpo", "DA-DPO"
    needs_reference_model, length_normalized = True, False
    Options = DADPOOptions  # beta, a_db (needs_scores)

    def loss_of_margin(self, z, extras=None):
        scale = self.a_db * (1 + score_margin(extras).detach().abs().to(z.dtype))
        return -F.logsigmoid(scale * z)


