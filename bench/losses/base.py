"""Preference-optimization losses: one small class per loss, its flags next to it, its values in YAML.

Formulas, defaults and sources: ``docs/losses.md``; golden values: ``tests/test_losses.py``.

Contract (the trainer depends on it)::

    loss = bench.losses.get("rdpo", eps=0.2)          # values from conf/loss/rdpo.yaml, overridden by kwargs
    loss = bench.losses.from_config(cfg.loss, noise_rate=0.2)   # resolves ``eps: oracle``; honours ``_target_``
    per_pair = loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    chosen_lengths, rejected_lengths)   # 1-D tensor; the trainer takes .mean()
    chosen_rewards, rejected_rewards = loss.rewards(...same args...)   # for margins / accuracies
    loss.diagnostics(...same args...)  # {"margin": z, "grad_weight": -d loss/d z, ...loss-specific}

Log-probs are sums over completion tokens; lengths are completion token counts. Reference arguments may be
``None`` for reference-free losses (``needs_reference_model = False``) and are then never touched; lengths may be
``None`` for losses that are not length-normalized. Every loss object has ``name``, ``label`` (for tables and
plots), ``needs_reference_model``, ``length_normalized``, ``batch_level``, ``params`` and ``eps_source``.

A loss is a plug-in like every other (``bench.config.plugin``): a subclass of :class:`PairLoss` with its flags,
its hyperparameters (``Options``) and ``loss_of_margin``. (A built-in loss's options live in
``bench.losses.options``, light, and its class says ``Options = <its options>``: a cell's id reads them without
torch. Your own loss may declare them in its class, as below.)::

    class FocalDPO(PairLoss):
        name, label = "focal_dpo", "focal DPO"
        needs_reference_model, length_normalized = True, False

        class Options(PairLoss.Options):      # beta, and its own
            g: float = option("the focusing exponent", Param(low=0), default=2.0)

        def loss_of_margin(self, z):          # z = beta * h, per pair
            return -((1 - torch.sigmoid(z)) ** self.g) * F.logsigmoid(z)

Plug it in from your own module without editing the project: ``loss: {_target_: mymodule.FocalDPO, beta: 0.1}``.
A loss that is not a function of the reward margin overrides ``forward`` (all six arguments) instead. A built-in
loss is a lazy entry of ``bench.losses.KIND`` with its ``conf/loss/<name>.yaml``.

Conventions decided here (see each class for details):
- the *margin* ``z`` is ``chosen_reward - rejected_reward`` with rewards from :meth:`PairLoss.rewards`
  (``beta * log-ratio``; length-normalized and/or reference-free as the flags say; IPO: unscaled per-token
  log-ratio, so its margin is ``h_bar`` and its target ``1/(2 tau)``);
- ``diagnostics()["grad_weight"]`` is ``-d loss_i / d z_i`` (DPO's is ``sigma(-z)``), computed by autograd so it
  is right for every loss including user ones;
- SimPO's ``gamma`` is absolute (on the beta-scaled scale): margin ``beta*avg_logp_w - beta*avg_logp_l - gamma``,
  i.e. the SimPO code's ``gamma_beta_ratio`` times ``beta``, TRL's ``simpo_gamma``;
- Dr. DPO is batch-level: every per-pair value is the batch loss (``batch_level = True``), see ``DrDPO``;
- SymPO clips each response's reward to ``[-clip, clip]`` (clip 10) as the SymPO code does, see ``SymPO``.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.config.plugin import Plugin
from bench.core.options import ConfigError
from bench.losses.options import BETA, Hyperparameters, LossOptions, with_oracle_eps

__all__ = ["PairLoss", "Hyperparameters", "BETA", "score_margin"]


class PairLoss(Plugin):
    """Base of every loss: a per-pair loss over summed log-probs, its flags and its bound hyperparameters.

    Subclasses set the class attributes below and implement ``loss_of_margin(z)`` (or, for a loss that is not a
    function of the reward margin, ``forward(...)`` over all six arguments).
    """

    kind = "loss"
    label: str = ""  # display name for tables and plots; defaults to ``name``
    needs_reference_model: bool = True
    length_normalized: bool = False
    batch_level: bool = False  # per-pair values are not separable (Dr. DPO): don't mask or filter them per pair
    # per-pair inputs beyond log-probs (the loss's *extras*), taken at batch time from the (noisy) pairs' columns,
    # so a flip flips them: a scorer's per-response scores (``needs_scores`` below: extras["score_chosen"],
    # extras["score_rejected"]) and
    needs_annotators: bool = False  # extras["annotator_idx"]: the pair's annotator (0 where none is known)

    Options = LossOptions  # beta (bench.losses.options)

    @property
    def needs_scores(self) -> bool:
        """Whether it reads a scorer's per-response scores: its options say (``Hyperparameters.needs_scores``); a
        loss of your own may also set ``needs_scores = True`` in its class."""
        return bool(getattr(self.options, "needs_scores", False))

    def __init__(self, **params: Any):
        super().__init__(**params)
        if not self.label:
            self.label = self.name
        # "fixed" for a numeric eps; from_options() sets "oracle" when eps was the cell's injected noise rate
        self.eps_source: str | None = "fixed" if "eps" in self.params else None

    @classmethod
    def option_head(cls) -> str:
        return f"loss {cls.name!r}"

    @classmethod
    def option_prefix(cls) -> str:
        return f"loss {cls.name!r}: "

    @classmethod
    def from_options(cls, options: dict, noise_rate: float | None = None, **context: Any) -> PairLoss:
        """``eps: oracle`` becomes ``noise_rate`` (the flip rate the cell's injector states) and the loss's
        ``eps_source`` says so."""
        resolved = with_oracle_eps(options, cls.option_head(), noise_rate)
        if resolved is options:
            return cls(**options)
        try:
            loss = cls(**resolved)
        except ConfigError as err:
            raise ConfigError(f"{err} (eps='oracle' resolved to the cell's noise rate {noise_rate!r})") from None
        loss.eps_source = "oracle"
        return loss

    @property
    def params(self) -> dict[str, Any]:
        """The hyperparameters as bound (the record's ``loss_params``)."""
        return self.option_values()

    # -- the pieces a loss is made of ------------------------------------------------------------------------

    def rewards(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                chosen_lengths=None, rejected_lengths=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Implicit per-response rewards this loss optimizes: ``beta * [log pi - log pi_ref]``.

        Reference-free losses drop ``log pi_ref``; length-normalized ones divide by the completion length
        (clamped to >= 1 as TRL does); the scale is ``params["beta"]`` when the loss has a beta, else 1.
        """
        c, r = chosen_logps, rejected_logps
        if self.needs_reference_model:
            _require(self, ref_chosen_logps, "ref_chosen_logps", "it needs a reference model")
            _require(self, ref_rejected_logps, "ref_rejected_logps", "it needs a reference model")
            c, r = c - ref_chosen_logps, r - ref_rejected_logps
        if self.length_normalized:
            _require(self, chosen_lengths, "chosen_lengths", "it is length-normalized")
            _require(self, rejected_lengths, "rejected_lengths", "it is length-normalized")
            c, r = c / _lengths(chosen_lengths, c), r / _lengths(rejected_lengths, r)
        scale = self.params.get("beta", 1.0)
        return scale * c, scale * r

    def margin(self, *args, **kwargs) -> torch.Tensor:
        """``z = chosen_reward - rejected_reward`` (``beta * h`` for the DPO family)."""
        chosen, rejected = self.rewards(*args, **kwargs)
        return chosen - rejected

    def loss_of_margin(self, z: torch.Tensor, extras: dict | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss_of_margin(z) or forward(...)")

    @property
    def uses_extras(self) -> bool:
        return bool(self.needs_scores or self.needs_annotators)

    def _of_margin(self, z: torch.Tensor, extras: dict | None) -> torch.Tensor:
        if not self.uses_extras:
            return self.loss_of_margin(z)
        why = ("it needs per-pair scores (set a scorer: scorer=proxy)" if self.needs_scores else
               "it needs per-pair annotator ids (annotator_idx: noise=annotator_biased)")
        _require(self, extras, "extras", why)
        return self.loss_of_margin(z, extras)

    def forward(self, *args, extras: dict | None = None, **kwargs) -> torch.Tensor:
        return self._of_margin(self.margin(*args, **kwargs), extras)

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                 chosen_lengths=None, rejected_lengths=None, extras: dict | None = None) -> torch.Tensor:
        if chosen_logps.dim() != 1 or chosen_logps.shape != rejected_logps.shape:
            raise ValueError(
                f"loss {self.name!r}: chosen_logps and rejected_logps must be 1-D of the same shape (one summed "
                f"log-prob per pair); got {tuple(chosen_logps.shape)} and {tuple(rejected_logps.shape)}."
            )
        args = (chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, rejected_lengths)
        return self.forward(*args, extras=extras) if self.uses_extras else self.forward(*args)

    def trainable_parameters(self) -> list:
        """Parameters the loss learns beside the policy (a learned flip rate); the trainer's optimizer adds them."""
        return []

    def learned(self) -> dict:
        """What the loss learned, for the cell's record (empty for losses with nothing of their own)."""
        return {}

    def diagnostics(self, *args, extras: dict | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Per-pair diagnostics: the margin ``z`` and the effective gradient weight ``-d loss_i / d z_i``.

        The weight is normalised so that DPO's is ``sigma(-z)``: it says how hard each pair pushes. It is
        computed by autograd on a detached copy of ``z`` (safe under ``torch.no_grad()``); for a batch-level
        loss it is ``-d (sum of per-pair values) / d z_i``, i.e. ``-N dL/dz_i``.
        """
        with torch.no_grad():
            z = self.margin(*args, **kwargs).detach()
        out = {"margin": z}
        if type(self).loss_of_margin is not PairLoss.loss_of_margin:
            with torch.enable_grad():
                zz = z.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(self._of_margin(zz, extras).sum(), zz)
            out["grad_weight"] = -grad.detach()
        return out


def score_margin(extras: dict) -> torch.Tensor:
    """The scorer's margin of each pair as labelled (chosen minus rejected): a flipped pair's flips with it."""
    missing = [k for k in ("score_chosen", "score_rejected") if k not in extras]
    if missing:
        raise ValueError(f"the batch has no {missing[0]}: the loss reads per-response scores; set a scorer "
                         "(scorer=proxy, oracle or rm) so that the pairs carry them")
    return extras["score_chosen"] - extras["score_rejected"]


def _require(loss: PairLoss, value, arg: str, why: str) -> None:
    if value is None:
        raise ValueError(f"loss {loss.name!r}: {arg} is None, but {why}")


def _lengths(lengths, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(lengths, device=like.device).to(like.dtype).clamp(min=1.0)
