"""Preference-optimization losses: one small class per loss, its flags next to it, defaults in YAML.

Formulas, defaults and sources: ``shared/reference/losses.md``; golden values: ``tests/test_losses.py``.

Contract (the trainer depends on it)::

    loss = bench.losses.get("rdpo", eps=0.2)          # defaults from conf/loss/rdpo.yaml, overridden by kwargs
    loss = bench.losses.from_config(cfg.loss, noise_rate=0.2)   # resolves ``eps: oracle``; honours ``_target_``
    per_pair = loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                    chosen_lengths, rejected_lengths)   # 1-D tensor; the trainer takes .mean()
    chosen_rewards, rejected_rewards = loss.rewards(...same args...)   # for margins / accuracies
    loss.diagnostics(...same args...)  # {"margin": z, "grad_weight": -d loss/d z, ...loss-specific}

Log-probs are sums over completion tokens; lengths are completion token counts. Reference arguments may be
``None`` for reference-free losses (``needs_reference_model = False``) and are then never touched; lengths may be
``None`` for losses that are not length-normalized. Every loss object has ``name``, ``label`` (for tables and
plots), ``needs_reference_model``, ``length_normalized``, ``batch_level``, ``params`` and ``eps_source``.

Adding a loss is a subclass of :class:`PairLoss` with flags, a hyperparameter spec and ``loss_of_margin``::

    class FocalDPO(PairLoss):
        name, label = "focal_dpo", "focal DPO"
        needs_reference_model, length_normalized = True, False
        hyperparameters = {"beta": BETA, "g": Param(default=2.0, low=0)}

        def loss_of_margin(self, z):          # z = beta * h, per pair
            return -((1 - torch.sigmoid(z)) ** self.g) * F.logsigmoid(z)

Plug it in from your own module without editing the project: ``loss: {_target_: mymodule.FocalDPO, beta: 0.1}``.
A loss that is not a function of the reward margin overrides ``forward`` (all six arguments) instead.
Registering it (``@register``) and adding ``conf/loss/<name>.yaml`` makes it available by name.

Conventions decided here (see each class for details):
- the *margin* ``z`` is ``chosen_reward - rejected_reward`` with rewards from :meth:`PairLoss.rewards`
  (``beta * log-ratio``; length-normalized and/or reference-free as the flags say; IPO: unscaled per-token
  log-ratio, so its margin is ``h_bar`` and its target ``1/(2 tau)``);
- ``diagnostics()["grad_weight"]`` is ``-d loss_i / d z_i`` (DPO's is ``sigma(-z)``), computed by autograd so it
  is right for every loss including user ones;
- SimPO's ``gamma`` is absolute (on the beta-scaled scale): margin ``beta*avg_logp_w - beta*avg_logp_l - gamma``,
  i.e. the SimPO code's ``gamma_beta_ratio`` times ``beta``, TRL's ``simpo_gamma``;
- Dr. DPO is batch-level: every per-pair value is the batch loss (``batch_level = True``), see :class:`DrDPO`;
- SymPO clips each response's reward to ``[-clip, clip]`` (clip 10) as the SymPO code does, see :class:`SymPO`.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench.registry import Registry, UnknownNameError

__all__ = [
    "REGISTRY", "PairLoss", "Param", "HyperparameterError", "LossContractError", "UnknownNameError",
    "get", "names", "from_config", "register", "check_contract", "BETA",
]

REGISTRY: Registry[PairLoss] = Registry("loss", "loss")

_MISSING = object()


class HyperparameterError(ValueError):
    """A hyperparameter is missing, unknown, of the wrong type or out of its valid range."""


class LossContractError(TypeError):
    """A user's loss (plugged in through ``_target_``) lacks part of the loss contract."""


