"""Sweep-level bookkeeping for Hydra multiruns: per-job status, progress with an ETA, failure summary, exit code.

Hydra runs the jobs (basic, joblib, submitit or Ray launcher); this module only watches them, through files, so it
works whatever process or machine a job runs on:

    <sweep dir>/sweep_plan.json       written when the sweep starts: how many jobs, their overrides
    <sweep dir>/<job>/cell_status.json  written by each job: running, then ok | skipped | failed (with the error)
    <sweep dir>/sweep_summary.json    written when the sweep ends: counts and failures

A job whose cell fails records the error (bench/cell.py writes a failure record) and returns normally, so the other
cells go on (Hydra's launchers otherwise stop at the first exception); the sweep then prints a summary of the
failures and `bench/run.py` exits non-zero only if some cell failed. From another shell, at any time:

    python -m bench.sweep status                      # the latest sweep under $PREFNOISE_ROOT/results/multiruns
    python -m bench.sweep status results/multiruns/2026-01-01_12-00-00 --watch 10
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from bench import records

log = logging.getLogger("prefnoise")

PLAN_FILE = "sweep_plan.json"
STATUS_FILE = "cell_status.json"
SUMMARY_FILE = "sweep_summary.json"
FINAL = ("ok", "skipped", "failed")

_exit_code = 0  # set by SweepCallback.on_multirun_end, read by bench/run.py after Hydra returns


def exit_code() -> int:
    return _exit_code


# ----------------------------------------------------------------------------------------------------------------
# one job


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _now() -> float:
    return time.time()


class JobStatus:
    """The status file of one Hydra job (a no-op outside Hydra)."""

    def __init__(self, job_dir: Path | None, sweep_dir: Path | None, info: dict):
        self.path = job_dir / STATUS_FILE if job_dir else None
        self.sweep_dir = sweep_dir
        self.state: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), **info}

    def write(self, **changes: Any) -> None:
        self.state.update(changes)
        if self.path is not None:
            records.atomic_write_json(self.path, self.state)


def run_job(cfg: DictConfig) -> dict:
    """The body of one Hydra job: run (or skip) its cell, keep its status file, log it to W&B if configured.

    In a multirun a failing cell does not raise: its failure is recorded (record + status) and the job returns, so
    the launcher goes on with the other cells. A single run (no -m) re-raises, so the process exits non-zero.
    """
    from hydra.types import RunMode

    from bench import wandb_log
    from bench.cell import cell_id, run_cell

    hc = _hydra()
    multirun = hc is not None and hc.mode == RunMode.MULTIRUN
    job_dir = Path(hc.runtime.output_dir) if hc is not None else None
    sweep_dir = Path(hc.sweep.dir) if multirun else None
    plan = read_plan(sweep_dir) if sweep_dir else {}
    status = JobStatus(
        job_dir,
        sweep_dir,
        {
            "job": int(hc.job.num) if multirun else None,
            "overrides": list(hc.overrides.task) if hc is not None else [],
            "invocation": plan.get("invocation"),
            "state": "running",
            "started_at": _now(),
        },
    )
    results = Path(cfg.paths.results)
    cid = None
    try:
        cid = cell_id(cfg)
        status.write(cell_id=cid)
        complete = bool(cfg.get("resume", True)) and records.is_complete(results, cid)
        if not complete:  # a skipped cell costs no torch import, no GPU, no W&B run
            _claim_devices(cfg)
        run = None if complete or _launches_itself(cfg) else wandb_log.start(cfg, cid)
        try:
            rec = run_cell(cfg)
        except BaseException as e:
            wandb_log.finish(run, error=e, record=records.read_record(results, cid))
            raise
        wandb_log.finish(run, record=rec)
    except Exception as e:
        error = _error_of(results, cid, e)
        status.write(state="failed", error=error, **_ended(status))
        log.error("cell %s failed: %s: %s (%s)", cid, error["type"], error["message"], error["where"])
        _log_progress(sweep_dir)
        if not multirun:
            raise
        return {"cell_id": cid, "status": "failed", "error": error}
    except BaseException:  # KeyboardInterrupt, SystemExit: the sweep is being stopped
        status.write(state="interrupted", **_ended(status))
        raise
    state = "skipped" if rec.get("skipped") else "ok"
    status.write(state=state, torch_threads=_torch_threads(), **_ended(status))
    _log_progress(sweep_dir)
    metrics = {k: v for k, v in (rec.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {"cell_id": cid, "status": state, "metrics": metrics}


def _ended(status: JobStatus) -> dict:
    end = _now()
    return {"ended_at": end, "duration": round(end - status.state["started_at"], 3)}


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def _launches_itself(cfg: DictConfig) -> bool:
    from bench import distributed

    return distributed.needs_launch(cfg)  # rank 0 of its own launch opens the W&B run


def _claim_devices(cfg: DictConfig) -> None:
    if str(cfg.train.get("device", "auto")) == "cpu":
        return
    from bench import distributed

    distributed.claim_devices(int(cfg.train.get("num_gpus", 1) or 1))


def _error_of(results: Path, cid: str | None, e: BaseException) -> dict:
    """The error as the cell recorded it (type, message, where), or as raised if it failed before recording."""
    rec = records.read_record(results, cid) if cid else None
    if rec and rec.get("status") == "failed" and rec.get("error"):
        return rec["error"]
    import traceback

    tb = traceback.extract_tb(e.__traceback__)
    where = f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else "?"
    return {"type": type(e).__name__, "message": str(e), "where": where}


# ----------------------------------------------------------------------------------------------------------------
# the sweep as a whole


def plan_jobs(config: DictConfig) -> list[list[str]] | None:
    """The jobs a multirun will launch (their overrides), as Hydra's basic sweeper expands them; None if another
    sweeper (an optimizer, say) decides them as it goes."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:  # pragma: no cover - Hydra internals moved
        return None
    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return None
    args = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    args += list(config.hydra.overrides.task)
    overrides = OverridesParser.create().parse_overrides(args)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def read_plan(sweep_dir: Path | None) -> dict:
    try:
        return json.loads((Path(sweep_dir) / PLAN_FILE).read_text())
    except (OSError, json.JSONDecodeError, TypeError):
        return {}


