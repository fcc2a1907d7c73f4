"""The sweep side of a Hydra multirun (``hydra.callbacks.sweep`` in ``conf/config.yaml``): the plan when it starts,
the summary of failures and the exit code when it ends, and a tuning sweep's selection (``bench.tune``)."""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench.core.files import atomic_write_json
from bench.sweep.status import PLAN_FILE, SUMMARY_FILE, failure_lines, plan_jobs, summarize

log = logging.getLogger("prefnoise")

_exit_code = 0  # set by SweepCallback.on_multirun_end, read by bench/run.py after Hydra returns


def exit_code() -> int:
    return _exit_code


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
            "started_at": time.time(),
            "started": datetime.now(timezone.utc).isoformat(),
            "launcher": str(config.hydra.launcher.get("_target_", "?")).rsplit(".", 1)[-1],
            "total": len(jobs) if jobs is not None else None,
            "jobs": jobs,
        }
        atomic_write_json(sweep_dir / PLAN_FILE, plan)
        log.info("sweep %s: %s cells with %s", sweep_dir, plan["total"] if jobs is not None else "?", plan["launcher"])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _exit_code
        sweep_dir = Path(str(config.hydra.sweep.dir))
        summary = summarize(sweep_dir)
        atomic_write_json(sweep_dir / SUMMARY_FILE, summary)
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
