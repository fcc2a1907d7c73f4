"""A tuning sweep's selection: one row per (loss, noise, rate, criterion), from its plan, jobs and cell records.

    results/tuning/<sweep>/plan.json       the spaces, conditions, tuning seeds and criteria (the sweep writes it)
    results/tuning/<sweep>/jobs.jsonl      every job the sweep launched: loss, condition, point, seed, cell id
    results/tuning/<sweep>/selection.csv   loss, noise, rate, criterion, one column per tuned key
                                           (train.learning_rate, loss.beta, ...), val_score, n_configs, at_edge,
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
from typing import Any

import numpy as np

from bench.core import records
from bench.core.files import atomic_write_text, read_jsonl
from bench.tune import criteria as crit
from bench.tune.protocol import at_edge as edges
from bench.tune.protocol import point, replay
from bench.tune.space import Knob, Space

PLAN, JOBS, SELECTION = "plan.json", "jobs.jsonl", "selection.csv"
TEST_METRIC = "gold_reward"


def tuning_dir(results: str | Path, sweep: str) -> Path:
    return Path(results) / "tuning" / sweep


def read_plan(folder: Path) -> dict:
    path = Path(folder) / PLAN
    if not path.exists():
        raise FileNotFoundError(f"{path}: no tuning plan (run a tuning sweep first: python bench/run.py -m "
                                "experiment=tune ...)")
    return json.loads(path.read_text())


def spaces_of(plan: dict) -> dict[str, Space]:
    return {loss: Space(loss, tuple(Knob(k["key"], tuple(k["values"]), k["default"]) for k in s["stages"]))
            for loss, s in plan["losses"].items()}


def scores_from(folder: Path, results: str | Path) -> dict[tuple, dict]:
    """{(loss, condition, point, seed): metrics} of the sweep's jobs with a complete record."""
    out = {}
    jobs = read_jsonl(Path(folder) / JOBS) if (Path(folder) / JOBS).exists() else []
    for job in jobs:
        rec = records.read_record(results, job["cell_id"]) if job.get("cell_id") else None
        if rec is not None and rec.get("status") == "ok":
            out[(job["loss"], job["condition"], point(job["point"]), job["seed"])] = rec.get("metrics") or {}
    return out


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


def mean_score(scores: dict, loss: str, cond: str, p, seeds, metric: str) -> tuple[float, int]:
    """(mean of ``metric`` over the tuning seeds at point ``p``, how many seeds had it)."""
    vals = [scores[(loss, cond, p, s)].get(metric) for s in seeds if (loss, cond, p, s) in scores]
    vals = [float(v) for v in vals if isinstance(v, (int, float)) and not math.isnan(float(v))]
    return (float(np.mean(vals)) if vals else math.nan), len(vals)


def _row(plan: dict, space: Space, cond: dict, c, scores: dict) -> dict:
    seeds = plan["seeds"]
    path = replay(space, lambda p: mean_score(scores, space.loss, cond["key"], p, seeds, c.metric)[0])
    test, n = mean_score(scores, space.loss, cond["key"], point(path.point), seeds, TEST_METRIC)
    edge = edges(space, path.point)
    return {"loss": space.loss, "noise": cond["noise"], "rate": cond["rate"], "criterion": c.name, **path.point,
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
        raise FileNotFoundError(f"{path}: no selection yet (python -m bench.tune select --sweep ...)")
    return pd.read_csv(path).to_dict("records")