def read_statuses(sweep_dir: Path, invocation: str | None = None) -> list[dict]:
    out = []
    for path in sorted(Path(sweep_dir).glob(f"**/{STATUS_FILE}")):
        try:
            s = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # being replaced right now
        if invocation is None or s.get("invocation") in (None, invocation):
            out.append({**s, "dir": str(path.parent)})
    return out


def _alive(s: dict) -> bool:
    if s.get("host") != socket.gethostname():
        return True  # another machine (SLURM, Ray): trust the file
    try:
        os.kill(int(s["pid"]), 0)
    except (OSError, KeyError, TypeError, ValueError):
        return False
    return True


def summarize(sweep_dir: str | os.PathLike) -> dict:
    """Counts of cells ok / skipped / failed / running / interrupted / waiting, and an ETA in seconds.

    ETA = (mean time of the cells that ran x cells left + what the running cells still need) / cells running at
    once; skipped cells take no time, so a resumed sweep finishes sooner than estimated."""
    sweep_dir = Path(sweep_dir)
    plan = read_plan(sweep_dir)
    statuses = read_statuses(sweep_dir, plan.get("invocation"))
    counts = {k: 0 for k in ("ok", "skipped", "failed", "running", "interrupted")}
    now = _now()
    running_elapsed = []
    for s in statuses:
        state = s.get("state", "running")
        if state == "running" and not _alive(s):
            state = s["state"] = "interrupted"
        counts[state] = counts.get(state, 0) + 1
        if state == "running":
            running_elapsed.append(now - float(s.get("started_at", now)))
    total = plan.get("total")
    counts["waiting"] = max(0, total - len(statuses)) if total is not None else None
    ran = [float(s["duration"]) for s in statuses if s.get("state") in ("ok", "failed") and s.get("duration")]
    eta = None
    if ran and counts["waiting"] is not None:
        mean = sum(ran) / len(ran)
        at_once = max(1, counts["running"])
        eta = (mean * counts["waiting"] + sum(max(0.0, mean - e) for e in running_elapsed)) / at_once
    failures = [
        {k: s.get(k) for k in ("job", "overrides", "cell_id", "error", "dir")} for s in statuses if s.get("state") == "failed"
    ]
    return {
        "sweep_dir": str(sweep_dir),
        "total": total,
        "counts": counts,
        "finished": sum(counts[k] for k in FINAL),
        "eta_s": eta,
        "elapsed_s": now - plan["started_at"] if plan.get("started_at") else None,
        "failures": sorted(failures, key=lambda f: (f["job"] is None, f["job"])),
    }


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(summary: dict) -> str:
    c = summary["counts"]
    total = summary["total"] if summary["total"] is not None else "?"
    parts = [f"{summary['finished']}/{total} cells finished", f"ok {c['ok']}", f"skipped {c['skipped']}",
             f"failed {c['failed']}", f"running {c['running']}"]
    if c.get("interrupted"):
        parts.append(f"interrupted {c['interrupted']}")
    parts.append(f"waiting {c['waiting'] if c['waiting'] is not None else '?'}")
    eta = "done" if c["waiting"] == 0 and c["running"] == 0 else _fmt_s(summary["eta_s"])
    return ", ".join(parts) + f"; elapsed {_fmt_s(summary['elapsed_s'])}, ETA {eta}"


