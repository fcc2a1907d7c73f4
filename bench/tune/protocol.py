"""One knob after another, per selection rule: the protocol, as a pure function of scored points.

For each (loss, condition) and rule: start at the space's default point; at each stage try every value of that
stage's knob with the other knobs where the earlier stages put them; keep the candidate with the highest
validation score (mean over the tuning seeds; a point with no score does not compete); go on to the next stage.
Ties (equal means) go to the value nearest the knob's default in grid steps, then to the smaller value. The
result is the point, its score, the configurations visited (the budget) and the knobs whose pick sits at an edge
of their grid (the grid was maybe too narrow: the selection and the report say so).

The sweep runs the protocol in rounds (``next_points``: what each rule needs next); selection replays it over the
scores once all rounds are in (``replay``): the same function, so both always agree.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.tune.space import Space

Point = tuple  # a point as a sorted tuple of (key, value): hashable, order-free


def point(values: dict[str, Any]) -> Point:
    return tuple(sorted(values.items()))


@dataclass
class Path:
    """Where one rule's walk through a space stands."""

    point: dict[str, Any]
    stage: int = 0  # the next stage to run
    visited: list[Point] = field(default_factory=list)
    score: float = math.nan
    note: str = ""


def candidates(space: Space, path: Path) -> list[Point]:
    """The points of the stage ``path`` is at (empty once the walk is done)."""
    if path.stage >= len(space.stages):
        return []
    knob = space.stages[path.stage]
    return [point({**path.point, knob.key: v}) for v in knob.values]


def advance(space: Space, path: Path, score: Callable[[Point], float]) -> Path:
    """The path after its current stage, given a score for each of that stage's candidates (NaN: none)."""
    knob = space.stages[path.stage]
    cands = candidates(space, path)
    scored = [(score(p), p) for p in cands]
    valid = [(s, p) for s, p in scored if not math.isnan(s)]
    visited = path.visited + [p for p in cands if p not in path.visited]
    if not valid:
        return Path(path.point, path.stage + 1, visited, path.score, f"{knob.key}: no scores")
    best = max(s for s, _ in valid)
    tied = [p for s, p in valid if s == best]
    steps = {v: abs(i - knob.values.index(knob.default)) for i, v in enumerate(knob.values)}
    pick = min(tied, key=lambda p: (steps[dict(p)[knob.key]], dict(p)[knob.key]))
    return Path(dict(pick), path.stage + 1, visited, best, path.note)


def replay(space: Space, score: Callable[[Point], float]) -> Path:
    """The whole walk: the rule's pick, its score, the points it visited."""
    path = Path(dict(space.default))
    while path.stage < len(space.stages):
        path = advance(space, path, score)
    return path


def at_edge(space: Space, values: dict[str, Any]) -> list[str]:
    """The tuned keys whose picked value is the smallest or largest of their grid."""
    return [k.key for k in space.stages if k.at_edge(values.get(k.key))]
