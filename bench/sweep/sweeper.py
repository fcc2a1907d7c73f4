"""Two Hydra sweepers: the cells of a study as a union of conditions, and the tuning protocol on top of it.

``CellsSweeper`` (``hydra/sweeper=cells``): losses x conditions x seeds (x any other swept key), where a condition
is a set of overrides (``noise=length_biased noise.rate=0.4``), so a study can hold random flips at three rates
and length-biased flips at one without crossing them. ``TuneSweeper`` (``hydra/sweeper=tune``): for each loss and
condition, the tuning protocol (``bench.tune.protocol``) in rounds: the learning-rate grid first, then each knob
of the loss's space at the point every selection rule reached; a round launches the union of what the rules need
next; at the end ``results/tuning/<sweep>/selection.csv``. Both launch through the configured launcher (basic,
joblib, submitit, SLURM, Ray), so resume, failure isolation and W&B are the cells' own.

Hydra finds sweepers only in the ``hydra_plugins`` namespace: ``bench/run.py`` puts
``bench/sweep/plugins`` on the import path, whose ``hydra_plugins/prefnoise`` re-exports these classes.
"""
from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from bench import losses as bench_losses
from bench.config.compose import compose
from bench.core.files import atomic_write_json, atomic_write_text, jsonl_text, read_jsonl
from bench.core.options import ConfigError
from bench.sweep.status import PLAN_FILE, read_plan
from bench.tune import criteria as crit
from bench.tune import protocol, selection
from bench.tune.selection import score_at
from bench.tune.space import space_for

log = logging.getLogger("prefnoise")


def every_loss(losses: Sequence[str] | str) -> list[str]:
    """The sweeper's ``losses``; ``all`` is every registered loss (``bench.losses.KIND``), so a new one joins a
    study that names them all."""
    if isinstance(losses, str):
        losses = [losses]
    return [name for loss in losses for name in (bench_losses.names() if str(loss) == "all" else [str(loss)])]


