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
- Dr. DPO is batch-level: every per-pair value is the batch loss (``batch_level = True``), see ``DrDPO``;
- SymPO clips each response's reward to ``[-clip, clip]`` (clip 10) as the SymPO code does, see ``SymPO``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bench.core.registry import Registry, UnknownNameError
from bench.core.spec import ConfigError, Param

__all__ = [
    "REGISTRY", "PairLoss", "Param", "HyperparameterError", "LossContractError", "UnknownNameError",
    "get", "names", "from_config", "register", "check_contract", "BETA",
]

REGISTRY: Registry[PairLoss] = Registry("loss")


class HyperparameterError(ConfigError):
    """A hyperparameter is missing, unknown, of the wrong type or out of its valid range."""


class LossContractError(TypeError):
    """A user's loss (plugged in through ``_target_``) lacks part of the loss contract."""


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
    # per-pair inputs beyond log-probs, taken at batch time from the (noisy) pairs' columns, so a flip flips them:
    needs_scores: bool = False  # extras["score_chosen"], extras["score_rejected"]: a scorer's per-response scores
    needs_annotators: bool = False  # extras["annotator_idx"]: the pair's annotator (0 where none is known)
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
            elif p.has_default:
                value = p.default
            else:
                raise HyperparameterError(
                    f"loss {self.name!r}: missing hyperparameter {key!r} (valid: {p.range_text()}). Built-in "
                    f"values live in conf/loss/{self.name}.yaml: use bench.losses.get({self.name!r}, ...)."
                )
            if hasattr(type(self), key):
                raise HyperparameterError(f"loss {self.name!r}: hyperparameter {key!r} shadows an attribute")
            if key == "eps" and value == "oracle":
                raise HyperparameterError(
                    f"loss {self.name!r}: eps='oracle' means the cell's injected noise rate; resolve it with "
                    "bench.losses.from_config(cfg, noise_rate) (get() needs a number)."
                )
            bound[key] = p.check(key, value, where=f"loss {self.name!r}: ", error=HyperparameterError)
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


def register(cls: type[PairLoss]) -> type[PairLoss]:
    """Class decorator: make ``get(cls.name)`` build this loss (values from ``conf/loss/<name>.yaml``)."""
    if not cls.label:
        cls.label = cls.name
    REGISTRY.register(cls.name)(cls)
    return cls


# ----------------------------------------------------------------------------------------------------------------
# entry points


def names() -> list[str]:
    """Registered loss names (each has ``conf/loss/<name>.yaml``)."""
    return REGISTRY.names()


def defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of ``conf/loss/<name>.yaml`` as composed (the registry checks the name first)."""
    from bench.config.compose import group_node
    from bench.core.plugins import options

    REGISTRY.lookup(name)
    return options(group_node("loss", name))


def get(name: str, **hyperparameters: Any) -> PairLoss:
    """The loss ``name`` with its values from ``conf/loss/<name>.yaml`` overridden by ``hyperparameters``."""
    cls = REGISTRY.lookup(name)
    return cls(**{**defaults(name), **hyperparameters})


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
    for attr, value in (("label", getattr(obj, "name", "")), ("batch_level", False), ("needs_scores", False),
                        ("needs_annotators", False), ("eps_source", "fixed" if "eps" in obj.params else None)):
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
    - Otherwise ``get(cfg["name"], **rest)``: keys left out take the values of ``conf/loss/<name>.yaml``.
    """
    from bench.config.typed import plain
    from bench.core.plugins import instantiate, options

    cfg = dict(plain(cfg))
    oracle = cfg.get("eps") == "oracle"
    if oracle:
        if noise_rate is None:
            raise HyperparameterError("eps='oracle' needs the cell's noise_rate: from_config(cfg, noise_rate=...)")
        cfg["eps"] = float(noise_rate)
    try:
        if "_target_" in cfg:
            loss = check_contract(instantiate("loss", cfg), source=f"loss._target_={cfg['_target_']!r}")
        elif "name" in cfg:
            loss = get(cfg["name"], **options(cfg))
        else:
            raise HyperparameterError(
                f"a loss config needs 'name' (one of {', '.join(names())}) or '_target_'; got keys {sorted(cfg)}"
            )
    except HyperparameterError as err:
        if oracle:
            raise HyperparameterError(f"{err} (eps='oracle' resolved to the cell's noise rate {noise_rate!r})") from err
        raise
    if "eps" in options(cfg):
        try:
            loss.eps_source = "oracle" if oracle else "fixed"
        except (AttributeError, TypeError):  # a user's frozen object: it keeps its own record
            pass
    return loss
