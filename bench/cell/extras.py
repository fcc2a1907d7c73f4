"""The per-pair inputs a cell's loss or method reads beside the text (``bench.training.trainer.EXTRA_COLUMNS``).

- scores: the scorer's ``score_chosen``/``score_rejected``, added to the clean pairs before the noise, so a flip
  swaps them with the responses (``bench.evaluation.scorer``);
- annotators: ``annotator_idx``, the index of each pair's annotator (``noise=annotator_biased``'s ``annotator``
  column, or the data's), for a loss that learns one flip rate per annotator (``ncdpo per_annotator=true``);
- label confidences: ``label_confidence`` (``noise=tie``, ``natural``'s majority vote), for a loss that takes soft
  labels (cDPO's per-pair eps), which ``bench.cell.noising.training_pairs`` turns on where a pair's is below 1.
"""
from __future__ import annotations

from bench.core.options import ConfigError
from bench.evaluation import scorer as scoring


def columns(loss, method) -> tuple[str, ...]:
    """The extra columns the trainer must carry into each batch for this loss and method."""
    out = list(scoring.SCORE_COLUMNS) if getattr(loss, "needs_scores", False) else []
    if getattr(loss, "needs_annotators", False):
        out.append("annotator_idx")
    if getattr(loss, "reads_label_confidence", False):
        out.append("label_confidence")
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
    scorer = scoring.load_scorer(parts.scorer, data, noise_node, parts.run.seed, cache_root)
    return scoring.add_scores(data.train, scorer, data.fingerprint, cache_root), scorer


def with_annotators(noisy, loss):
    """``annotator_idx`` for a per-annotator loss (names sorted; the loss learns one rate per name)."""
    if not getattr(loss, "needs_annotators", False):
        return noisy
    names = sorted(set(noisy["annotator"]))
    loss.set_annotators(names)
    index = {n: i for i, n in enumerate(names)}
    return noisy.add_column("annotator_idx", [index[a] for a in noisy["annotator"]])
