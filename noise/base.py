"""What every label-noise injector shares: validation, the seeded generator, exact-count sampling, the swap.

An injector is built with ``rate``, ``seed`` and its options, and is then called on a training
``datasets.Dataset`` (columns ``prompt``, ``chosen``, ``rejected``). It returns the same rows in the same order,
with chosen/rejected swapped on exactly ``round(rate * n)`` rows, plus ``is_flipped`` (and, where it applies,
``annotator``). Subclasses only say *which* pairs to flip, through three hooks:

- ``_features(ds)``: per-pair arrays computed from the (un-noised) data, e.g. word counts or gold-reward gaps;
- ``_choose(features, k, rng)``: the mask with exactly ``k`` flips (and annotator ids, and calibration scalars);
- ``_summary(mask, annotator, features, calib)``: the injector-specific stats for the cell record.

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

from bench.core.counting import calibrate_shift, exact_count, sigmoid  # noqa: F401  (part of this module's API)
from bench.core.registry import Registry, did_you_mean
from bench.core.text import text_of

REGISTRY: Registry = Registry("noise injector")

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected")


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


def apply_flips(ds, mask: np.ndarray, annotator: np.ndarray | None = None, add_columns: bool = True):
    """Swap every chosen/rejected column pair on flipped rows; optionally add ``is_flipped`` (and ``annotator``)."""
    from datasets import Value

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
        return out

    h = hashlib.sha256(str(ds._fingerprint).encode() + np.packbits(mask).tobytes())
    if annotator is not None:
        h.update("\0".join(map(str, annotator)).encode())
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
        raise ValueError(f"noise.rate must be a number in [0, 1] (the fraction of pairs to flip), got {rate!r}")
    return float(rate)


def check_seed(seed: Any) -> int:
    if seed is None:
        raise ValueError(
            "noise.seed is required: the YAML's `seed: ${seed}` is only filled inside the full Hydra config, "
            "so pass it explicitly, e.g. noise.get('random_flip', rate=0.2, seed=0)"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"noise.seed must be a non-negative integer, got {seed!r}")
    return int(seed)


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
    if "is_flipped" in ds.column_names:
        raise ValueError(
            f"noise injector {kind!r}: dataset already has an 'is_flipped' column, so it was noised already; "
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


class Injector:
    """Base class: see the module docstring.

    ``OPTIONS`` names a subclass's options. Built-in injectors take every value from ``conf/noise/<name>.yaml``
    (``noise.get`` composes it), so theirs is a tuple of names; a user's own injector may make it a dict of
    defaults instead.
    """

    name: ClassVar[str] = "?"
    OPTIONS: ClassVar[tuple[str, ...] | dict[str, Any]] = ()
    adds_annotator: bool = False  # whether __call__ adds an ``annotator`` column

    def __init__(self, rate: float | None = None, seed: int | None = None, **options: Any):
        if rate is None:
            raise ValueError("noise.rate is required: a number in [0, 1]")
        self.rate = check_rate(rate)
        self.seed = check_seed(seed)
        unknown = [k for k in options if k not in self.OPTIONS]
        if unknown:
            if not self.OPTIONS:
                raise TypeError(f"noise injector {self.name!r} takes only rate and seed, not {unknown[0]!r}")
            hint = did_you_mean("option", unknown[0], list(self.OPTIONS))
            raise TypeError(f"noise injector {self.name!r}: {hint}")
        defaults = self.OPTIONS if isinstance(self.OPTIONS, dict) else {}
        self.options = {**defaults, **_plain(options)}
        missing = [k for k in self.OPTIONS if k not in self.options]
        if missing:
            raise ValueError(
                f"noise injector {self.name!r}: option {missing[0]!r} is not set; the built-in values live in "
                f"conf/noise/{self.name}.yaml: use noise.get({self.name!r}, rate=..., seed=...)"
            )
        self._validate_options()
        self._last: tuple[str, dict, dict] | None = None

    # -- hooks -------------------------------------------------------------------------------------------------
    def _validate_options(self) -> None:
        pass

    def _features(self, ds) -> dict[str, np.ndarray]:
        return {}

    def _choose(self, feats: dict, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, dict]:
        raise NotImplementedError

    def _summary(self, mask: np.ndarray, annotator: np.ndarray | None, feats: dict, calib: dict) -> dict:
        return {}

    # -- public ------------------------------------------------------------------------------------------------
    @property
    def target_rate(self) -> float:
        return self.rate

    def config(self) -> dict[str, Any]:
        """The injector's settings as plain values, for records and hashing (callables by name only)."""
        opts = {k: (getattr(v, "__name__", type(v).__name__) if callable(v) else v) for k, v in self.options.items()}
        return {"name": self.name, "rate": self.rate, "seed": self.seed, **opts}

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(self.name.encode())]))

    def __call__(self, ds):
        check_dataset(ds, self.name)
        feats = self._features(ds)
        k = exact_count(self.target_rate, len(ds))
        mask, annotator, calib = self._choose(feats, k, self.rng())
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(ds),) or int(mask.sum()) != k:
            raise RuntimeError(f"noise injector {self.name!r} broke the exact-count rule: {int(mask.sum())} != {k}")
        out = apply_flips(ds, mask, annotator)
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
        }
        if self._last is not None and self._last[0] == noised._fingerprint:
            feats, calib = self._last[1], self._last[2]
        else:  # a dataset from elsewhere (e.g. reloaded): undo the flips to recompute the per-pair features
            added = ["is_flipped"] + (["annotator"] if self.adds_annotator else [])
            clean = apply_flips(noised.remove_columns(added), mask, add_columns=False)
            feats, calib = self._features(clean), {}
        annotator = None
        if "annotator" in noised.column_names:
            annotator = np.asarray(column(noised, "annotator"), dtype=object)
        stats.update(self._summary(mask, annotator, feats, calib))
        return {k: _jsonable(v) for k, v in stats.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"


def rates_where(mask: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Flip rate within each boolean group (None for an empty group, which JSON writes as null)."""
    return {name: (float(mask[g].mean()) if g.any() else None) for name, g in groups.items()}


def _plain(options: dict) -> dict:
    """OmegaConf containers (from Hydra) to plain dicts/lists, so injectors see ordinary Python values."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover
        return options
    return {
        k: (OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v)
        for k, v in options.items()
    }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v
