"""What each built-in method declares: its options (values: ``conf/method/<name>.yaml``; what of them counts for a
cell's identity) and whether it reads a scorer's scores with them, apart from how it trains (its module imports
TRL, transformers, datasets), so a cell's identity reads them without importing any of that (issue 24). Each
method class says ``Options = <its options>``: they are declared once, here.

Light by contract: this module imports only ``bench.core`` and ``bench.config``. ``bench.methods.KIND`` names each
method's options beside its class; ``tests/test_layout.py`` checks that computing the cell id of every method
loads neither torch nor TRL nor transformers, and that each class's ``Options`` is the one its entry names.
"""
from __future__ import annotations

from typing import Any, ClassVar

from bench.config.schema import RewardModelRecipe
from bench.core.options import COUNT, NONNEGATIVE, POSITIVE, ConfigError, Options, Param, option

__all__ = ["ACTIONS", "BUDGETS", "BUDGET_DOC", "CleanOptions", "CurriculumOptions", "MethodOptions",
           "RMEnsembleOptions", "RopoFullOptions", "SelfPlayOptions", "SubsetOptions"]

ACTIONS = ("remove", "flip", "weight")  # what a cleaner does to the pairs it names (bench.methods.cleaning)
BUDGETS = ("epochs", "steps")
BUDGET_DOC = "epochs: train.epochs passes over the pairs left; steps: the standard cell's optimizer steps"


class MethodOptions(Options):
    """``Method.Options`` (``method=standard``: none). ``needs_scores``: whether the method reads the scorer's
    per-response scores with these values (the method's own ``needs_scores`` is this)."""

    needs_scores: ClassVar[bool] = False


class RopoFullOptions(MethodOptions):
    """``method=ropo_full`` (``bench.methods.ropo_full``: the choices behind each option)."""

    rounds: int = option("training rounds; filtering and rejection sampling happen between them",
                         Param(low=2, integer=True, why="filtering happens between rounds"))
    drop_fraction: float = option("fraction of the original pairs dropped (highest loss) after each round",
                                  Param(low=0.0, high=1.0, low_open=True, high_open=True))
    budget: str = option("matched: the standard cell's steps split over the rounds; per_round: each round gets all",
                         Param(choices=("matched", "per_round")))
    n_candidates: int = option("responses sampled from the current policy per dropped prompt", COUNT)
    include_original: bool = option("also offer the dropped pair's own two responses as candidates")
    accept: str = option("below_cut: keep a replacement only if its loss is at most the filter's cut; always: keep it; "
                         "never: no replacement, the filter alone (an ablation, labelled so)",
                         Param(choices=("below_cut", "always", "never")))
    temperature: float = option("sampling temperature of the candidates", Param(low=0.0, low_open=True))
    top_p: float = option("nucleus mass of the candidates", Param(low=0.0, high=1.0, low_open=True))
    max_new_tokens: int | None = option("candidate length (null: the data's pair length)",
                                        Param(low=1, integer=True, nullable=True))
    score_batch_size: int = option("pairs per forward when scoring pairs and candidates", COUNT, identity=False)
    allow_other_loss: bool = option("run the method with a loss other than ROPO's (an ablation, labelled so)")

    def check(self, where: str) -> None:
        if self.accept != "never" and self.n_candidates < 2 and not self.include_original:
            raise ConfigError(f"{where}.n_candidates={self.n_candidates} is too few; valid: >= 2 to form a "
                              "pair (or include_original=true).")


class CurriculumOptions(MethodOptions):
    """``method=curriculum`` (``bench.methods.curriculum``)."""

    stages: int = option("easy-to-hard stages", Param(low=2, integer=True, why="one stage is method=standard"))
    by: str = option("difficulty: score_gap (the scorer's margin as labelled) or ref_margin (the reference's)",
                     Param(choices=("score_gap", "ref_margin")))
    reset_reference: bool = option("each later stage uses the policy it starts from as its reference")
    budget: str = option("matched: the standard cell's steps split over the stages; per_stage: each its own budget",
                         Param(choices=("matched", "per_stage")))
    score_batch_size: int = option("pairs per forward when re-computing reference log-probs", COUNT, identity=False)

    @property
    def needs_scores(self) -> bool:  # the scorer's margin orders the pairs
        return self.by == "score_gap"


