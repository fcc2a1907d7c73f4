"""The per-pair inputs a cell's loss or method reads beside the text (``bench.training.trainer.EXTRA_COLUMNS``).

- scores: the scorer's ``score_chosen``/``score_rejected``, added to the clean pairs before the noise, so a flip
  swaps them with the responses (``bench.evaluation.scorer``);
- annotators: ``annotator_idx``, the index of each pair's annotator (``noise=annotator_biased``'s ``annotator``
  column, or the data's), for a loss that learns one flip rate per annotator (``ncdpo per_annotator=true``);
- label confidences: ``label_confidence`` (``noise=tie``, ``natural``'s majority vote), for a loss that takes soft
  labels (cDPO's per-pair eps); ``training_pairs`` leaves out skipped pairs, and ties for the other losses.
"""
from __future__ import annotations

import numpy as np

import noise
from bench.core.cache import stable_hash
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


def training_pairs(noisy, loss):
    """(the pairs the cell trains on, what became of the others for the record, a key of which rows those are or
    None when they are all of them).

    Skipped pairs (``keep`` False: ``noise=skip``) are left out; so are ties (``label_confidence`` 0.5: ``tie``,
    ``natural``) unless the loss takes soft labels (``soft_labels``: cDPO), which is then told to read them. The
    rows left are a plain subset: the method trains on it as it would on any data, and the shared reference
    log-probs are cached for that subset under its own key (``bench.cell.run``), so every cache entry holds the
    pairs it was computed for.
    """
    soft = bool(getattr(loss, "soft_labels", False))
    rows, used = noise.training_rows(noisy, soft)
    if soft and "label_confidence" in noisy.column_names and (np.asarray(noisy["label_confidence"]) < 1).any():
        loss.read_label_confidence(True)
    if rows.all():
        return noisy, used, None
    kept = np.flatnonzero(rows)
    if len(kept) == 0:
        raise ConfigError(f"the noise left no pair to train on: all {len(noisy)} were skipped or tied; valid: a "
                          "lower noise.rate or noise.threshold, or a loss that trains on ties (loss=cdpo)")
    return noisy.select(kept.tolist()), used, stable_hash(kept.tolist())
