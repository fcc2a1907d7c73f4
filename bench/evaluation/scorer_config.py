"""What a cell's scorer is (``cfg.scorer``, typed), checked at start-up, and whether anything reads it: the part of
``bench.evaluation.scorer`` that a cell's identity and its start-up check need, light (no torch, no model code).
"""
from __future__ import annotations

from bench.config.schema import EMBEDDED, RewardModelRecipe
from bench.core.options import ConfigError, Options, check_options, did_you_mean, option

KINDS = {
    "none": "no per-response scores",
    "proxy": "realistic: embedded reward model trained on the reward-model split noised by the cell's injector",
    "oracle": "oracle: embedded reward model trained on the clean reward-model split",
    "rm": "the reward model at scorer.rm.path",
}
SCORE_COLUMNS = ("score_chosen", "score_rejected")
WHERE = "scorer.rm"


class ScorerConfig(Options):
    """``cfg.scorer``: which scorer, and its reward model's recipe (what of it counts for a cell's identity is the
    recipe's own rule: ``bench.config.schema.RewardModelRecipe``)."""

    name: str = option("none, proxy (realistic), oracle or rm (scorer.rm.path)")
    rm: RewardModelRecipe | None = option("the reward model's recipe (conf/evaluator/reward_model.yaml)", default=None)

    def check(self, where: str) -> None:
        if self.name not in KINDS:
            raise ConfigError(f"scorer.name: {did_you_mean('scorer', self.name, list(KINDS))}")
        if self.name != "none" and self.rm is None:
            raise ConfigError(f"scorer={self.name} has no `rm` node; valid: a scorer config from conf/scorer/")


def check(node: dict | None, data_kind: str) -> ScorerConfig:
    """Start-up check of ``cfg.scorer`` (before any data): the kind, the reward model's path, the data it needs."""
    node = dict(node or {"name": "none"})
    cfg = check_options(ScorerConfig, node, "scorer")
    if cfg.name in ("proxy", "oracle"):
        if cfg.rm.path != EMBEDDED:
            raise ConfigError(f"scorer.rm.path={cfg.rm.path!r} with scorer={cfg.name}: the {cfg.name} scorer is the "
                              "embedded reward model; valid: embedded (or scorer=rm for a reward model of your own)")
        if data_kind != "world":
            raise ConfigError(f"scorer={cfg.name} trains the embedded reward model on the world's reward-model split; "
                              f"with data={data_kind} valid: scorer=rm scorer.rm.path=<a reward-model folder>")
    elif cfg.name == "rm" and cfg.rm.path in (None, "", "???", EMBEDDED):
        raise ConfigError(f"scorer.rm.path={cfg.rm.path!r}: scorer=rm needs a reward-model folder (a sequence-"
                          "classification model with one output logit); for the embedded one use scorer=proxy or "
                          "scorer=oracle")
    return cfg


def reads_scores(loss, method) -> bool:
    return bool(getattr(loss, "needs_scores", False) or getattr(method, "needs_scores", False))


def check_needed(cfg: ScorerConfig, loss, method) -> None:
    """A loss or method that reads scores with no scorer is an error naming what to set."""
    if cfg.name != "none" or not reads_scores(loss, method):
        return
    who = f"loss={loss.name}" if getattr(loss, "needs_scores", False) else f"method={method.name}"
    raise ConfigError(f"scorer=none, but {who} reads per-response scores; valid: scorer=proxy (realistic: a reward "
                      "model trained on noisy labels), scorer=oracle (clean labels, an upper bound) or scorer=rm "
                      "scorer.rm.path=<folder>")
