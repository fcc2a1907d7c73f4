"""``annotator_biased``: a pool of simulated annotators; each pair is labelled by one of them.

Kinds (each pool entry has a ``kind`` and a ``share``; optional keys override the kind's defaults):

=============  ==================================================================  ==========================
kind           flip propensity of a pair it labels                                 defaults
=============  ==================================================================  ==========================
reliable       ``error_rate``                                                      error_rate 0.05
careless       ``error_rate``                                                      error_rate 0.3
biased         ``bias_rate`` where its ``feature`` favours the rejected response,  bias_rate 0.8,
               ``error_rate`` elsewhere. ``feature: length`` = more words;         error_rate 0.05,
               ``feature: topic_word`` = contains ``topic_word`` (whole word,      feature length
               any case) while the chosen response does not.
adversarial    ``error_rate`` (flips most labels on purpose)                       error_rate 0.9
=============  ==================================================================  ==========================

Scaling to the target rate. The propensities ``p_i`` say how the pool behaves on its own; its natural rate is
their mean. To hit ``round(rate * n)`` flips exactly, every pair's log-odds is shifted by one calibrated constant
``b`` (``sigmoid(logit(p_i) + b)``), then exactly that many pairs are drawn with those probabilities. Why log-odds:
the order of the annotators is kept at every rate (reliable < careless < adversarial), no probability leaves
(0, 1), and when ``rate`` equals the natural rate (``b = 0``) each annotator flips at its configured rate.
Propensities of exactly 0 or 1 are treated as 1e-6 and 1 - 1e-6, so every rate in [0, 1] stays reachable.

Assignment. Shares are normalized; pairs are dealt to annotators in exact proportion (largest remainder) in a
seeded random order. With ``annotator_column`` set, the dataset's real annotator ids are used instead: each id is
given a pool profile, from ``annotator_profiles`` ({id: pool entry name}) where listed, otherwise dealt to the
pool entries by share over the ids (seeded). The ``annotator`` column then holds the real ids.

Summary: ``rate_annotator_<a>`` / ``share_annotator_<a>`` per annotator, ``rate_kind_<kind>`` per kind,
``rate_annotator_<a>_targeted`` for biased annotators (rate where their feature favours the rejected response),
``expected_rate_annotator_<a>`` (the calibrated probability), ``pool_natural_rate`` and ``logit_shift``.
"""
from __future__ import annotations

import numbers
import re
from typing import Any

import numpy as np

from bench.core.options import ConfigError, did_you_mean, option
from noise.base import Injector, calibrate_shift, column, logit, sample_exact, sigmoid, texts, word_count

