"""Sweep-level bookkeeping for Hydra multiruns: per-job status, progress with an ETA, failure summary, exit code.

Hydra runs the jobs (basic, joblib, submitit or Ray launcher); this module only watches them, through files, so it
works whatever process or machine a job runs on:

    <sweep dir>/sweep_plan.json       written when the sweep starts: how many jobs, their overrides
    <sweep dir>/<job>/cell_status.json  written by each job: running, then ok | skipped | failed (with the error)
    <sweep dir>/sweep_summary.json    written when the sweep ends: counts and failures

A job whose cell fails records the error (bench/cell/run.py writes a failure record) and returns normally, so the other
cells go on (Hydra's launchers otherwise stop at the first exception); the sweep then prints a summary of the
failures and `bench/run.py` exits non-zero only if some cell failed. From another shell, at any time:

    python -m bench.sweep status                      # the latest sweep under $PREFNOISE_ROOT/results/multiruns
    python -m bench.sweep status results/multiruns/2026-01-01_12-00-00 --watch 10
    python -m bench.sweep records verdict_tune verdict    # a study over many multiruns: its records per sweep name

This module reads those files (plan, statuses, summary, ETA) and is the ``status`` command; ``bench.sweep.job`` is
the job side, ``bench.sweep.callback`` the sweep side.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bench.core.files import atomic_write_json
from bench.core.records import RECORD_FILE, iter_records

PLAN_FILE = "sweep_plan.json"
STATUS_FILE = "cell_status.json"
SUMMARY_FILE = "sweep_summary.json"
FINAL = ("ok", "skipped", "failed")



class JobStatus:
    """The status file of one Hydra job (a no-op outside Hydra)."""

    def __init__(self, job_dir: Path | None, info: dict):
        self.path = job_dir / STATUS_FILE if job_dir else None
        self.state: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), **info}

    def write(self, **changes: Any) -> None:
        self.state.update(changes)
        if self.path is not None:
            atomic_write_json(self.path, self.state)

    def ended(self) -> dict:
        end = time.time()
        return {"ended_at": end, "duration": round(end - self.state["started_at"], 3)}


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


def _most_at_once(statuses: list[dict], now: float) -> int:
    """The most cells (that ran or are running; skipped ones take no time) whose runs overlapped in time."""
    spans = []
    for s in statuses:
        if s.get("state") in ("ok", "failed", "running") and s.get("started_at") is not None:
            start = float(s["started_at"])
            spans.append((start, start + float(s["duration"]) if s.get("duration") else now))
    return max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)


def summarize(sweep_dir: str | os.PathLike) -> dict:
    """Counts of cells ok / skipped / failed / running / interrupted / waiting, and an ETA in seconds.

    ETA = (mean time of the cells that ran x cells left + what the running cells still need) / cells running at
    once (the most cells that have run at the same time: between two cells of a 2-job launcher only one runs);
    skipped cells take no time, so a resumed sweep finishes sooner than estimated."""
    sweep_dir = Path(sweep_dir)
    plan = read_plan(sweep_dir)
    statuses = read_statuses(sweep_dir, plan.get("invocation"))
    counts = dict.fromkeys(("ok", "skipped", "failed", "running", "interrupted"), 0)
    now = time.time()
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
        at_once = max(1, counts["running"], _most_at_once(statuses, now))
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


def by_study(results: str | os.PathLike, sweeps: list[str]) -> list[dict]:
    """Per sweep name (a study or a part of one, whatever multiruns it took): its cells with a record, ok and
    failed, how many of the ok ones took their standard twin's results (``borrowed``, ``bench.cell.borrow``) and how
    many ended at a checkpoint (``stopped``: ``eval.checkpoints.stop_after``), the seconds its ok cells took (summed; ``trained``: those that trained, for the median cell) and when its latest
    cell finished."""
    rows = {s: {"sweep": s, "ok": 0, "failed": 0, "borrowed": 0, "stopped": 0, "seconds": [], "trained": [],
                "latest": None}
            for s in sweeps}
    for rec in iter_records(results):
        row = rows.get(rec.get("sweep"))
        if row is None:
            continue
        row["ok" if rec.get("status") == "ok" else "failed"] += 1
        if rec.get("status") == "ok":
            row["seconds"].append(float((rec.get("timings") or {}).get("total") or 0.0))
            row["stopped"] += bool(rec.get("stopped"))
            if rec.get("borrowed_from"):
                row["borrowed"] += 1
            else:
                row["trained"].append(row["seconds"][-1])
        finished = rec.get("finished_at")  # when the cell ended, wherever it ran (not when the file was copied)
        written = datetime.fromisoformat(finished).timestamp() if finished else \
            (Path(results) / "cells" / rec["cell_id"] / RECORD_FILE).stat().st_mtime
        row["latest"] = max(row["latest"] or 0.0, written)
    return list(rows.values())


def _records_cmd(args) -> int:
    results = args.results or str(Path(os.environ.get("PREFNOISE_ROOT", ".")) / "results")
    print("| sweep | ok | of them borrowed | ended at a checkpoint | failed | cell-hours | median trained cell | "
          "latest record |\n|---|---|---|---|---|---|---|---|")
    for r in by_study(results, args.sweeps):
        median = f"{statistics.median(r['trained']):.0f} s" if r["trained"] else "-"
        latest = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["latest"])) if r["latest"] else "-"
        print(f"| {r['sweep']} | {r['ok']} | {r['borrowed']} | {r['stopped']} | {r['failed']} | {sum(r['seconds']) / 3600:.1f} | "
              f"{median} | {latest} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("records", help="per sweep name: cells ok and failed, cell-hours, latest record (a study "
                                       "that spans many multiruns and machines)")
    r.add_argument("sweeps", nargs="+", help="sweep names (the records' sweep field)")
    r.add_argument("--results", default=None, help="results folder (default: $PREFNOISE_ROOT/results)")
    s = sub.add_parser("status", help="cells done / running / failed / skipped / waiting, with an ETA")
    s.add_argument("sweep_dir", nargs="?", help="a Hydra sweep dir (default: the latest under results/multiruns)")
    s.add_argument("--watch", type=float, default=0, help="refresh every N seconds until the sweep ends")
    s.add_argument("--json", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true", help="one line per job")
    args = p.parse_args(argv)
    return _records_cmd(args) if args.cmd == "records" else _status_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
