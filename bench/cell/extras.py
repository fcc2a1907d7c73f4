"""The per-pair inputs a cell's loss or method reads beside the text (``bench.training.trainer.EXTRA_COLUMNS``).

- scores: the scorer's ``score_chosen``/``score_rejected``, added to the clean pairs before the noise, so a flip
  swaps them with the responses (``bench.evaluation.scorer``);
- annotators: ``annotator_idx``, the index of each pair's annotator (``noise=annotator_biased``'s ``annotator``
  column, or the data's), for a loss that learns one flip rate per annotator (``ncdpo per_annotator=true``).
"""
from __future__ import annotations

from bench.core.spec import ConfigError
from bench.evaluation import scorer as scoring


def columns(loss, method) -> tuple[str, ...]:
    """The extra columns the trainer must carry into each batch for this loss and method."""
    out = list(scoring.SCORE_COLUMNS) if getattr(loss, "needs_scores", False) else []
    if getattr(loss, "needs_annotators", False):
        out.append("annotator_idx")
    return tuple(out) + tuple(getattr(method, "extra_columns", ()))


def check_annotators(loss, injector) -> None:
    """Start-up check: a per-annotator loss needs pairs that carry annotator ids."""
    if getattr(loss, "needs_annotators", False) and getattr(injector, "name", None) != "annotator_biased":
        raise ConfigError(f"loss={loss.name} learns one rate per annotator, but noise={getattr(injector, 'name', '?')} "
                          "gives the pairs no annotator ids; valid: noise=annotator_biased (its `annotator` column, "
                          "or the data's with noise.annotator_column), or loss.per_annotator=false")


def with_scores(parts, data, noise_node: dict, cache_root):
    """(training pairs with their scores, the scorer) or (the pairs as they are, None) when nothing reads scores."""
    if parts.scorer is None or parts.scorer.name == "none":
        return data.train, None
    scorer = scoring.load(parts.scorer, data, noise_node, parts.run.seed, cache_root)
    return scoring.add_scores(data.train, scorer, data.fingerprint, cache_root), scorer


def with_annotators(noisy, loss):
    """``annotator_idx`` for a per-annotator loss (names sorted; the loss learns one rate per name)."""
    if not getattr(loss, "needs_annotators", False):
        return noisy
    names = sorted(set(noisy["annotator"]))
    loss.set_annotators(names)
    index = {n: i for i, n in enumerate(names)}
    return noisy.add_column("annotator_idx", [index[a] for a in noisy["annotator"]])


def learned_vs_injected(loss, noise_stats: dict) -> dict:
    """What the loss learned (``ncdpo``: flip rates) beside the rates the injector realized, for the record."""
    learned = loss.learned() if callable(getattr(loss, "learned", None)) else {}
    if not learned:
        return {}
    out = {"learned": learned, "injected": {"overall": noise_stats.get("realized_rate")}}
    for key, value in noise_stats.items():
        if key.startswith("rate_annotator_") and not key.endswith("_targeted"):
            out["injected"][key.removeprefix("rate_annotator_")] = value
    return out
