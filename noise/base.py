"""What every label-noise injector shares: validation, the seeded generator, exact-count sampling, the swap.

An injector is built with ``rate``, ``seed`` and its options, and is then called on a training
``datasets.Dataset`` (columns ``prompt``, ``chosen``, ``rejected``). It returns the same rows in the same order,
with chosen/rejected swapped on exactly ``round(rate * n)`` rows, plus ``is_flipped`` (and, where it applies,
``annotator``). Subclasses only say *which* pairs to flip, through three hooks:

- ``_features(ds)``: per-pair arrays computed from the (un-noised) data, e.g. word counts or gold-reward gaps;
- ``_choose(features, k, rng)``: the mask with exactly ``k`` flips (and annotator ids, and calibration scalars);
- ``_summary(mask, annotator, features, calib)``: the injector-specific stats for the cell record.

Two kinds of parameter. Where ``rate`` is the parameter (``RATE_IS_PARAMETER``, the default) the count is exact,
as above. Where a scale is (``gaussian_reward``'s sigma, ``tie``'s threshold, ``myopic``'s read length) or the data
is (``natural``), ``rate`` must be ``None``: the noise follows from the scale, ``_choose`` gets ``k = None``, and the
summary states the realized rates. Two label columns go beyond swapping (the contract, extended):

- ``keep`` (bool; ``skip``): False on a pair the teacher skipped. The row stays, so the reference log-probs and
  every per-row mask still line up; the cell trains without it (``training_rows``).
- ``label_confidence`` (float; ``tie``, ``natural``'s majority vote): the probability that the labelled chosen
  response is the preferred one; 0.5 is a tie. A loss that reads per-pair label confidences (cDPO, as a per-pair
  eps) trains on it; for the others the cell drops the ties (``training_rows``).

``_choose`` asks for them through its calibration dict: ``_keep`` and ``_label_confidence`` (arrays), and ``_counted``
(the boolean array whose sum is the exact count, where that is not the flip mask: the skipped pairs).

Why exact counts: sweeps compare losses at a stated rate; flipping each pair independently would make the
realized rate wander by ``sqrt(rate (1 - rate) / n)``, which at n = 500 is as large as the gap between adjacent
sweep rates. Why a private generator seeded from ``(seed, name)``: the mask must depend only on the data, the
noise config and the noise seed (common random numbers), so every loss in a sweep trains on the same noisy data.
"""
from __future__ import annotations

import hashlib
import math
import numbers
import zlib
from typing import Any, ClassVar

import numpy as np

from bench.config.plugin import Plugin
from bench.core.counting import calibrate_shift, exact_count, sigmoid  # noqa: F401  (part of this module's API)
from bench.core.options import ConfigError, Options, option
from bench.core.text import text_of

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")
# the label columns an injector may add beside ``is_flipped`` (see the module docstring); reserved in its input
KEEP, CONFIDENCE = "keep", "label_confidence"
LABEL_COLUMNS = ("is_flipped", KEEP, CONFIDENCE)
TIE = 0.5  # the label confidence of a tie


def logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def column(ds, name: str) -> list:
    """One column as a plain list. (Iterating ``ds[name]`` formats row by row: ~100x slower.)"""
    if ds.format["type"] is not None:  # e.g. torch/numpy formatting set by a caller: read plain Python values
        ds = ds.with_format(None)
    return ds[name][:]


def texts(ds, name: str) -> list[str]:
    """A text column (plain or conversational) as strings, for text features such as length."""
    return [text_of(v) for v in column(ds, name)]


def word_count(texts) -> np.ndarray:
    """Length in whitespace-separated words: tokenizer-free, so the bias is the same for every model."""
    return np.fromiter((len(t.split()) for t in texts), dtype=np.int64)