# ----------------------------------------------------------------------------------------------------------------
# hyperparameter specs


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its valid range (or choices) and why.

    ``default`` is only for user losses that have no ``conf/loss/<name>.yaml``; the built-in losses take every
    default from their YAML so that ``get(name)`` and ``python bench/run.py loss=<name>`` agree.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is invalid
    high_open: bool = False
    choices: tuple | None = None
    nullable: bool = False  # None is allowed (meaning "off")
    why: str = ""
    default: Any = _MISSING

    def range_text(self) -> str:
        if self.choices is not None:
            text = " or ".join(repr(c) for c in self.choices)
        else:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            text = f"{left}{lo}, {hi}{right}"
        return text + (" or null" if self.nullable else "")

    def check(self, loss: str, key: str, value: Any) -> Any:
        raw = value

        def fail(problem: str) -> HyperparameterError:
            why = f" ({self.why})" if self.why else ""
            return HyperparameterError(f"loss {loss!r}: {key}={raw!r} {problem}; valid: {self.range_text()}{why}.")

        if value is None and self.nullable:
            return None
        if self.choices is not None:
            if value not in self.choices:
                raise fail("is not a valid choice")
            return value
        if key == "eps" and value == "oracle":
            raise HyperparameterError(
                f"loss {loss!r}: eps='oracle' means the cell's injected noise rate; resolve it with "
                "bench.losses.from_config(cfg, noise_rate) (get() needs a number)."
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail("is not a number")
        value = float(value)
        if not math.isfinite(value) or (self.low is not None and (value < self.low or (self.low_open and value == self.low))):
            raise fail("is out of range")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise fail("is out of range")
        return value


BETA = Param(low=0.0, low_open=True, why="beta scales the log-ratios; it must be positive")


# ----------------------------------------------------------------------------------------------------------------
# base class


class PairLoss:
    """Base of every loss: a per-pair loss over summed log-probs, its flags and its bound hyperparameters.

    Subclasses set the class attributes below and implement ``loss_of_margin(z)`` (or, for a loss that is not a
    function of the reward margin, ``forward(...)`` over all six arguments).
    """

    name: str = ""
    label: str = ""  # display name for tables and plots; defaults to ``name``
    needs_reference_model: bool = True
    length_normalized: bool = False
    batch_level: bool = False  # per-pair values are not separable (Dr. DPO): don't mask or filter them per pair
    hyperparameters: dict[str, Param] = {"beta": BETA}

    def __init__(self, **params: Any):
        spec = self.hyperparameters
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise HyperparameterError(
                f"loss {self.name!r}: unknown hyperparameter(s) {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(spec)) or '(none)'}."
            )
        bound = {}
        for key, p in spec.items():
            if key in params:
                value = params[key]
            elif p.default is not _MISSING:
                value = p.default
            else:
                raise HyperparameterError(
                    f"loss {self.name!r}: missing hyperparameter {key!r} (valid: {p.range_text()}). Built-in "
                    f"defaults live in conf/loss/{self.name}.yaml: use bench.losses.get({self.name!r}, ...)."
                )
            if hasattr(type(self), key):
                raise HyperparameterError(f"loss {self.name!r}: hyperparameter {key!r} shadows an attribute")
            bound[key] = p.check(self.name, key, value)
        self.params: dict[str, Any] = bound
        # "fixed" for a numeric eps; from_config() sets "oracle" when eps was the cell's injected noise rate
        self.eps_source: str | None = "fixed" if "eps" in bound else None
        if not self.label:
            self.label = self.name
        self.validate()

    def validate(self) -> None:
        """Cross-field checks and warnings beyond each field's range (override when needed)."""

    def __getattr__(self, key: str) -> Any:  # self.beta reads self.params["beta"]
        if key != "params" and key in self.__dict__.get("params", {}):
            return self.__dict__["params"][key]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {key!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

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

    def loss_of_margin(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement loss_of_margin(z) or forward(...)")

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.loss_of_margin(self.margin(*args, **kwargs))

    def __call__(self, chosen_logps, rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
                 chosen_lengths=None, rejected_lengths=None) -> torch.Tensor:
        if chosen_logps.dim() != 1 or chosen_logps.shape != rejected_logps.shape:
            raise ValueError(
                f"loss {self.name!r}: chosen_logps and rejected_logps must be 1-D of the same shape (one summed "
                f"log-prob per pair); got {tuple(chosen_logps.shape)} and {tuple(rejected_logps.shape)}."
            )
        return self.forward(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                            chosen_lengths, rejected_lengths)

    def diagnostics(self, *args, **kwargs) -> dict[str, torch.Tensor]:
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
                (grad,) = torch.autograd.grad(self.loss_of_margin(zz).sum(), zz)
            out["grad_weight"] = -grad.detach()
        return out


def _require(loss: PairLoss, value, arg: str, why: str) -> None:
    if value is None:
        raise ValueError(f"loss {loss.name!r}: {arg} is None, but {why}")


def _lengths(lengths, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(lengths, device=like.device).to(like.dtype).clamp(min=1.0)


def register(cls: type[PairLoss]) -> type[PairLoss]:
    """Class decorator: make ``get(cls.name)`` build this loss (defaults from ``conf/loss/<name>.yaml``)."""
    if not cls.label:
        cls.label = cls.name
    REGISTRY.register(cls.name)(cls)
    return cls


# ----------------------------------------------------------------------------------------------------------------
# the losses. z = beta * h, h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)]


@register
class DPO(PairLoss):
    """DPO (Rafailov et al. 2023): ``-log sigma(z)``."""

    name, label = "dpo", "DPO"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {"beta": BETA}

    def loss_of_margin(self, z):
        return -F.logsigmoid(z)


@register
class IPO(PairLoss):
    """IPO (Azar et al. 2023, eq. 17): ``(h_bar - 1/(2 tau))^2``.

    ``h_bar`` is length-normalized as TRL does (each response's log-ratio divided by its completion length; TRL
    says the IPO authors confirmed their reported results use this form). IPO has no beta: its rewards are the
    unscaled per-token log-ratios, so the logged margin is ``h_bar`` and its optimum is ``1/(2 tau)``.
    """

    name, label = "ipo", "IPO"
    needs_reference_model, length_normalized = True, True
    hyperparameters = {"tau": Param(low=0.0, low_open=True, why="the target margin is 1/(2 tau)")}

    def loss_of_margin(self, h_bar):
        return (h_bar - 1.0 / (2.0 * self.tau)) ** 2


_EPS_CDPO = Param(low=0.0, high=0.5, why="eps is the assumed label-flip rate; above 0.5 flip the labels instead")


@register
class CDPO(PairLoss):
    """conservative DPO (Mitchell's cDPO note, eq. 3): ``-(1-eps) log sigma(z) - eps log sigma(-z)``.

    Its optimum is bounded, ``sigma(z*) = 1 - eps``. (TRL 1.x dropped it: ``sigmoid`` ignores label_smoothing.)
    """

    name, label = "cdpo", "cDPO"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {"beta": BETA, "eps": _EPS_CDPO}

    def loss_of_margin(self, z):
        return -(1 - self.eps) * F.logsigmoid(z) - self.eps * F.logsigmoid(-z)


@register
class RDPO(PairLoss):
    """robust DPO (Chowdhury et al., ICML 2024): ``[(1-eps)(-log sigma(z)) - eps(-log sigma(-z))] / (1-2 eps)``.

    Identical to TRL 1.16's ``loss_type="robust"`` with ``label_smoothing=eps`` (tested by calling TRL). An
    unbiased estimate of the clean loss, unbounded below: its gradient weight never falls under
    ``eps/(1-2eps)``, so margins keep growing; watch them.
    """

    name, label = "rdpo", "rDPO"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {
        "beta": BETA,
        "eps": Param(low=0.0, high=0.5, high_open=True,
                     why="rDPO divides by 1 - 2*eps, which vanishes at 0.5 and flips the loss's sign beyond"),
    }

    def loss_of_margin(self, z):
        return (-(1 - self.eps) * F.logsigmoid(z) + self.eps * F.logsigmoid(-z)) / (1 - 2 * self.eps)


@register
class ROPO(PairLoss):
    """ROPO's loss alone (Liang et al., arXiv 2404.04102, ICML 2025): ``4a/(1+a)^2 [-log sigma(z) + a sigma(-z)]``.

    Only the loss: the paper's full method also filters high-loss pairs each round and regenerates responses
    (that lives with the trainer), hence the label "ROPO (loss only)". ``|d loss/d z| =
    4a/(1+a)^2 sigma(-z) (1 + a sigma(z)) <= 1`` for every a > 0. The paper requires a > 2 (its analysis); values
    in (0, 2] are allowed with a warning, a <= 0 is an error.
    """

    name, label = "ropo", "ROPO (loss only)"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {"beta": BETA, "alpha": Param(low=0.0, low_open=True, why="the paper requires alpha > 2")}

    def validate(self):
        if self.alpha <= 2:
            warnings.warn(f"ROPO alpha={self.alpha:g}: the paper requires alpha > 2 (default 14)", stacklevel=3)

    def loss_of_margin(self, z):
        a = self.alpha
        return 4 * a / (1 + a) ** 2 * (-F.logsigmoid(z) + a * torch.sigmoid(-z))


@register
class SimPO(PairLoss):
    """SimPO (Meng et al. 2024): ``-log sigma(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma)``.

    Reference-free and length-normalized. ``gamma`` is absolute, on the beta-scaled scale (the SimPO code's
    ``gamma_beta_ratio`` times ``beta``; TRL's ``simpo_gamma``). The logged rewards are ``beta * avg log-prob``,
    so the logged margin excludes gamma.
    """

    name, label = "simpo", "SimPO"
    needs_reference_model, length_normalized = False, True
    hyperparameters = {
        "beta": BETA,
        "gamma": Param(low=0.0, why="gamma is the target reward margin, absolute: gamma = gamma_beta_ratio * beta"),
    }

    def loss_of_margin(self, z):
        return -F.logsigmoid(z - self.gamma)


@register
class Hinge(PairLoss):
    """hinge loss (SLiC, Zhao et al. 2023; RSO, Liu et al. 2024), as TRL's ``loss_type="hinge"``: ``max(0, 1 - z)``."""

    name, label = "hinge", "hinge (SLiC/RSO)"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {"beta": BETA}

    def loss_of_margin(self, z):
        return torch.relu(1 - z)


@register
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
    hyperparameters = {"beta": BETA, "beta_prime": Param(low=0.0, low_open=True, why="beta' is a temperature")}

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


@register
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
    hyperparameters = {
        "beta": BETA,
        "variant": Param(choices=("sigmoid", "ramp")),
        "clip": Param(low=0.0, low_open=True, nullable=True, why="per-response reward clip, null for none"),
    }

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

    def diagnostics(self, *args, **kwargs):
        out = super().diagnostics(*args, **kwargs)
        if self.clip is not None:
            chosen, rejected = self.rewards(*args, **kwargs)
            at_clip = (chosen.detach().abs() >= self.clip) | (rejected.detach().abs() >= self.clip)
            out["clipped"] = at_clip.to(out["margin"].dtype)
        return out


@register
class UDPO(PairLoss):
    """UDPO (Wang et al., ICML 2026): ``-log((e^z + c) / (e^z + 1))``, ``c = eps/(1-eps)``.

    The forward-corrected noisy Bradley-Terry likelihood (up to the constant ``-log(1-eps)``); eps 0 is DPO. The
    loss is bounded by ``-log c`` for confidently "wrong" pairs. Computed as ``-log sigma(-z) - logaddexp(z, log c)``.
    """

    name, label = "udpo", "UDPO"
    needs_reference_model, length_normalized = True, False
    hyperparameters = {
        "beta": BETA,
        "eps": Param(low=0.0, high=0.5, high_open=True, why="c = eps/(1-eps) must be < 1; at 0.5 the loss is flat"),
    }

    def loss_of_margin(self, z):
        log_c = math.log(self.eps / (1 - self.eps)) if self.eps > 0 else -math.inf
        return -F.logsigmoid(-z) - torch.logaddexp(z, torch.full_like(z, log_c))


# ----------------------------------------------------------------------------------------------------------------
# entry points


def names() -> list[str]:
    """Registered loss names (each has ``conf/loss/<name>.yaml``)."""
    return REGISTRY.names()


def get(name: str, **hyperparameters: Any) -> PairLoss:
    """The loss ``name`` with defaults from ``conf/loss/<name>.yaml`` overridden by ``hyperparameters``."""
    cls = REGISTRY.lookup(name)
    return cls(**{**REGISTRY.defaults(name), **hyperparameters})


_CONTRACT_ATTRS = ("name", "needs_reference_model", "length_normalized", "params")
_CONTRACT_METHODS = ("__call__", "rewards", "diagnostics")


def check_contract(obj: Any, source: str = "loss") -> Any:
    """Raise :class:`LossContractError` listing every missing part of the loss contract; fill optional parts.

    Required: attributes ``name``, ``needs_reference_model`` (bool), ``length_normalized`` (bool), ``params``
    (mapping), and callables ``obj(...)``, ``rewards(...)``, ``diagnostics(...)``. Optional, filled in when
    absent: ``label`` (= name), ``batch_level`` (False), ``eps_source``.
    """
    missing = [a for a in _CONTRACT_ATTRS if not hasattr(obj, a)]
    missing += [m + "()" for m in _CONTRACT_METHODS if not callable(getattr(obj, m, None))]
    wrong = [f for f in ("needs_reference_model", "length_normalized")
             if hasattr(obj, f) and not isinstance(getattr(obj, f), bool)]
    if hasattr(obj, "params") and not isinstance(obj.params, Mapping):
        wrong.append("params (must be a dict)")
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if wrong:
            parts.append(f"wrong type: {', '.join(wrong)}")
        raise LossContractError(
            f"{source} ({type(obj).__name__}) does not satisfy the loss contract: {'; '.join(parts)}. Subclass "
            "bench.losses.PairLoss (flags + hyperparameters + loss_of_margin) to get all of it."
        )
    for attr, value in (("label", getattr(obj, "name", "")), ("batch_level", False),
                        ("eps_source", "fixed" if "eps" in obj.params else None)):
        if not hasattr(obj, attr):
            try:
                setattr(obj, attr, value)
            except (AttributeError, TypeError):
                pass
    return obj


def from_config(cfg: Mapping | Any, noise_rate: float | None = None) -> PairLoss:
    """Build a loss from a config group entry (``cfg.loss``): ``{name: rdpo, beta: 0.1, eps: oracle}``.

    - ``eps: oracle`` becomes ``noise_rate`` (the cell's injected flip rate) and ``loss.eps_source = "oracle"``;
      a number gives ``"fixed"``; a loss without eps has ``None``.
    - With ``_target_``, the object is built by ``hydra.utils.instantiate`` (a user's class or factory from their
      own module; the other keys except ``name`` are its keyword arguments) and checked against the contract.
    - Otherwise ``get(cfg["name"], **rest)``.
    """
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cfg = dict(cfg)
    oracle = cfg.get("eps") == "oracle"
    if oracle:
        if noise_rate is None:
            raise HyperparameterError("eps='oracle' needs the cell's noise_rate: from_config(cfg, noise_rate=...)")
        cfg["eps"] = float(noise_rate)
    try:
        if "_target_" in cfg:
            import hydra.errors
            import hydra.utils

            target = cfg["_target_"]
            cfg.pop("name", None)
            try:
                obj = hydra.utils.instantiate(cfg)
            except hydra.errors.InstantiationException as err:  # surface our own errors unwrapped
                if isinstance(err.__cause__, HyperparameterError):
                    raise err.__cause__ from None
                raise
            loss = check_contract(obj, source=f"_target_ {target!r}")
        else:
            if "name" not in cfg:
                raise HyperparameterError(
                    f"a loss config needs 'name' (one of {', '.join(names())}) or '_target_'; got keys {sorted(cfg)}"
                )
            name = cfg.pop("name")
            loss = get(name, **cfg)
    except HyperparameterError as err:
        if oracle:
            raise HyperparameterError(f"{err} (eps='oracle' resolved to the cell's noise rate {noise_rate!r})") from err
        raise
    if "eps" in cfg:
        try:
            loss.eps_source = "oracle" if oracle else "fixed"
        except (AttributeError, TypeError):  # a user's frozen object: it keeps its own record
            pass
    return loss
