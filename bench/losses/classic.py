"""The DPO family without a noise model: DPO, IPO, hinge (SLiC/RSO) and SimPO (reference-free).

Formulas and sources: ``docs/losses.md``; golden values: ``tests/test_losses.py``; options: ``bench.losses.options``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.losses.base import PairLoss
from bench.losses.options import IPOOptions, SimPOOptions


class DPO(PairLoss):
    """DPO (Rafailov et al. 2023): ``-log sigma(z)``."""

    name, label = "dpo", "DPO"
    needs_reference_model, length_normalized = True, False

    def loss_of_margin(self, z):
        return -F.logsigmoid(z)


class IPO(PairLoss):
    """IPO (Azar et al. 2023, eq. 17): ``(h_bar - 1/(2 tau))^2``.

    ``h_bar`` is length-normalized as TRL does (each response's log-ratio divided by its completion length; TRL
    says the IPO authors confirmed their reported results use this form). IPO has no beta: its rewards are the
    unscaled per-token log-ratios, so the logged margin is ``h_bar`` and its optimum is ``1/(2 tau)``.
    """

    name, label = "ipo", "IPO"
    needs_reference_model, length_normalized = True, True

    Options = IPOOptions  # no beta: tau alone

    def loss_of_margin(self, h_bar):
        return (h_bar - 1.0 / (2.0 * self.tau)) ** 2


class SimPO(PairLoss):
    """SimPO (Meng et al. 2024): ``-log sigma(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma)``.

    Reference-free and length-normalized. ``gamma`` is absolute, on the beta-scaled scale (the SimPO code's
    ``gamma_beta_ratio`` times ``beta``; TRL's ``simpo_gamma``). The logged rewards are ``beta * avg log-prob``,
    so the logged margin excludes gamma.
    """

    name, label = "simpo", "SimPO"
    needs_reference_model, length_normalized = False, True

    Options = SimPOOptions  # beta, gamma

    def loss_of_margin(self, z):
        return -F.logsigmoid(z - self.gamma)


class Hinge(PairLoss):
    """hinge loss (SLiC, Zhao et al. 2023; RSO, Liu et al. 2024), as TRL's ``loss_type="hinge"``: ``max(0, 1 - z)``."""

    name, label = "hinge", "hinge (SLiC/RSO)"
    needs_reference_model, length_normalized = True, False

    def loss_of_margin(self, z):
        return torch.relu(1 - z)
