"""Sweep-level bookkeeping for Hydra multiruns: per-job status and one line per cell (``job``), the plan, failure
summary and exit code (``callback``), and the ``python -m bench.sweep status`` command (``status``)."""
from bench.sweep.callback import SweepCallback, exit_code
from bench.sweep.status import (
    FINAL,
    PLAN_FILE,
    STATUS_FILE,
    SUMMARY_FILE,
    failure_lines,
    latest_sweep,
    plan_jobs,
    progress_line,
    read_plan,
    read_statuses,
    summarize,
)

__all__ = ["FINAL", "PLAN_FILE", "STATUS_FILE", "SUMMARY_FILE", "SweepCallback", "exit_code", "failure_lines",
           "latest_sweep", "plan_jobs", "progress_line", "read_plan", "read_statuses", "summarize"]
