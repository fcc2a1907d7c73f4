"""A cell's noise phase: the injector flips the training pairs (its mask saved beside the record), the pairs the
cell trains on are chosen from them, and what the loss learned of the noise is set against what was injected.

- ``inject``: the noisy pairs, the ones trained on, which rows those are, and the noise's figures for the record;
- ``training_pairs``: skipped pairs left out, and ties unless the loss takes soft labels;
- ``learned_vs_injected``: a loss's learned flip rates (``ncdpo``) beside the rates the injector realized.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import noise
from bench.cell import extras
from bench.core.cache import stable_hash
from bench.core.options import ConfigError


def inject(parts, train, cell_dir: Path):
    """(the noisy pairs, every row; the pairs the cell trains on; a key of which rows those are, None for all of them;
    the noise's record). Skipped pairs, and ties for a loss without soft labels, are not trained on
    (``training_pairs``); the record says how many. ``parts``: the cell's ``bench.cell.parts.Parts``."""
    noisy = parts.injector(train)
    noise_stats = parts.injector.summary(noisy)
    noise.save_mask(noisy, cell_dir / "flip_mask.json")
    noisy = extras.with_annotators(noisy, parts.loss)
    trained, used, rows_key = training_pairs(noisy, parts.loss)
    return noisy, trained, rows_key, {**noise_stats, **used}


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