def failure_lines(summary: dict) -> list[str]:
    lines = []
    for f in summary["failures"]:
        e = f.get("error") or {}
        lines.append(
            f"  job {f['job']} [{' '.join(f.get('overrides') or [])}] cell {f.get('cell_id')}: "
            f"{e.get('type')}: {e.get('message')} ({e.get('where')})"
        )
    return lines


def _log_progress(sweep_dir: Path | None) -> None:
    if sweep_dir is None:
        return
    try:
        log.info("sweep progress: %s", progress_line(summarize(sweep_dir)))
    except Exception as e:  # progress is a convenience: never fail a cell over it
        log.warning("sweep progress unavailable: %s", e)


class SweepCallback(Callback):
    """Registered in conf/config.yaml (hydra.callbacks.sweep). Runs in the process that launched the sweep."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _exit_code
        _exit_code = 0
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = plan_jobs(config)
        plan = {
            "invocation": uuid.uuid4().hex[:12],
            "started_at": _now(),
            "started": datetime.now(timezone.utc).isoformat(),
            "launcher": str(config.hydra.launcher.get("_target_", "?")).rsplit(".", 1)[-1],
            "total": len(jobs) if jobs is not None else None,
            "jobs": jobs,
        }
        records.atomic_write_json(sweep_dir / PLAN_FILE, plan)
        log.info("sweep %s: %s cells with %s", sweep_dir, plan["total"] if jobs is not None else "?", plan["launcher"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _exit_code
        sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = summarize(sweep_dir)
        records.atomic_write_json(sweep_dir / SUMMARY_FILE, summary)
        c = summary["counts"]
        ran = c["ok"] + c["failed"]
        print(
            f"[prefnoise] sweep {sweep_dir}: {summary['total']} cells: {ran} ran ({c['ok']} ok, {c['failed']} failed), "
            f"{c['skipped']} skipped (complete records from earlier runs)"
            + (f", {c['interrupted']} interrupted" if c.get("interrupted") else "")
            + (f", {c['waiting']} never started" if c.get("waiting") else ""),
            flush=True,
        )
        if c["failed"] or c.get("interrupted"):
            print(f"[prefnoise] {c['failed']} cell(s) failed (re-run the same command to retry only them):", flush=True)
            for line in failure_lines(summary):
                print(line, flush=True)
            _exit_code = 1


# ----------------------------------------------------------------------------------------------------------------
# python -m bench.sweep status [sweep dir]


def latest_sweep(root: str | os.PathLike | None = None) -> Path | None:
    root = Path(root or os.environ.get("PREFNOISE_ROOT", ".")) / "results" / "multiruns"
    dirs = sorted(p for p in root.glob("*") if (p / PLAN_FILE).exists())
    return dirs[-1] if dirs else None


def _status_cmd(args: argparse.Namespace) -> int:
    sweep_dir = Path(args.sweep_dir) if args.sweep_dir else latest_sweep()
    if sweep_dir is None or not (sweep_dir / PLAN_FILE).exists():
        print(f"no sweep found ({sweep_dir or 'results/multiruns/* is empty'}); pass a sweep dir", file=sys.stderr)
        return 2
    while True:
        summary = summarize(sweep_dir)
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            print(f"{sweep_dir}: {progress_line(summary)}")
            for line in failure_lines(summary):
                print(line)
            if args.verbose:
                plan = read_plan(sweep_dir)
                for s in read_statuses(sweep_dir, plan.get("invocation")):
                    print(f"  job {s.get('job')}: {s.get('state'):<11} {_fmt_s(s.get('duration'))} "
                          f"cell {s.get('cell_id')} [{' '.join(s.get('overrides') or [])}]")
        c = summary["counts"]
        if not args.watch or (c["running"] == 0 and c["waiting"] == 0):
            return 1 if c["failed"] else 0
        time.sleep(args.watch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("status", help="cells done / running / failed / skipped / waiting, with an ETA")
    s.add_argument("sweep_dir", nargs="?", help="a Hydra sweep dir (default: the latest under results/multiruns)")
    s.add_argument("--watch", type=float, default=0, help="refresh every N seconds until the sweep ends")
    s.add_argument("--json", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true", help="one line per job")
    args = p.parse_args(argv)
    return _status_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
