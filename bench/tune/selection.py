"""A tuning sweep's selection: one row per (loss, noise, rate, criterion), from its plan, jobs and cell records.

    results/tuning/<sweep>/plan.json       the spaces, conditions, tuning seeds and criteria (the sweep writes it)
    results/tuning/<sweep>/jobs.jsonl      every job the sweep launched: loss, condition, point, seed, cell id
    results/tuning/<sweep>/selection.csv   loss, noise, rate, criterion, one column per tuned key
                                           (train.learning_rate, loss.beta, ...), checkpoint (the epoch picked,
                                           when the sweep's cells scored checkpoints), val_score, n_configs, at_edge,
                                           edge_keys, budget, n_seeds, and test_gold_reward: the test score of the
                                           pick on the tuning seeds (for the report's regret; never used to select)

    python -m bench.tune select --sweep tune                      # every criterion of the plan
    python -m bench.tune select --sweep tune --criterion val_rm   # one

Records are found by cell id, so a cell that another sweep ran first (and this one skipped) still counts.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from bench.core import records
from bench.core.files import atomic_write_text, read_jsonl
from bench.core.options import ConfigError
from bench.tune import criteria as crit
from bench.tune.protocol import at_edge as edges
from bench.tune.protocol import point, replay
from bench.tune.space import Knob, Space

PLAN, JOBS, SELECTION = "plan.json", "jobs.jsonl", "selection.csv"
TEST_METRIC = "gold_reward"
CURVE = "@curve"  # a scored point's checkpoint curve, beside its metrics


class PlanCondition(TypedDict):
    key: str  # the condition's overrides as one string ("default": none)
    overrides: list[str]
    noise: str
    rate: float


class PlanStage(TypedDict):
    key: str  # the tuned config key (train.learning_rate, loss.beta, ...)
    values: list
    default: Any


class PlanLoss(TypedDict):
    stages: list[PlanStage]  # one knob after another (bench.tune.space)
    budget: int  # cells per (condition, seed)


class TuningPlan(TypedDict):
    """``plan.json``: the contract between the tuning sweep that writes it (``bench.sweep.sweeper.TuneSweeper``)
    and everything that reads it (this module, ``bench.tune.apply``, the report's tuning section)."""

    sweep: str
    created: float  # time.time() when written
    fixed: list[str]  # the overrides every cell of the sweep shares
    seeds: list[int]  # the tuning seeds
    checkpoints: bool  # the cells scored checkpoints: the checkpoint is a knob every rule picks
    criteria: list[str]  # the selection rules (bench.tune.criteria: registered names or class paths)
    lr: list[float]  # the learning-rate grid of the first stage
    conditions: list[PlanCondition]
    budgets: dict[str, int]  # per loss
    losses: dict[str, PlanLoss]


def tuning_dir(results: str | Path, sweep: str) -> Path:
    return Path(results) / "tuning" / sweep


def read_plan(folder: Path) -> TuningPlan:
    path = Path(folder) / PLAN
    if not path.exists():
        raise ConfigError(f"{path}: no tuning plan (run a tuning sweep first: python bench/run.py -m "
                                "experiment=tune ...)")
    return json.loads(path.read_text())


def spaces_of(plan: TuningPlan) -> dict[str, Space]:
    return {loss: Space(loss, tuple(Knob(k["key"], tuple(k["values"]), k["default"]) for k in s["stages"]))
            for loss, s in plan["losses"].items()}


def scores_from(folder: Path, results: str | Path) -> dict[tuple, dict]:
    """{(loss, condition, point, seed): metrics} of the sweep's jobs with a complete record; a record with a
    checkpoint curve also gives ``metrics[CURVE]``: {epoch: that checkpoint's metrics}."""
    out = {}
    jobs = read_jsonl(Path(folder) / JOBS) if (Path(folder) / JOBS).exists() else []
    for job in jobs:
        rec = records.read_record(results, job["cell_id"]) if job.get("cell_id") else None
        if rec is not None and rec.get("status") == "ok":
            metrics = dict(rec.get("metrics") or {})
            if rec.get("curve"):
                metrics[CURVE] = {checkpoint_key(p["epoch"]): p for p in rec["curve"]}
            out[(job["loss"], job["condition"], point(job["point"]), job["seed"])] = metrics
    return out


def checkpoint_key(epoch) -> float:
    return round(float(epoch), 4)


def score_at(scores: dict, loss: str, cond: str, p, seeds, metric: str, checkpoints: bool) -> tuple[float, Any]:
    """(the point's score under ``metric``, the checkpoint it was reached at). Without checkpoints: the mean over
    the tuning seeds of the end's value (checkpoint None). With them the checkpoint is a knob: every checkpoint the
    seeds' curves share, the best mean wins (ties: the later checkpoint, the end first of all)."""
    if not checkpoints:
        return mean_score(scores, loss, cond, p, seeds, metric)[0], None
    curves = [scores[(loss, cond, p, s)].get(CURVE) for s in seeds if (loss, cond, p, s) in scores]
    curves = [c for c in curves if c]
    if not curves:
        return mean_score(scores, loss, cond, p, seeds, metric)[0], None
    shared = sorted(set.intersection(*(set(c) for c in curves)), reverse=True)
    best, at = math.nan, None
    for e in shared:
        vals = [c[e].get(metric) for c in curves]
        vals = [float(v) for v in vals if isinstance(v, (int, float)) and not math.isnan(float(v))]
        if len(vals) == len(curves) and (math.isnan(best) or np.mean(vals) > best):
            best, at = float(np.mean(vals)), e
    return best, at


def select(plan: dict, scores: dict[tuple, dict], criterion_names: list[str] | None = None) -> list[dict]:
    """The rows of the selection (see the module docstring)."""
    spaces = spaces_of(plan)
    rows = []
    for name in criterion_names or plan["criteria"]:
        c = crit.get(name)
        for space in spaces.values():
            for cond in plan["conditions"]:
                rows.append(_row(plan, space, cond, c, scores))
    return rows


def mean_score(scores: dict, loss: str, cond: str, p, seeds, metric: str, checkpoint=None) -> tuple[float, int]:
    """(mean of ``metric`` over the tuning seeds at point ``p``, how many seeds had it): the end's value, or the
    value at ``checkpoint`` (an epoch of the records' curves)."""
    def value(m: dict):
        return m.get(metric) if checkpoint is None else ((m.get(CURVE) or {}).get(checkpoint) or {}).get(metric)

    vals = [value(scores[(loss, cond, p, s)]) for s in seeds if (loss, cond, p, s) in scores]
    vals = [float(v) for v in vals if isinstance(v, (int, float)) and not math.isnan(float(v))]
    return (float(np.mean(vals)) if vals else math.nan), len(vals)


def _row(plan: dict, space: Space, cond: dict, c, scores: dict) -> dict:
    seeds, ckpt = plan["seeds"], bool(plan.get("checkpoints"))
    path = replay(space, lambda p: score_at(scores, space.loss, cond["key"], p, seeds, c.metric, ckpt)[0])
    _, at = score_at(scores, space.loss, cond["key"], point(path.point), seeds, c.metric, ckpt)
    test, n = mean_score(scores, space.loss, cond["key"], point(path.point), seeds, TEST_METRIC, checkpoint=at)
    edge = edges(space, path.point)
    return {"loss": space.loss, "noise": cond["noise"], "rate": cond["rate"], "criterion": c.name, **path.point,
            **({"checkpoint": math.nan if at is None else at} if ckpt else {}),
            "val_score": path.score, "n_configs": len(path.visited), "at_edge": bool(edge),
            "edge_keys": ",".join(edge), "budget": space.budget, "n_seeds": n, "test_gold_reward": test,
            "note": path.note}


def write(folder: Path, rows: list[dict]) -> Path:
    """``selection.csv``, atomically; rows of other criteria already there are kept."""
    import pandas as pd

    path = Path(folder) / SELECTION
    new = pd.DataFrame(rows)
    if path.exists() and not new.empty:
        old = pd.read_csv(path)
        old = old[~old["criterion"].isin(set(new["criterion"]))]
        new = pd.concat([old, new], ignore_index=True)
    atomic_write_text(path, new.to_csv(index=False))
    return path


def read(folder: Path) -> list[dict[str, Any]]:
    import pandas as pd

    path = Path(folder) / SELECTION
    if not path.exists():
        raise ConfigError(f"{path}: no selection yet (python -m bench.tune select --sweep ...)")
    return pd.read_csv(path).to_dict("records")
