"""``method=ropo_full``'s settings (``RopoFullOptions``, declared in the light ``bench.methods.options``; values:
``conf/method/ropo_full.yaml``), how its budget splits over rounds, and which losses it runs with."""
from __future__ import annotations

import warnings

from bench.core.options import ConfigError
from bench.methods.options import RopoFullOptions
from bench.methods.stages import split_steps, steps_per_epoch, total_steps

LABEL = "ROPO (full method)"
FILTER_ONLY = "ROPO (filter only)"  # accept=never: the rounds and the filter, no rejection sampling


def round_steps(cfg: RopoFullOptions, train, n_pairs: int) -> list[int]:
    """Optimizer steps of each round (choice 3 in ``bench.methods.ropo_full``); ``train`` is the TrainConfig. Warns
    when a round is shorter than one pass over the pairs: each round reshuffles, so some pairs are never trained on
    (with 3 rounds of a third of a pass, about (2/3)^3 = 30% of them), which the standard cell does not do."""
    total = total_steps(train, n_pairs)
    if cfg.budget == "per_round":
        return [total] * cfg.rounds
    steps = split_steps(total, [1] * cfg.rounds, "method=ropo_full", "method.budget=per_round")
    one_pass = steps_per_epoch(train, n_pairs)
    if min(steps) < one_pass:
        warnings.warn(
            f"method=ropo_full: a round is {min(steps) / one_pass:.2f} of a pass over the {n_pairs} pairs "
            f"(method.budget=matched splits {total} steps over {cfg.rounds} rounds, each reshuffled), so some pairs "
            f"are never trained on, unlike the standard cell; train.epochs >= {cfg.rounds} or "
            "method.budget=per_round gives each round a whole pass", stacklevel=2)
    return steps


def check_loss(loss, cfg: RopoFullOptions) -> str:
    """The result label; raises for losses the method cannot use."""
    if getattr(loss, "batch_level", False):
        raise ConfigError(
            f"method=ropo_full ranks pairs by their loss; loss={loss.name!r} is batch-level (its per-pair values are "
            "the batch loss) and cannot rank pairs. Use loss=ropo."
        )
    if getattr(loss, "uses_extras", False):
        raise ConfigError(
            f"method=ropo_full ranks pairs and its new candidates by their loss; loss={loss.name!r} reads per-pair "
            "scores or annotators, which sampled candidates do not have. Use loss=ropo."
        )
    if loss.name == "ropo":
        return FILTER_ONLY if cfg.accept == "never" else LABEL
    if not cfg.allow_other_loss:
        raise ConfigError(
            f"method=ropo_full is ROPO's method and uses ROPO's loss (its bounded gradient is what makes flipped "
            f"pairs stand out by loss); got loss={loss.name!r}. Use loss=ropo, or set method.allow_other_loss=true "
            "to run the rounds, filter and rejection sampling with another loss (an ablation, labelled as such)."
        )
    warnings.warn(
        f"method=ropo_full with loss={loss.name!r}: an ablation of ROPO's method with another loss, not the paper's "
        "method", stacklevel=2,
    )
    what = "filter only" if cfg.accept == "never" else "full method"
    return f"ROPO {what} ({getattr(loss, 'label', loss.name)})"