def sample_exact(rng: np.random.Generator, probs: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask with exactly k True, where pair i is flipped with probability ``probs[i]`` (sum(probs) ~= k).

    Randomized systematic sampling: shuffle the pairs, lay their probabilities end to end on [0, k), and take the
    pairs under the points u, u+1, ..., u+k-1 (u uniform in [0, 1)). Each interval is at most 1 long, so it holds
    at most one point: exactly k distinct pairs, each included with exactly its probability. (Weighted draws
    without replacement, e.g. ``Generator.choice(p=...)`` or Gumbel top-k, also give k pairs but distort the
    inclusion probabilities, so a calibrated model would not be the model actually applied.)
    """
    n = len(probs)
    mask = np.zeros(n, dtype=bool)
    if k <= 0:
        return mask
    if k >= n:
        mask[:] = True
        return mask
    probs = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    perm = rng.permutation(n)
    edges = np.cumsum(probs[perm])
    edges *= k / edges[-1]
    edges[-1] = k  # the points u + j < k always fall inside
    points = rng.random() + np.arange(k)
    picked = np.unique(perm[np.searchsorted(edges, points, side="right")])
    mask[picked] = True
    short = k - len(picked)
    if short > 0:  # only from float round-off on probabilities of ~1: top up with the most probable others
        rest = np.flatnonzero(~mask)
        mask[rest[np.argsort(-probs[rest], kind="stable")[:short]]] = True
    return mask


def swap_pairs(columns: list[str]) -> list[tuple[str, str]]:
    """Column pairs that travel with the responses: chosen/rejected and every ``<x>_chosen``/``<x>_rejected``."""
    pairs = [("chosen", "rejected")]
    for c in columns:
        if c.endswith("_chosen") and c[: -len("_chosen")] + "_rejected" in columns:
            pairs.append((c, c[: -len("_chosen")] + "_rejected"))
    return pairs


def apply_flips(ds, mask: np.ndarray, annotator: np.ndarray | None = None, add_columns: bool = True,
                labels: dict[str, np.ndarray] | None = None):
    """Swap every chosen/rejected column pair on flipped rows; optionally add ``is_flipped`` (and ``annotator``, and
    the other label columns: ``keep`` (bool), ``label_confidence`` (float))."""
    from datasets import Value

    labels = {k: np.asarray(v) for k, v in (labels or {}).items()} if add_columns else {}

    pairs = swap_pairs(ds.column_names)
    features = ds.features  # a fresh deep copy on every access: take it once
    for a, b in pairs:
        if features[a] != features[b]:
            raise TypeError(
                f"cannot swap columns {a!r} and {b!r} on flipped pairs: their types differ "
                f"({features[a]} vs {features[b]}); cast them to one type first"
            )
    if add_columns:
        features["is_flipped"] = Value("bool")
        if annotator is not None:
            features["annotator"] = Value("string")
        for name, values in labels.items():
            features[name] = Value("bool" if values.dtype == bool else "float64")
    cols = [c for ab in pairs for c in ab]

    def fn(batch: dict, idx: list[int]) -> dict:
        m = mask[idx]
        out = {}
        for a, b in pairs:
            xs, ys = batch[a], batch[b]
            out[a] = [y if f else x for x, y, f in zip(xs, ys, m)]
            out[b] = [x if f else y for x, y, f in zip(xs, ys, m)]
        if add_columns:
            out["is_flipped"] = m.tolist()
            if annotator is not None:
                out["annotator"] = [str(s) for s in annotator[idx]]
            for name, values in labels.items():
                out[name] = values[idx].tolist()
        return out

    h = hashlib.sha256(str(ds._fingerprint).encode() + np.packbits(mask).tobytes())
    if annotator is not None:
        h.update("\0".join(map(str, annotator)).encode())
    for name, values in labels.items():
        h.update(name.encode() + np.ascontiguousarray(values).tobytes())
    return ds.map(
        lambda batch, idx: fn({c: batch[c] for c in cols}, idx),
        batched=True,
        with_indices=True,
        features=features,
        keep_in_memory=True,
        load_from_cache_file=False,
        new_fingerprint=h.hexdigest()[:32] + ("a" if add_columns else "r"),
        desc="noise: flip labels",
    )


def check_rate(rate: Any) -> float:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= float(rate) <= 1.0:
        raise ConfigError(f"noise.rate must be a number in [0, 1] (the fraction of pairs to flip), got {rate!r}")
    return float(rate)


def check_seed(seed: Any) -> int:
    if seed is None:
        raise ConfigError(
            "noise.seed is required: the YAML's `seed: ${seed}` is only filled inside the full Hydra config, "
            "so pass it explicitly, e.g. noise.get('random_flip', rate=0.2, seed=0)"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"noise.seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_number(key: str, value: Any, low: float = 0.0, integer: bool = False, why: str = "") -> float | int:
    """A scale option (``noise.<key>``): a finite number >= ``low`` (an integer where ``integer``), else a one-line
    ``ConfigError`` naming the field and what is valid."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) and value >= low
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"noise.{key}={value!r}; valid: {kind} >= {low:g}{f' ({why})' if why else ''}")
    return int(value) if integer else float(value)


def seeded_order(values: np.ndarray, rng: np.random.Generator, descending: bool = False) -> np.ndarray:
    """Indices sorted by ``values`` (ascending, or descending), equal values in a seeded random order."""
    values = np.asarray(values, dtype=float)
    return np.lexsort((rng.random(len(values)), -values if descending else values))


