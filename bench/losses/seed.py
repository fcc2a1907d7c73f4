"""Losses from the seed papers (``docs/seed_methods.md``): f-DPO, SPPO, an anchored DPO, ASFT, and a noisy-channel
DPO with a learned flip rate. Those that read a scorer's per-response scores (SPPO's soft variant) are with the
other score-weighted losses in ``bench.losses.scored``.

Notation as in ``docs/losses.md``: ``u_w, u_l`` the policy-minus-reference log-probs (summed over completion
tokens), ``h = u_w - u_l``, ``z = beta h``; ``lbar`` a length-normalized (per-token mean) log-prob. Options:
``bench.losses.options``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bench.core.options import ConfigError
from bench.losses.base import PairLoss, _lengths, _require
from bench.losses.options import AnchoredOptions, ASFTOptions, FDPOOptions, NCDPOOptions

EXP_CLAMP = 80.0  # as TRL clamps the alpha-divergence exponent in fp32: exp(80) stays representable


class FDPO(PairLoss):
    """f-DPO (Wang et al., "Beyond Reverse KL", ICLR 2024): ``-log sigma(beta (psi(u_w) - psi(u_l)))``, psi = f'(e^u).

    ``reverse_kl``: psi(u) = u (DPO); ``forward_kl``: -e^(-u); ``js``: log sigma(u); ``alpha`` (the paper's
    convention, alpha in (0, 1)): -e^(-alpha u) / alpha. TRL 1.x writes the alpha-divergence with coefficient
    a = 1 - alpha (``(e^((a-1) u) - 1)/(a - 1)``, equal up to a constant); ``tests/test_losses.py`` checks this class
    against TRL's own computation on the same tensors. Exponents are clamped at 80 as TRL does. The loss's rewards
    (for margins and implicit accuracy) are ``beta * psi(u)``.
    """

    name = "fdpo"
    needs_reference_model, length_normalized = True, False

    Options = FDPOOptions  # beta, divergence, alpha

    @property
    def label(self):
        return f"f-DPO ({self.divergence})"

    def psi(self, u: torch.Tensor) -> torch.Tensor:
        if self.divergence == "reverse_kl":
            return u
        if self.divergence == "forward_kl":
            return -torch.exp(torch.clamp(-u, max=EXP_CLAMP))
        if self.divergence == "js":
            return F.logsigmoid(u)
        return -torch.exp(torch.clamp(-self.alpha * u, max=EXP_CLAMP)) / self.alpha

    def rewards(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                chosen_lengths=None, rejected_lengths=None):
        _require(self, ref_chosen_logps, "ref_chosen_logps", "it needs a reference model")
        _require(self, ref_rejected_logps, "ref_rejected_logps", "it needs a reference model")
        return (self.beta * self.psi(chosen_logps - ref_chosen_logps),
                self.beta * self.psi(rejected_logps - ref_rejected_logps))

    def loss_of_margin(self, z):
        return -F.logsigmoid(z)


class Anchored(PairLoss):
    """DPO plus a likelihood anchor on the chosen response: ``-log sigma(z) + alpha * NLL(y_w)``, the NLL a per-token
    mean (RPO, Pang et al. 2024; the offline form of VPO, Cen et al. 2024; Triple PO's anchor, Saeidi et al. 2024,
    which anchors a third "gold" response; no data source here has a third response, so the anchor is the chosen
    one, flipped with it). ``reference_free: true`` drops the reference from the margin, as Triple PO does.
    """

    name = "anchored"
    length_normalized = False

    Options = AnchoredOptions  # beta, alpha, reference_free

    @property
    def label(self):
        return "anchored DPO" + (" (reference-free)" if self.reference_free else "")

    @property
    def needs_reference_model(self):
        return not self.reference_free

    def forward(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                chosen_lengths=None, rejected_lengths=None):
        _require(self, chosen_lengths, "chosen_lengths", "its anchor is a per-token NLL")
        z = self.margin(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                        rejected_lengths)
        nll = -chosen_logps / _lengths(chosen_lengths, chosen_logps)
        return -F.logsigmoid(z) + self.alpha * nll


class ASFT(PairLoss):
    """ASFT (Wang et al. 2024): ``-log P_w - lam [log sigma(rho_w) + log sigma(-rho_l)]``, ``rho = log(P/(1-P))``,
    ``P = exp(lbar)`` as in ORPO; equal to ``-(1 + lam) lbar_w - lam log(1 - exp(lbar_l))``. Reference-free and
    pointwise: no margin between the two responses enters the loss. Its rewards are the per-token log-probs. (The
    normalization of P follows ORPO's convention; the paper text was not checked for it.)
    """

    name, label = "asft", "ASFT"
    needs_reference_model, length_normalized = False, True

    Options = ASFTOptions  # lam (no beta)

    def forward(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                chosen_lengths=None, rejected_lengths=None):
        lw, ll = self.rewards(chosen_logps, rejected_logps, None, None, chosen_lengths, rejected_lengths)
        ll = torch.clamp(ll, max=-1e-6)  # log(1 - e^x) needs x < 0; a per-token log-prob is <= 0
        return -(1 + self.lam) * lw - self.lam * torch.log(-torch.expm1(ll))


class NCDPO(PairLoss):
    """Noisy-channel DPO with a learned flip rate: ``-log[(1 - eps) sigma(z) + eps sigma(-z)]`` (NBPO's idea, Yu et
    al., on preference pairs; UDPO is the same likelihood at a fixed eps). ``eps = 0.5 sigmoid(theta)`` is learned
    with the policy (its own step size ``eps_lr``), one global rate, or one per annotator (``per_annotator``,
    where the pairs carry annotator ids). The record shows the learned rates (``learned()``) next to the injected
    ones. At z = 0 the gradient in eps is 0: eps starts to move once the policy separates pairs.
    """

    name = "ncdpo"
    needs_reference_model, length_normalized = True, False

    Options = NCDPOOptions  # beta, eps_init, eps_lr, per_annotator

    def validate(self):
        self.annotators: list[str] = []
        self.theta = torch.nn.Parameter(torch.full((1,), math.log(2 * self.eps_init / (1 - 2 * self.eps_init))))

    @property
    def label(self):
        return "NC-DPO (learned rate" + (", per annotator)" if self.per_annotator else ")")

    @property
    def needs_annotators(self):
        return bool(self.per_annotator)

    @property
    def param_lr(self):
        return self.eps_lr

    def set_annotators(self, names: list[str]) -> None:
        """One rate per annotator (in this order; index 0 also serves pairs with no known annotator)."""
        if not self.per_annotator:
            return
        if not names:
            raise ConfigError("loss 'ncdpo': per_annotator=true but the pairs carry no annotator ids "
                              "(noise=annotator_biased, or data with an annotator column)")
        self.annotators = list(names)
        self.theta = torch.nn.Parameter(self.theta.detach().repeat(len(names)))

    def trainable_parameters(self):
        return [self.theta]

    def eps(self, extras: dict | None = None) -> torch.Tensor:
        rates = 0.5 * torch.sigmoid(self.theta)
        if self.per_annotator and extras is not None and "annotator_idx" in extras:
            return rates[extras["annotator_idx"].to(rates.device)]
        return rates[:1]

    def loss_of_margin(self, z, extras=None):
        eps = self.eps(extras).to(z.dtype)
        return -torch.logaddexp(torch.log1p(-eps) + F.logsigmoid(z), torch.log(eps) + F.logsigmoid(-z))

    def learned(self) -> dict:
        rates = (0.5 * torch.sigmoid(self.theta.detach())).tolist()
        if self.per_annotator and self.annotators:
            return {"eps": dict(zip(self.annotators, rates))}
        return {"eps": rates[0]}

