"""Exact counts and the bisection behind every calibrated rate.

Sweeps compare parts at a stated rate, so a rate means an exact count: ``round(rate * n)``, halves up. Where a
model gives per-item probabilities, one shift of their log-odds is calibrated by bisection so that they sum to that
count (the noise injectors), and the same bisection serves any other monotone calibration.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def exact_count(rate: float, n: int) -> int:
    """round(rate * n), halves rounded up, so |count / n - rate| <= 0.5 / n."""
    return min(n, max(0, int(math.floor(rate * n + 0.5))))


def bisect_increasing(f: Callable[[float], float], target: float, lo: float, hi: float, iters: int = 200) -> float:
    """x in [lo, hi] with f(x) == target for an increasing f (f(lo) < target <= f(hi)), by bisection."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def sigmoid(x) -> np.ndarray:
    """Overflow-free logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def calibrate_shift(logits: np.ndarray, k: int, iters: int = 200) -> float:
    """The shift b with sum(sigmoid(logits + b)) == k (the sum is increasing in b).

    Shifting log-odds rather than multiplying probabilities keeps every probability in (0, 1), keeps the order of
    the items, and leaves the configured probabilities untouched (b = 0) when they already imply k.
    """
    n = len(logits)
    if not 0 < k < n:
        raise ValueError(f"calibrate_shift needs 0 < k < n, got k={k}, n={n}")
    lo, hi = -float(np.max(logits)) - 40.0, -float(np.min(logits)) + 40.0
    return bisect_increasing(lambda b: float(sigmoid(logits + b).sum()), k, lo, hi, iters)