def check_dataset(ds, kind: str) -> None:
    """Clear errors for data an injector cannot use; names the column (and row) at fault."""
    from datasets import Dataset

    if not isinstance(ds, Dataset):
        raise TypeError(
            f"noise injector {kind!r} takes a datasets.Dataset (the training split only), got {type(ds).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
    if missing:
        raise ValueError(
            f"noise injector {kind!r}: dataset is missing column(s) {', '.join(map(repr, missing))}; "
            f"it has {ds.column_names}"
        )
    noised = [c for c in LABEL_COLUMNS if c in ds.column_names]
    if noised:
        raise ValueError(
            f"noise injector {kind!r}: dataset already has a {noised[0]!r} column, so it was noised already; "
            "inject noise once, on the clean training split"
        )
    if len(ds) == 0:
        raise ValueError(f"noise injector {kind!r}: the dataset is empty")
    for col in REQUIRED_COLUMNS:
        for i, v in enumerate(column(ds, col)):
            conversational = isinstance(v, list) and all(isinstance(m, dict) and "content" in m for m in v)
            if not isinstance(v, str) and not conversational:
                raise TypeError(
                    f"noise injector {kind!r}: column {col!r} must hold strings or message lists, row {i} holds "
                    f"{type(v).__name__}"
                )
            if col != "prompt" and not text_of(v).strip():
                raise ValueError(f"noise injector {kind!r}: empty {col!r} response at row {i}")


class Injector(Plugin):
    """Base class: see the module docstring.

    Its options (``Options``) are ``rate`` and ``seed`` and a subclass's own; built-in injectors take every value
    from ``conf/noise/<name>.yaml`` (``noise.get`` composes it). ``RATE_IS_PARAMETER = False`` marks an injector set
    by a scale or by the data (``rate`` must then be ``None``); ``SCALE`` names that scale's option, for the error
    that says so.
    """

    kind = "noise"
    RATE_IS_PARAMETER: ClassVar[bool] = True
    SCALE: ClassVar[str | None] = None
    adds_annotator: bool = False  # whether __call__ adds an ``annotator`` column

    class Options(Options):
        rate: Any = option("the fraction of pairs flipped (null where a scale or the data sets the noise)",
                           default=None)
        seed: Any = option("the mask's seed (the cell's seed)", default=None)

    @classmethod
    def from_options(cls, options: dict, seed: int | None = None, **context: Any) -> Injector:
        """``seed`` (the cell's) fills the node's seed when it has none (inside the full config it is ``${seed}``)."""
        given = options.get("seed")
        return cls(**{**options, "seed": int(given) if given is not None else seed})

    def validate(self) -> None:
        """Rate and seed; a subclass checks its own options after ``super().validate()``."""
        self.rate = self._check_rate(self.rate)
        self.seed = check_seed(self.seed)
        self._last: tuple[str, dict, dict] | None = None

    def _check_rate(self, rate: Any) -> float | None:
        if self.RATE_IS_PARAMETER:
            if rate is None:
                raise ConfigError("noise.rate is required: a number in [0, 1]")
            return check_rate(rate)
        if rate is not None:
            by = f"its scale noise.{self.SCALE}" if self.SCALE else "the data"
            raise ConfigError(f"noise.rate={rate!r}: noise={self.name} is set by {by}, not by a rate (the record "
                              "states the rates it realized); valid: null")
        return None

    # -- hooks -------------------------------------------------------------------------------------------------
    def _features(self, ds) -> dict[str, np.ndarray]:
        return {}

    def _choose(self, feats: dict, k: int | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, dict]:
        raise NotImplementedError

    def _summary(self, mask: np.ndarray, annotator: np.ndarray | None, feats: dict, calib: dict) -> dict:
        return {}

    # -- public ------------------------------------------------------------------------------------------------
    @property
    def target_rate(self) -> float | None:
        """The stated rate of what the injector counts (flips; ``skip``: skipped pairs); None where a scale or the
        data sets the noise."""
        return self.rate

    @property
    def flip_rate(self) -> float | None:
        """The flip rate the configuration states (what ``eps: oracle`` and a cleaner's default fraction take): the
        rate of a flipping injector, 0 for one that never flips (``skip``, ``tie``), None where only the data says."""
        return self.target_rate

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Columns of the data file the injector reads beyond the pairs (``natural``: the annotators' votes)."""
        return ()

    def config(self) -> dict[str, Any]:
        """The injector's settings as plain values, for records and hashing (callables by name only)."""
        opts = {k: getattr(self, k) for k in self.option_values() if k not in ("rate", "seed")}
        opts = {k: (getattr(v, "__name__", type(v).__name__) if callable(v) else v) for k, v in opts.items()}
        return {"name": self.name, "rate": self.rate, "seed": self.seed, **opts}

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.name.encode())]))

    def __call__(self, ds):
        check_dataset(ds, self.name)
        feats = self._features(ds)
        k = None if self.target_rate is None else exact_count(self.target_rate, len(ds))
        mask, annotator, calib = self._choose(feats, k, self.rng())
        mask = np.asarray(mask, dtype=bool)
        counted = int(np.sum(calib.get("_counted", mask)))
        if mask.shape != (len(ds),) or (k is not None and counted != k):
            raise RuntimeError(f"noise injector {self.name!r} broke the exact-count rule: {counted} != {k}")
        labels = {c: calib[f"_{c}"] for c in (KEEP, CONFIDENCE) if f"_{c}" in calib}
        out = apply_flips(ds, mask, annotator, labels=labels)
        self._last = (out._fingerprint, feats, calib)
        return out

    def summary(self, noised) -> dict[str, Any]:
        """Flat, JSON-able stats of a dataset this injector returned (target/realized rate, biased-pair rates)."""
        if "is_flipped" not in noised.column_names:
            raise ValueError("summary() needs the dataset returned by the injector (it has no 'is_flipped' column)")
        mask = np.asarray(column(noised, "is_flipped"), dtype=bool)
        n, k = len(mask), int(mask.sum())
        stats: dict[str, Any] = {
            "target_rate": self.target_rate,
            "realized_rate": k / n if n else 0.0,
            "n_pairs": n,
            "n_flipped": k,
            **label_counts(noised),
        }
        if self._last is not None and self._last[0] == noised._fingerprint:
            feats, calib = self._last[1], self._last[2]
        else:  # a dataset from elsewhere (e.g. reloaded): undo the flips to recompute the per-pair features
            added = [c for c in LABEL_COLUMNS if c in noised.column_names] + (["annotator"] if self.adds_annotator else [])
            clean = apply_flips(noised.remove_columns(added), mask, add_columns=False)
            feats = self._features(clean)
            calib = {f"_{c}": np.asarray(column(noised, c)) for c in (KEEP, CONFIDENCE) if c in noised.column_names}
        annotator = None
        if "annotator" in noised.column_names:
            annotator = np.asarray(column(noised, "annotator"), dtype=object)
        stats.update(self._summary(mask, annotator, feats, calib))
        return {k: _jsonable(v) for k, v in stats.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


def label_counts(noised) -> dict[str, Any]:
    """What the ``keep`` and ``label_confidence`` columns say, for the record (nothing when they are absent)."""
    out: dict[str, Any] = {}
    if KEEP in noised.column_names:
        keep = np.asarray(column(noised, KEEP), dtype=bool)
        out.update(n_skipped=int((~keep).sum()), skipped_rate=float((~keep).mean()))
    if CONFIDENCE in noised.column_names:
        conf = np.asarray(column(noised, CONFIDENCE), dtype=float)
        out.update(n_tied=int((conf == TIE).sum()), tied_rate=float((conf == TIE).mean()),
                   n_soft=int((conf < 1).sum()))
    return out


def training_rows(noised, soft_labels: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Which pairs of a noised dataset a cell trains on, and what became of the others (for the record).

    Skipped pairs (``keep`` False) never; tied pairs (``label_confidence`` 0.5) only with a loss that reads per-pair
    label confidences (``soft_labels``: cDPO, whose per-pair eps makes a tie pull the margin to 0); any other
    confidence is trained on, as a soft label by such a loss and as its hard label by the others.
    """
    n = len(noised)
    rows = np.ones(n, dtype=bool)
    info: dict[str, Any] = {}
    if KEEP in noised.column_names:
        rows &= np.asarray(column(noised, KEEP), dtype=bool)
    if CONFIDENCE in noised.column_names:
        tied = np.asarray(column(noised, CONFIDENCE), dtype=float) == TIE
        info["tied_pairs"] = "soft labels (per-pair label confidence)" if soft_labels else "dropped"
        if not soft_labels:
            rows &= ~tied
        info["n_tied_trained"] = int((tied & rows).sum())
    info["n_trained_pairs"] = int(rows.sum())
    return rows, info


def rates_where(mask: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Flip rate within each boolean group (None for an empty group, which JSON writes as null)."""
    return {name: (float(mask[g].mean()) if g.any() else None) for name, g in groups.items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