class RMEnsembleOptions(MethodOptions):
    """``method=rm_ensemble`` (``bench.methods.rm_ensemble``)."""

    k: int = option("reward models in the ensemble", Param(low=2, integer=True, why="an ensemble of one is no ensemble"))
    combine: str = option("mean, worst_case (min over members) or uncertainty (mean - coeff * variance)",
                          Param(choices=("mean", "worst_case", "uncertainty")))
    coeff: float = option("the variance's weight for combine=uncertainty", NONNEGATIVE)
    action: str = option("what happens to disputed pairs: drop, relabel, or weight (every pair)",
                         Param(choices=("drop", "relabel", "weight")))
    threshold: float = option("a pair is disputed when its combined margin is below this", Param())
    temperature: float = option("action=weight: each pair weighs sigmoid(margin / temperature)", POSITIVE)
    rm: RewardModelRecipe = option("each member's recipe (evaluator/reward_model's; method.rm.train.max_steps, ...)")

    def check(self, where: str) -> None:
        if self.rm.path != "embedded":
            raise ConfigError(f"{where}.rm.path: the ensemble trains its own members; valid: embedded")


class SelfPlayOptions(MethodOptions):
    """``method=self_play`` (``bench.methods.self_play``): the scorer judges the policy's own samples."""

    needs_scores: ClassVar[bool] = True

    rounds: int = option("training rounds: the offline pairs, then rounds - 1 on the policy's own samples",
                         Param(low=2, integer=True, why="round 1 is method=standard"))
    n_samples: int = option("responses sampled per prompt; the best and worst under the scorer form its pair",
                            Param(low=2, integer=True))
    reference: str = option("round: each round's reference is the policy it starts from (SPPO); initial: the start",
                            Param(choices=("round", "initial")))
    budget: str = option("matched: the standard cell's steps split over the rounds; per_round: each round gets all",
                         Param(choices=("matched", "per_round")))
    temperature: float = option("sampling temperature", Param(low=0.0, low_open=True))
    top_p: float = option("nucleus mass", Param(low=0.0, high=1.0, low_open=True))
    max_new_tokens: int | None = option("sample length (null: the data's pair length)",
                                        Param(low=1, integer=True, nullable=True))
    score_batch_size: int = option("pairs per forward when computing reference log-probs", COUNT, identity=False)


class CleanOptions(MethodOptions):
    """``method=clean`` (``bench.methods.clean``; its detector is built, and checked, by the method)."""

    detector: Any = option("which pairs look mislabelled: oracle, random, rm_margin, rm_ensemble, ref_margin, "
                           "small_loss (bench.methods.detectors), or a detector of your own (its class path, or a "
                           "{_target_: ..., options} node)")
    action: str = option("what happens to the named pairs: remove, flip, or weight (named_weight each)",
                         Param(choices=ACTIONS))
    fraction: float | None = option("share of the pairs named (null: the cell's noise rate, as its injector states it)",
                                    Param(low=0.0, high=1.0, nullable=True))
    budget: str = option(BUDGET_DOC, Param(choices=BUDGETS))
    named_weight: float = option("action=weight: each named pair's weight (the others weigh 1)", NONNEGATIVE)
    warmup_epochs: float = option("detector=small_loss: the warm-up pass over the noisy pairs", POSITIVE)
    k: int = option("detector=rm_ensemble: reward models in the ensemble", Param(low=2, integer=True))
    combine: str = option("detector=rm_ensemble: mean, worst_case or uncertainty",
                          Param(choices=("mean", "worst_case", "uncertainty")))
    coeff: float = option("detector=rm_ensemble, combine=uncertainty: the variance's weight", NONNEGATIVE)
    rm: RewardModelRecipe = option("detector=rm_ensemble: each member's recipe (evaluator/reward_model's)")
    score_batch_size: int = option("pairs per forward when scoring pairs (small_loss)", COUNT, identity=False)


class SubsetOptions(MethodOptions):
    """``method=subset`` (``bench.methods.clean``)."""

    keep: float = option("share of the pairs kept, drawn at random (seeded by the cell's seed)",
                         Param(low=0.0, high=1.0, low_open=True))
    budget: str = option(BUDGET_DOC, Param(choices=BUDGETS))
