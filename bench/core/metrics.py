"""What a metric's numbers mean for comparisons: a direction, or none, or "bookkeeping, never compared".

Every part that reports metrics declares each one's direction (``metrics = {name: direction}``):

- ``HIGHER`` (True) / ``LOWER`` (False): a quality of the trained policy; the report tests and gives verdicts;
- ``NO_DIRECTION`` (None): a measured property with no better side (response length): compared, no verdict;
- ``COUNTER`` ("counter"): bookkeeping or a diagnostic of the instrument (judge calls, cache hits, numbers of
  pairs, a proxy's own accuracy), or a value whose scale differs between the things compared (a loss's training
  loss): shown, never tested, never called better.

Records keep ``{"higher_is_better": True | False | None, "compare": bool, "evaluator": name}`` per metric.
"""
from __future__ import annotations

from typing import Any

HIGHER, LOWER, NO_DIRECTION, COUNTER = True, False, None, "counter"
DIRECTIONS = (HIGHER, LOWER, NO_DIRECTION, COUNTER)


def metric_info(direction: Any, evaluator: str) -> dict[str, Any]:
    """The record's entry for a metric declared with ``direction`` by ``evaluator``."""
    if direction == COUNTER:
        return {"higher_is_better": None, "compare": False, "evaluator": evaluator}
    if direction not in (True, False, None) or (direction is not None and not isinstance(direction, bool)):
        raise ValueError(f"metric direction {direction!r} of {evaluator}; valid: True, False, None, 'counter'")
    return {"higher_is_better": direction, "compare": True, "evaluator": evaluator}


def infos(metrics: dict[str, Any], evaluator: str) -> dict[str, dict[str, Any]]:
    return {name: metric_info(d, evaluator) for name, d in metrics.items()}


def compared(info: dict | None, name: str = "") -> bool:
    """Whether the report compares this metric across losses (records from before ``compare`` existed: all but
    the reference policy's own ``*_ref`` scores and ``train_loss``)."""
    info = info or {}
    if "compare" in info:
        return bool(info["compare"])
    return not name.endswith("_ref") and name != "train_loss"