class CellsSweeper(Sweeper):
    def __init__(self, losses: Sequence[str] | None = None, conditions: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None, params: dict | None = None):
        self.losses = every_loss(losses) if losses else None
        self.conditions = [str(c) for c in conditions] if conditions else [""]
        self.seeds = [int(s) for s in seeds] if seeds else None
        self.params = dict(params or {})
        self.config = self.launcher = self.hydra_context = None
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    # -- the cells ------------------------------------------------------------------------------------------------
    def expand(self, arguments: list[str]) -> tuple[list[list[str]], list[str], list[str], list[int]]:
        """(variants: the cross product of every other swept key, fixed overrides, losses, seeds). A command-line
        ``loss=...`` or ``seed=...`` replaces the sweeper's own list."""
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        given = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parsed = OverridesParser.create().parse_overrides(given)
        losses, seeds, rest = self.losses, self.seeds, []
        for o in parsed:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
            if o.key_or_group == "loss":
                losses = values
            elif o.key_or_group == "seed":
                seeds = [int(v) for v in values]
            else:
                rest.append(o)
        variants = [list(job) for batch in BasicSweeper.split_arguments(rest, None) for job in batch] if rest else [[]]
        fixed = [o.input_line for o in rest if not o.is_sweep_override()]
        return variants, fixed, losses or [None], seeds or [None]

    def jobs(self, arguments: list[str]) -> list[list[str]]:
        variants, _, losses, seeds = self.expand(arguments)
        out = []
        for variant, loss, cond, seed in itertools.product(variants, losses, self.conditions, seeds):
            job = [*variant, *cond.split()]
            job += [f"loss={loss}"] if loss else []
            job += [f"seed={seed}"] if seed is not None else []
            out.append(job)
        return out

    def launch(self, batch: list[list[str]]) -> list:
        self.validate_batch_is_legal(batch)
        _grow_plan(Path(self.config.hydra.sweep.dir), len(batch))
        returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(batch)
        return list(returns)

    def sweep(self, arguments: list[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return [self.launch(self.jobs(arguments))]


class TuneSweeper(CellsSweeper):
    def __init__(self, losses=None, conditions=None, seeds=None, params=None, lr: Sequence[float] = (),
                 criteria: Sequence[str] = (), knobs: dict | None = None):
        super().__init__(losses, conditions, seeds, params)
        self.lr = [float(x) for x in lr]
        self.criteria = list(criteria)
        self.knobs = dict(knobs or {})

    def sweep(self, arguments: list[str]) -> Any:

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        for c in self.criteria:
            crit.get(c)
        variants, fixed, losses, seeds = self.expand(arguments)
        if len(variants) > 1:
            raise ConfigError("a tuning sweep crosses its losses, conditions and seeds only: write other swept keys "
                             f"as conditions (hydra.sweeper.conditions); got {len(variants)} variants")
        plan = self.plan(fixed, losses, seeds)
        folder = selection.tuning_dir(self.config.paths.results, str(self.config.sweep))
        atomic_write_json(folder / selection.PLAN, plan)
        spaces = selection.spaces_of(plan)
        paths = {(lo, c["key"], k): protocol.Path(dict(spaces[lo].default))
                 for lo in spaces for c in plan["conditions"] for k in self.criteria}
        returns, done = [], {}
        while any(p.stage < len(spaces[lo].stages) for (lo, _, _), p in paths.items()):
            returns.append(self._round(plan, spaces, paths, fixed, done, folder))
            self._advance(plan, spaces, paths, selection.scores_from(folder, self.config.paths.results))
        rows = selection.select(plan, selection.scores_from(folder, self.config.paths.results))
        path = selection.write(folder, rows)
        print(f"[prefnoise] tuning sweep {plan['sweep']}: {len(done)} cells, selection written to {path}", flush=True)
        return returns

    @staticmethod
    def _advance(plan: dict, spaces: dict, paths: dict, scores: dict) -> None:
        """Every rule's walk one stage further, on the scores of the round just run."""
        from functools import partial

        for (lo, ck, k), p in paths.items():
            if p.stage < len(spaces[lo].stages):
                score = partial(score_at, scores, lo, ck, seeds=plan["seeds"], metric=crit.get(k).metric,
                                checkpoints=bool(plan.get("checkpoints")))
                paths[(lo, ck, k)] = protocol.advance(spaces[lo], p, lambda pt, f=score: f(pt)[0])

    def plan(self, fixed: list[str], losses: list[str], seeds: list[int]) -> selection.TuningPlan:
        """The sweep's ``plan.json`` (its contract: ``bench.tune.selection.TuningPlan``)."""
        if None in losses or None in seeds:
            raise ConfigError("a tuning sweep needs hydra.sweeper.losses (or loss=a,b) and hydra.sweeper.seeds")
        conditions = []
        for c in self.conditions:
            cfg = compose([*fixed, *c.split()])
            conditions.append({"key": c or "default", "overrides": c.split(), "noise": cfg.noise.name,
                               "rate": float(cfg.noise.rate)})
        spaces = {lo: space_for(lo, self.lr, fixed, self.knobs.get(lo)) for lo in losses}
        budgets = {lo: s.budget for lo, s in spaces.items()}
        if len(set(budgets.values())) > 1:
            log.warning("tuning budgets differ between losses: %s", budgets)
        every = compose(list(fixed)).eval.checkpoints.every
        return {"sweep": str(self.config.sweep), "created": time.time(), "fixed": list(fixed), "seeds": list(seeds),
                "checkpoints": every is not None,  # the checkpoint is a knob: every rule picks one per point
                "criteria": self.criteria, "lr": self.lr, "conditions": conditions, "budgets": budgets,
                "losses": {lo: {"stages": [{"key": k.key, "values": list(k.values), "default": k.default}
                                           for k in s.stages], "budget": s.budget} for lo, s in spaces.items()}}

    def _round(self, plan, spaces, paths, fixed, done: dict, folder: Path) -> list:
        """Launch what the rules need next that no round ran yet; append each job to jobs.jsonl."""

        conds = {c["key"]: c for c in plan["conditions"]}
        wanted = []
        for (lo, ck, _), p in paths.items():
            for pt in protocol.candidates(spaces[lo], p):
                for seed in plan["seeds"]:
                    if (lo, ck, pt, seed) not in done and (lo, ck, pt, seed) not in wanted:
                        wanted.append((lo, ck, pt, seed))
        batch = [[*fixed, *conds[ck]["overrides"], f"loss={lo}", *(f"{k}={v!r}" for k, v in pt), f"seed={seed}"]
                 for lo, ck, pt, seed in wanted]
        returns = self.launch(batch) if batch else []
        rows = []
        for (lo, ck, pt, seed), ret in zip(wanted, returns):
            value = _value(ret)
            done[(lo, ck, pt, seed)] = value.get("cell_id")
            rows.append({"loss": lo, "condition": ck, "point": dict(pt), "seed": seed, "cell_id": value.get("cell_id"),
                         "status": value.get("status")})
        append_jobs(folder / selection.JOBS, rows)
        return returns


def append_jobs(path: Path, rows: list[dict]) -> None:
    """Add a round's jobs to ``jobs.jsonl``. A job already there for the same cell (a sweep run again, its cells
    skipped) gives way to its new row: the file keeps one row per (loss, condition, point, seed, cell id), so it
    does not grow with every resumption."""
    def key(r: dict) -> str:
        return json.dumps([r.get("loss"), r.get("condition"), r.get("point"), r.get("seed"), r.get("cell_id")],
                          sort_keys=True, default=str)

    new = {key(r) for r in rows}
    old = [r for r in (read_jsonl(path) if path.exists() else []) if key(r) not in new]
    atomic_write_text(path, jsonl_text(old + rows))


def _value(ret) -> dict:
    try:
        value = ret.return_value
    except Exception as e:  # noqa: BLE001 - a job that raised: its cell id is unknown
        return {"status": "failed", "error": str(e)}
    return value if isinstance(value, dict) else {}


def _grow_plan(sweep_dir: Path, n: int) -> None:
    """Add this batch to the sweep plan's total, so ``python -m bench.sweep status`` counts every round."""
    plan = read_plan(sweep_dir)
    if plan:
        plan["total"] = (plan.get("total") or 0) + n if plan.get("launched") else n
        plan["launched"] = True
        atomic_write_json(sweep_dir / PLAN_FILE, plan)

