"""What each built-in loss declares: its hyperparameters (``Options``) and whether it reads a scorer's scores, apart
from how it computes (``classic``, ``robust``, ``seed``, ``scored``: torch), so a cell's identity reads them without
importing torch (issue 24). Each loss class says ``Options = <its options>``: they are declared once, here.

Light by contract: this module imports only ``bench.core`` (and ``bench.config``). ``bench.losses.KIND`` names each
loss's options beside its class; ``tests/test_layout.py`` checks that computing the cell id of every loss loads no
torch, and that each class's ``Options`` is the one its entry names.
"""
from __future__ import annotations

from typing import Any, ClassVar

from bench.core.options import NONNEGATIVE, POSITIVE, ConfigError, Options, Param, option

__all__ = [
    "BETA", "F_DIVERGENCES", "ORACLE", "ASFTOptions", "AnchoredOptions", "CDPOOptions", "DADPOOptions",
    "DrDPOOptions", "FDPOOptions", "Hyperparameters", "IPOOptions", "LossOptions", "MADPOOptions", "NCDPOOptions",
    "RDPOOptions", "ROPOOptions", "SPPOOptions", "SimPOOptions", "SmDPOOptions", "SymPOOptions", "UDPOOptions",
    "with_oracle_eps",
]

BETA = Param(low=0.0, low_open=True, why="beta scales the log-ratios; it must be positive")
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js", "alpha")
ORACLE = "oracle"  # ``eps: oracle``: the flip rate the cell's injector states


class Hyperparameters(Options):
    """A loss's options: its hyperparameters (every one of them determines the result). ``needs_scores``: whether
    the loss reads a scorer's per-response scores with these values (the loss's own ``needs_scores`` is this)."""

    word = "hyperparameter"
    needs_scores: ClassVar[bool] = False


class LossOptions(Hyperparameters):
    """``PairLoss.Options``: beta (DPO, hinge: nothing else), which most losses extend."""

    beta: float = option("the scale of the log-ratios", BETA)


def with_oracle_eps(options: dict, head: str, noise_rate: float | None = None, **context: Any) -> dict:
    """``eps: oracle`` becomes ``noise_rate`` (the flip rate the cell's injector states); a ``ConfigError`` where
    none is given. Other options as they are (``PairLoss.from_options``, ``bench.losses.KIND.checked_options``)."""
    if options.get("eps") != ORACLE:
        return options
    if noise_rate is None:
        raise ConfigError(f"{head}: eps='oracle' means the cell's injected noise rate, and none is given: "
                          "bench.losses.from_config(cfg, noise_rate=...) (get() needs a number).")
    return {**options, "eps": float(noise_rate)}


# ------------------------------------------------------------------------------------------------ classic
class IPOOptions(Hyperparameters):  # no beta: tau alone
    tau: float = option("the target margin is 1/(2 tau)", POSITIVE)


class SimPOOptions(LossOptions):
    gamma: float = option("gamma is the target reward margin, absolute: gamma = gamma_beta_ratio * beta",
                          NONNEGATIVE)


# ------------------------------------------------------------------------------------------------ robust
class CDPOOptions(LossOptions):
    eps: float = option("eps is the assumed label-flip rate; above 0.5 flip the labels instead",
                        Param(low=0.0, high=0.5))


class RDPOOptions(LossOptions):
    eps: float = option("rDPO divides by 1 - 2*eps, which vanishes at 0.5 and flips the loss's sign beyond",
                        Param(low=0.0, high=0.5, high_open=True))


class ROPOOptions(LossOptions):
    alpha: float = option("the paper requires alpha > 2", POSITIVE)


class DrDPOOptions(LossOptions):
    beta_prime: float = option("beta' is a temperature", POSITIVE)


class SymPOOptions(LossOptions):
    variant: str = option("sigmoid: sigma(-z); ramp: clip(0.5 - 0.5 z, 0, 1)", Param(choices=("sigmoid", "ramp")))
    clip: float | None = option("per-response reward clip, null for none",
                                Param(low=0.0, low_open=True, nullable=True))


class UDPOOptions(LossOptions):
    eps: float = option("c = eps/(1-eps) must be < 1; at 0.5 the loss is flat", Param(low=0.0, high=0.5,
                                                                                          high_open=True))


# ------------------------------------------------------------------------------------------------ seed
class FDPOOptions(LossOptions):
    divergence: str = option("the f-divergence: reverse_kl (DPO), forward_kl, js or alpha",
                             Param(choices=F_DIVERGENCES))
    alpha: float = option("the paper's alpha in (0, 1)", Param(low=0.0, high=1.0, low_open=True, high_open=True))


class AnchoredOptions(LossOptions):
    alpha: float = option("the weight of the chosen response's NLL", NONNEGATIVE)
    reference_free: bool = option("drop the reference from the margin (Triple PO)", Param(choices=(True, False)))


class ASFTOptions(Hyperparameters):
    lam: float = option("the weight of the odds terms", NONNEGATIVE)


class NCDPOOptions(LossOptions):
    eps_init: float = option("the flip rate it starts from", Param(low=0.0, high=0.5, low_open=True,
                                                                   high_open=True))
    eps_lr: float = option("Adam step size of the flip rate's logit", NONNEGATIVE)
    per_annotator: bool = option("one rate per annotator (the pairs carry annotator ids)",
                                 Param(choices=(True, False)))


# ------------------------------------------------------------------------------------------------ scored
class SPPOOptions(LossOptions):
    variant: str = option("hard (TRL's sppo_hard) or single (the scorer as a preference model)",
                          Param(choices=("hard", "single")))

    @property
    def needs_scores(self) -> bool:  # the single variant's target is the scorer's win rate
        return self.variant == "single"


class MADPOOptions(LossOptions):
    needs_scores: ClassVar[bool] = True

    c_max: float = option("the largest scale of an agreeing pair's margin", Param(low=1.0, low_open=True))
    c_min: float = option("the smallest scale, of a disputed pair's margin", Param(low=0.0, high=1.0,
                                                                                    high_open=True))
    lam: float = option("the steepness of the scale's transition", POSITIVE)
    tau: float = option("the margin where the scale turns", POSITIVE)
    reset: bool = option("strong disagreement (m <= -tau) resets the weight to 1", Param(choices=(True, False)))


class SmDPOOptions(LossOptions):
    needs_scores: ClassVar[bool] = True

    temperature: float = option("p = sigma(m / temperature)", POSITIVE)
    variant: str = option("smpo (a signed scale) or brain (a soft label)", Param(choices=("smpo", "brain")))


class DADPOOptions(LossOptions):
    needs_scores: ClassVar[bool] = True

    a_db: float = option("the difficulty scale of beta", POSITIVE)
