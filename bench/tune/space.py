"""A loss's search space: the learning rate first (one grid for every loss), then the loss's own knobs.

The knobs live in ``conf/search/<loss>.yaml`` (a user's loss brings its own, on its ``hydra.searchpath``)::

    knobs:
      - {key: loss.beta, values: [0.025, 0.05, 0.1, 0.2, 0.4]}

Every grid holds its default (the value of ``conf/loss/<loss>.yaml``, or ``conf/train`` for the learning rate), so
the point reached so far is always among the next stage's candidates. The budget is the number of distinct
configurations one rule's path visits: ``len(lr grid) + sum(len(knob grid) - 1)``; the built-in spaces give every
loss the same (7 learning rates + 4 knob values = 11). A knob whose default is ``oracle`` (eps set to the injected
rate) is not tuned, so such a loss has a smaller budget, and the plan says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config.compose import compose
from bench.core.options import ConfigError


@dataclass(frozen=True)
class Knob:
    key: str  # the config key it sets: train.learning_rate, loss.beta, ...
    values: tuple  # the grid, ascending
    default: Any  # the composed default: one of the values

    def at_edge(self, value: Any) -> bool:
        """A numeric knob chosen at an end of its grid (the optimum may lie beyond); a choice (a divergence, a
        variant) has no edge."""
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values)
        return numeric and len(self.values) > 1 and value in (self.values[0], self.values[-1])


@dataclass(frozen=True)
class Space:
    loss: str
    stages: tuple[Knob, ...]  # the learning rate first

    @property
    def budget(self) -> int:
        return 1 + sum(len(k.values) - 1 for k in self.stages)

    @property
    def default(self) -> dict[str, Any]:
        return {k.key: k.default for k in self.stages}

    def knob(self, key: str) -> Knob:
        return next(k for k in self.stages if k.key == key)


def space_for(loss: str, lr_values, base: list[str] | tuple[str, ...] = (), knobs: list[dict] | None = None) -> Space:
    """The space of ``loss`` (a ``conf/loss`` option name) with the learning-rate grid ``lr_values``; ``knobs``
    replaces ``conf/search/<loss>.yaml``'s (a small experiment's smaller grids)."""
    from omegaconf import OmegaConf

    cfg = compose([*base, f"loss={loss}"])
    if knobs is None:
        try:
            knobs = OmegaConf.to_container(compose([*base, f"loss={loss}", f"+search={loss}"]).search.knobs)
        except Exception as e:  # noqa: BLE001 - Hydra's missing-config error, said in one line
            raise ConfigError(f"loss={loss}: no search space (conf/search/{loss}.yaml with `knobs:`) on the config "
                              f"search path; a user's loss brings its own ({type(e).__name__})") from None
    stages = [_knob("train.learning_rate", lr_values, cfg.train.learning_rate, loss)]
    for k in knobs:
        field = str(k["key"]).removeprefix("loss.")
        default = cfg.loss.get(field)
        if default == "oracle":
            continue  # eps set to the injected rate: nothing to tune
        stages.append(_knob(f"loss.{field}", k["values"], default, loss))
    return Space(loss, tuple(stages))


def _knob(key: str, values, default, loss: str) -> Knob:
    values = tuple(sorted(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in values))
    d = float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else default
    if d not in values:
        raise ConfigError(f"search space of loss={loss}: {key} grid {list(values)} does not hold its default {d!r}; "
                          "valid: a grid that contains the default (the point reached so far is always a candidate).")
    return Knob(key, values, d)
