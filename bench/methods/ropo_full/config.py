"""``method=ropo_full``'s settings (values: ``conf/method/ropo_full.yaml``), how its budget splits over rounds,
and which losses it runs with."""
from __future__ import annotations

import warnings

from bench.core.options import COUNT, ConfigError, Options, Param, option
from bench.methods.stages import split_steps, total_steps

LABEL = "ROPO (full method)"


class RopoFullOptions(Options):
    rounds: int = option("training rounds; filtering and rejection sampling happen between them",
                       Param(low=2, integer=True, why="filtering happens between rounds"))
    drop_fraction: float = option("fraction of the original pairs dropped (highest loss) after each round",
                                Param(low=0.0, high=1.0, low_open=True, high_open=True))
    budget: str = option("matched: the standard cell's steps split over the rounds; per_round: each round gets all",
                       Param(choices=("matched", "per_round")))
    n_candidates: int = option("responses sampled from the current policy per dropped prompt", COUNT)
    include_original: bool = option("also offer the dropped pair's own two responses as candidates")
    accept: str = option("below_cut: keep a replacement only if its loss is at most the filter's cut; always: keep it",
                       Param(choices=("below_cut", "always")))
    temperature: float = option("sampling temperature of the candidates", Param(low=0.0, low_open=True))
    top_p: float = option("nucleus mass of the candidates", Param(low=0.0, high=1.0, low_open=True))
    max_new_tokens: int | None = option("candidate length (null: the data's pair length)",
                                         Param(low=1, integer=True, nullable=True))
    score_batch_size: int = option("pairs per forward when scoring pairs and candidates", COUNT, identity=False)
    allow_other_loss: bool = option("run the method with a loss other than ROPO's (an ablation, labelled so)")

    def check(self, where: str) -> None:
        if self.n_candidates < 2 and not self.include_original:
            raise ConfigError(f"{where}.n_candidates={self.n_candidates} is too few; valid: >= 2 to form a "
                                    "pair (or include_original=true).")


def round_steps(cfg: RopoFullOptions, train, n_pairs: int) -> list[int]:
    """Optimizer steps of each round (choice 3 in ``bench.methods.ropo_full``); ``train`` is the TrainConfig."""
    total = total_steps(train, n_pairs)
    if cfg.budget == "per_round":
        return [total] * cfg.rounds
    return split_steps(total, [1] * cfg.rounds, "method=ropo_full", "method.budget=per_round")


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
        return LABEL
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
    return f"ROPO full method ({getattr(loss, 'label', loss.name)})"
