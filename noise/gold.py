"""Gold rewards for the injectors that model a teacher who sees them: where they come from, and what they say.

In order of preference: numeric columns ``gold_chosen`` / ``gold_rejected`` (how the embedded world provides them:
``bench.world.rules.gold_reward`` of each response), else the injector's ``gold_reward`` option, else its
``reward_model`` option (``bt_confidence`` only; a learned proxy), each a callable ``(prompt, response) -> float``.
``gold_reward: world`` names the embedded world's rule itself, for an injector that must score text the data does
not hold (``myopic``: the first part of each response).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.core.options import ConfigError, option
from bench.world import rules
from noise.base import Injector, column, rates_where, texts

GOLD_COLUMNS = ("gold_chosen", "gold_rejected")
WORLD = "world"


def check_scorer(key: str, fn, allow_world: bool = False):
    """A ``gold_reward``/``reward_model`` option as given: None, a callable, or (where allowed) ``world``."""
    if fn is None or callable(fn) or (allow_world and fn == WORLD):
        return fn
    valid = "null, 'world' (the embedded world's rule) or" if allow_world else "null or"
    raise ConfigError(f"noise.{key}={fn!r}; valid: {valid} a Python callable (prompt, response) -> float, passed "
                      f"from Python: noise.get(..., {key}=scorer) (a callable cannot be set from YAML)")


def resolve(fn) -> Callable[[str, str], float] | None:
    """The callable an option names (``world``: ``bench.world.rules.gold_reward``)."""
    if fn == WORLD:
        return _world_reward(rules)
    return fn


def _world_reward(rules) -> Callable[[str, str], float]:
    def gold(prompt: str, response: str) -> float:
        try:
            return rules.gold_reward(prompt, response)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"noise.gold_reward=world scores the embedded world's prompts only, and {prompt[:60]!r} "
                              f"is not one ({type(e).__name__}); valid: data=world, or a callable gold_reward") from e

    gold.__name__ = "world"
    return gold


def score(fn, what: str, prompts, responses) -> np.ndarray:
    """``fn(prompt, response)`` for every row; a clear error for a non-finite score."""
    out = np.fromiter((float(fn(p, r)) for p, r in zip(prompts, responses)), dtype=float, count=len(prompts))
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raise ValueError(f"noise.{what} returned a non-finite score at row {bad[0]}")
    return out


def gold_pair(ds, kind: str, gold_reward=None, reward_model=None) -> tuple[np.ndarray, np.ndarray, str]:
    """(gold of each chosen response, gold of each rejected one, where they came from: ``columns``,
    ``gold_reward`` or ``reward_model``)."""
    cols = ds.column_names
    present = [c for c in GOLD_COLUMNS if c in cols]
    if len(present) == 1:
        raise ValueError(f"{kind}: the dataset has {present[0]!r} but not its partner; it needs both {GOLD_COLUMNS}")
    if present:
        gc = np.asarray(column(ds, "gold_chosen"), dtype=float)
        gr = np.asarray(column(ds, "gold_rejected"), dtype=float)
        bad = np.flatnonzero(~np.isfinite(gc) | ~np.isfinite(gr))
        if len(bad):
            raise ValueError(f"{kind}: gold_chosen/gold_rejected is missing or not finite at row {bad[0]}")
        return gc, gr, "columns"
    key = "gold_reward" if gold_reward is not None else "reward_model"
    fn = resolve(gold_reward if gold_reward is not None else reward_model)
    if fn is None:
        also = ", or reward_model=callable(prompt, response) -> float" if kind == "bt_confidence" else ""
        raise ValueError(
            f"{kind} needs gold rewards and found none: add numeric columns gold_chosen and gold_rejected to the "
            f"dataset, or pass gold_reward=callable(prompt, response) -> float{also}, e.g. "
            f"noise.get({kind!r}, ..., {'reward_model' if also else 'gold_reward'}=scorer)"
        )
    prompts = texts(ds, "prompt")
    return score(fn, key, prompts, texts(ds, "chosen")), score(fn, key, prompts, texts(ds, "rejected")), key


def gap_rates(mask: np.ndarray, gap: np.ndarray) -> dict[str, float | None]:
    """Where the flips fell by gold margin: the flip rate among near-ties (the lowest quarter of |gap|) and clear
    pairs (the highest quarter), and the mean |gap| of flipped and kept pairs."""
    g = np.abs(gap)
    q1, q3 = np.quantile(g, [0.25, 0.75])
    return {
        **rates_where(mask, {"rate_near_ties": g <= q1, "rate_clear": g >= q3}),
        "mean_abs_gap_flipped": float(g[mask].mean()) if mask.any() else None,
        "mean_abs_gap_kept": float(g[~mask].mean()) if (~mask).any() else None,
    }


def against_gold(chosen_first: np.ndarray, gap: np.ndarray) -> dict[str, float | None]:
    """The realized flip rate against the gold labels: the share of pairs whose label after the noise (``True``:
    the response that was chosen before still is) disagrees with the gold reward, over pairs gold does not tie."""
    decided = gap != 0
    if not decided.any():
        return {"realized_rate_vs_gold": None}
    gold_first = gap > 0
    return {"realized_rate_vs_gold": float((chosen_first != gold_first)[decided].mean())}


class GoldTeacher(Injector):
    """Base of the injectors whose teacher sees the gold reward (option ``gold_reward``: see the module docstring).

    Features: ``gap`` (gold of chosen minus gold of rejected, as the dataset labels them), ``source``. Subclasses
    check their own options in ``_validate_scale``.
    """

    ALLOW_WORLD: bool = False  # whether gold_reward may be 'world' (a teacher that scores text the data lacks)

    class Options(Injector.Options):
        gold_reward: Any = option("where the data has no gold columns: a callable (prompt, response) -> float "
                                  "passed from Python, or world (the embedded world's rule, where allowed)")

    def validate(self) -> None:
        super().validate()
        self.gold_reward = check_scorer("gold_reward", self.gold_reward, self.ALLOW_WORLD)
        self._validate_scale()

    def _validate_scale(self) -> None:
        pass

    def _features(self, ds) -> dict:
        gc, gr, source = gold_pair(ds, self.name, self.gold_reward)
        return {"gap": gc - gr, "source": source}

    def _gold_summary(self, mask: np.ndarray, feats: dict) -> dict:
        """Where the gold came from, where the flips fell by gold margin, and the flip rate against gold."""
        return {"gold_source": feats["source"], **gap_rates(mask, feats["gap"]), **against_gold(~mask, feats["gap"])}