KINDS = {
    "reliable": {"error_rate": 0.05},
    "careless": {"error_rate": 0.3},
    "biased": {"error_rate": 0.05, "bias_rate": 0.8, "feature": "length", "topic_word": None},
    "adversarial": {"error_rate": 0.9},
}
FEATURES = ("length", "topic_word")
_EPS = 1e-6


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``shares`` (Hamilton's method)."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


class AnnotatorBiased(Injector):
    name = "annotator_biased"

    class Options(Injector.Options):
        annotators: Any = option("the pool {annotator name: {kind, share, ...}} (see the module docstring)")
        annotator_column: Any = option("the data's column of real annotator ids (null: simulated annotators)")
        annotator_profiles: Any = option("{real annotator id: pool entry name} (null: dealt to the pool by share)")

    def validate(self) -> None:
        super().validate()
        pool = self.annotators
        if not isinstance(pool, dict) or not pool:
            raise ConfigError("noise.annotators must be a non-empty mapping {annotator name: {kind, share, ...}}")
        self.adds_annotator = self.annotator_column != "annotator"
        self.pool = {}
        for name, entry in pool.items():
            where = f"noise.annotators.{name}"
            if not isinstance(entry, dict) or "kind" not in entry:
                raise ConfigError(f"{where} must be a mapping with a 'kind' (one of {', '.join(KINDS)})")
            if entry["kind"] not in KINDS:
                raise ConfigError(f"{where}.kind: " + did_you_mean("annotator kind", entry["kind"], list(KINDS)))
            allowed = ["kind", "share", *KINDS[entry["kind"]]]
            for key in entry:
                if key not in allowed:
                    raise ConfigError(f"{where}: " + did_you_mean(f"key for a {entry['kind']} annotator", key, allowed))
            full = {"share": None, **KINDS[entry["kind"]], **entry}
            s = full["share"]
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not s > 0:
                raise ConfigError(f"{where}.share must be a number > 0 (shares are normalized), got {s!r}")
            for key in ("error_rate", "bias_rate"):
                v = full.get(key, 0.0)
                if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v <= 1:
                    raise ConfigError(f"{where}.{key} must be a probability in [0, 1], got {v!r}")
            if full["kind"] == "biased":
                if full["feature"] not in FEATURES:
                    raise ConfigError(f"{where}.feature must be one of {', '.join(FEATURES)}, got {full['feature']!r}")
                word = full["topic_word"]
                if full["feature"] == "topic_word" and not (isinstance(word, str) and word.strip()):
                    raise ConfigError(f"{where}.topic_word must be a non-empty word when feature is topic_word")
            self.pool[str(name)] = full
        profiles = self.annotator_profiles or {}
        for aid, prof in profiles.items():
            if prof not in self.pool:
                raise ConfigError(
                    f"noise.annotator_profiles.{aid}: " + did_you_mean("pool annotator", prof, list(self.pool))
                )

    def _favours_rejected(self, entry: dict, ds, lens: tuple) -> np.ndarray:
        if entry["feature"] == "length":
            return lens[1] > lens[0]
        pat = re.compile(rf"\b{re.escape(entry['topic_word'].strip())}\b", re.IGNORECASE)
        has_c = np.fromiter((bool(pat.search(t)) for t in texts(ds, "chosen")), bool, len(ds))
        has_r = np.fromiter((bool(pat.search(t)) for t in texts(ds, "rejected")), bool, len(ds))
        return has_r & ~has_c

    def _features(self, ds):
        col = self.annotator_column
        if col is not None and col not in ds.column_names:
            raise ConfigError(
                f"noise.annotator_column={col!r}: the dataset has no such column (it has {ds.column_names}); "
                "set noise.annotator_column=null to simulate annotators"
            )
        if col != "annotator" and "annotator" in ds.column_names:
            raise ConfigError(
                "the dataset already has an 'annotator' column: set noise.annotator_column=annotator to use those "
                "real annotator ids, or drop the column to simulate annotators"
            )
        lens = (word_count(texts(ds, "chosen")), word_count(texts(ds, "rejected")))
        feats = {"n": np.arange(len(ds))}
        for name, entry in self.pool.items():
            if entry["kind"] == "biased":
                feats[f"favours_rejected:{name}"] = self._favours_rejected(entry, ds, lens)
        if col is not None:
            ids = column(ds, col)
            for i, v in enumerate(ids):
                if v is None or (isinstance(v, str) and not v.strip()):
                    raise ConfigError(f"noise.annotator_column={col!r}: no annotator id at row {i}")
            feats["ids"] = np.asarray([str(v) for v in ids], dtype=object)
        return feats

    def _assign(self, feats, rng) -> tuple[np.ndarray, np.ndarray | None]:
        """Pool profile of every pair, and the real ids (None when simulated)."""
        names = list(self.pool)
        shares = np.array([self.pool[a]["share"] for a in names], dtype=float)
        n = len(feats["n"])
        if "ids" not in feats:
            prof = np.repeat(np.array(names, dtype=object), _largest_remainder(n, shares))
            return prof[rng.permutation(n)], None
        ids = feats["ids"]
        given = {str(k): v for k, v in (self.annotator_profiles or {}).items()}
        free = np.array(sorted(set(ids) - set(given)), dtype=object)
        dealt = np.repeat(np.array(names, dtype=object), _largest_remainder(len(free), shares))
        mapping = {**dict(zip(free[rng.permutation(len(free))], dealt)), **given}
        return np.array([mapping[i] for i in ids], dtype=object), ids

    def _choose(self, feats, k, rng):
        prof, ids = self._assign(feats, rng)
        p = np.empty(len(prof))
        for name, entry in self.pool.items():
            rows = prof == name
            p[rows] = entry["error_rate"]
            if entry["kind"] == "biased":
                target = rows & feats[f"favours_rejected:{name}"]
                p[target] = entry["bias_rate"]
        p = np.clip(p, _EPS, 1 - _EPS)
        n = len(p)
        shift, probs = 0.0, p
        if 0 < k < n:
            shift = calibrate_shift(logit(p), k)
            probs = sigmoid(logit(p) + shift)
            mask = sample_exact(rng, probs, k)
        else:
            mask = np.full(n, k == n)
            probs = mask.astype(float)
        col = self.annotator_column
        out = None if col == "annotator" else (prof if ids is None else ids)
        calib = {"logit_shift": shift, "pool_natural_rate": float(p.mean()), "_profile": prof, "_probs": probs}
        return mask, out, calib

    def _summary(self, mask, annotator, feats, calib):
        stats = {k: v for k, v in calib.items() if not k.startswith("_")}
        if annotator is not None:
            for a in sorted(set(annotator)):
                rows = annotator == a
                stats[f"rate_annotator_{a}"] = float(mask[rows].mean())
                stats[f"share_annotator_{a}"] = float(rows.mean())
        prof = calib.get("_profile", annotator if self.annotator_column is None else None)
        if prof is None:
            return stats
        for kind in KINDS:
            of_kind = {a for a, s in self.pool.items() if s["kind"] == kind}
            rows = np.fromiter((a in of_kind for a in prof), bool, len(prof))
            if rows.any():
                stats[f"rate_kind_{kind}"] = float(mask[rows].mean())
        for name, entry in self.pool.items():
            rows = prof == name
            if "ids" in feats and rows.any():  # real ids: per-profile rates too
                stats[f"rate_profile_{name}"] = float(mask[rows].mean())
            if entry["kind"] == "biased":
                target = rows & feats[f"favours_rejected:{name}"]
                stats[f"rate_annotator_{name}_targeted"] = float(mask[target].mean()) if target.any() else None
            if "_probs" in calib and rows.any():
                stats[f"expected_rate_annotator_{name}"] = float(calib["_probs"][rows].mean())
        return stats
