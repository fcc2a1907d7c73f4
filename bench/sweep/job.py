"""The body of one Hydra job: run (or skip) its cell, keep its status file, open its W&B run, print one line.

In a multirun a failing cell does not raise: its failure is recorded (record + status) and the job returns, so
the launcher goes on with the other cells. A single run (no -m) re-raises, so the process exits non-zero.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig

from bench.cell import distributed, wandb_log
from bench.cell.parts import describe, short_name
from bench.cell.run import decide, run_cell
from bench.core import records
from bench.core.options import ConfigError
from bench.data import DataError
from bench.sweep.precheck import EXIT_CONFIG, one_line
from bench.sweep.status import JobStatus, progress_line, read_plan, summarize
from bench.tune.apply import apply

log = logging.getLogger("prefnoise")

HEADLINE = ("gold_reward", "rm_reward", "judge_win_rate", "implicit_acc")  # the first one a cell has leads its line


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_job(cfg: DictConfig) -> dict:
    from hydra.types import RunMode

    hc = _hydra()
    multirun = hc is not None and hc.mode == RunMode.MULTIRUN
    sweep_dir = Path(hc.sweep.dir) if multirun else None
    plan = read_plan(sweep_dir) if sweep_dir else {}
    status = JobStatus(Path(hc.runtime.output_dir) if hc is not None else None, {
        "job": int(hc.job.num) if multirun else None,
        "overrides": list(hc.overrides.task) if hc is not None else [],
        "invocation": plan.get("invocation"), "state": "running", "started_at": time.time(),
    })
    results = Path(cfg.paths.results)
    cid = None
    try:
        cfg, hp_source = apply(cfg)  # tuning=<sweep>/<criterion>: the selected values, before the cell's identity
        cid, complete = decide(cfg)  # the id and the skip, decided once (run_cell takes them)
        status.write(cell_id=cid)
        if not complete and str(cfg.train.device) != "cpu":
            distributed.claim_devices(distributed.num_gpus(cfg))  # a skipped cell claims no GPU
        run = None if complete or distributed.needs_launch(cfg) else wandb_log.start(cfg, cid)
        try:
            rec = run_cell(cfg, slot=_slot(hc), hp_source=hp_source, decided=(cid, complete))
        except BaseException as e:
            wandb_log.finish(run, error=e, record=records.read_record(results, cid))
            raise
        wandb_log.finish(run, record=rec)
    except Exception as e:
        error = _error_of(results, cid, e)
        status.write(state="failed", error=error, **status.ended())
        if not multirun and isinstance(e, ConfigError) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            _one_line_exit(e, cid, hc)  # a bad value or unreadable data in a single run: as the precheck ends
        _report(cfg, "failed", status.state, sweep_dir, error=error)
        if not multirun:
            raise
        return {"cell_id": cid, "status": "failed", "error": error}
    except BaseException:  # KeyboardInterrupt, SystemExit: the sweep is being stopped
        status.write(state="interrupted", **status.ended())
        raise
    state = "skipped" if rec.get("skipped") else "ok"
    torch = sys.modules.get("torch")
    status.write(state=state, torch_threads=torch.get_num_threads() if torch else None, **status.ended())
    _report(cfg, state, status.state, sweep_dir, record=rec)
    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {"cell_id": cid, "status": state, "metrics": metrics}


def _one_line_exit(e: ConfigError, cid: str | None, hc) -> None:
    """``prefnoise: data error: <what is wrong, what is valid>`` on stderr and exit code 2, as the precheck ends a
    bad command line; the failed record stays, the traceback is in the job's run.log (or: HYDRA_FULL_ERROR=1)."""
    kind = "data" if isinstance(e, DataError) else "config"
    where = [f"cell {cid}: failed record kept"] if cid else []
    if hc is not None:
        where.append(f"traceback in {Path(hc.runtime.output_dir) / 'run.log'}")
    print(f"prefnoise: {kind} error: {one_line(str(e))}" + (f" ({'; '.join(where)})" if where else ""),
          file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def _slot(hc) -> int:
    """The row of this job's progress bar: its place among the jobs that run at once."""
    if hc is None or hc.job.get("num") is None:
        return 0
    n_jobs = (hc.get("launcher") or {}).get("n_jobs") or 1
    return int(hc.job.num) % max(1, int(n_jobs))


def _error_of(results: Path, cid: str | None, e: BaseException) -> dict:
    """The error as the cell recorded it (type, message, where), or as raised if it failed before recording."""
    rec = records.read_record(results, cid) if cid else None
    if rec and rec.get("status") == "failed" and rec.get("error"):
        return rec["error"]
    tb = traceback.extract_tb(e.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else "?"
    return {"type": type(e).__name__, "message": str(e), "where": where}


def result_line(cfg: DictConfig, state: str, status: dict, record: dict | None = None, error: dict | None = None) -> str:
    """``[prefnoise] ok      dpo random_flip@0.2 seed 0: gold_reward 0.152, kl 1.7 (24 s) cell 1a2b3c4d``"""

    text = f"[prefnoise] {state:<7} {short_name(describe(cfg))}"
    if error is not None:
        text += f": {error.get('type')}: {error.get('message')}"
    elif state == "skipped":
        text += ": already complete: skipped (its record is from an earlier run)"
    elif record is not None:
        m = record.get("metrics") or {}
        shown = [k for k in HEADLINE if isinstance(m.get(k), (int, float))][:1] + [k for k in ("kl", "length") if k in m]
        text += ": " + ", ".join(f"{k} {m[k]:.4g}" for k in shown)
        if record.get("borrowed_from"):  # trained as its standard twin did: that record's results (bench.cell.borrow)
            text += f"; its standard twin {record['borrowed_from'].get('cell_id')}'s results"
    duration = status.get("duration")
    if duration is not None and state != "skipped":
        text += f" ({duration:.0f} s)"
    return text + (f" cell {status.get('cell_id')}" if status.get("cell_id") else "")


def _report(cfg, state: str, status: dict, sweep_dir: Path | None, **kw) -> None:
    """One line per finished cell on stdout; in a sweep, the sweep's progress after it."""
    line = result_line(cfg, state, status, **kw)
    if sweep_dir is not None:
        try:
            line += f" | {progress_line(summarize(sweep_dir))}"
        except Exception as e:  # progress is a convenience: never fail a cell over it
            log.warning("sweep progress unavailable: %s", e)
    print(line, flush=True)
