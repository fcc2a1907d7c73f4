"""Hydra's submitit SLURM launcher, waiting for every job of a sweep (``hydra/launcher=slurm``).

Hydra's own launcher collects ``[job.results()[0] for job in jobs]``: the first job that ended without a result
(cancelled with ``scancel``, its node lost and the job not requeued, a time limit with no requeue left) raised out of
the sweep while the other jobs still ran, and the sweep ended without its summary. Here every job is waited for;
one that ended without a result is one failed cell: its status file says ``failed`` with the SLURM state, the sweep
ends with its summary and exits 1, and re-running the same command retries only that cell (it never wrote a record:
records are written whole or not at all). Preemption and requeues stay submitit's: a requeued job runs its cell
again from the start (``checkpoint`` resubmits the same call), and a cell already complete is skipped.

A state SLURM may follow with a requeue (a lost node, a preemption, a failed boot: ``NODE_FAIL``...) is not taken as
the end: the accounting shows it for a moment before the controller puts the job back in the queue. The controller's
own view (``squeue``) decides; a job back in the queue is waited for again.
"""
from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.core.utils import JobStatus as HydraStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as HydraSlurmLauncher
from omegaconf import OmegaConf, open_dict

from bench.sweep.status import JobStatus, read_plan, read_statuses

log = logging.getLogger(HydraSlurmLauncher.__module__)  # Hydra's own lines, as its launcher writes them

REQUEUABLE = ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REQUEUED")  # ends SLURM may follow with a requeue (JobRequeue)
QUEUED = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING", "SUSPENDED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD")  # the controller still has the job in hand
REQUEUE_GRACE_S = 30.0  # how long a requeuable end is watched for the job to come back


def live_state(job_id: str) -> str | None:
    """The job's state in the controller's own view (``squeue``; None once it has left, or when squeue fails)."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    states = out.stdout.split()
    return states[0] if out.returncode == 0 and states else None


def back_in_queue(job_id: str, state: str, grace_s: float = REQUEUE_GRACE_S, poll_s: float = 1.0) -> bool:
    """Whether a job that ended ``state`` without a result is back in the queue (requeued by SLURM): asked of the
    controller for up to ``grace_s`` seconds when ``state`` is one SLURM may follow with a requeue, else False."""
    if not state.upper().startswith(REQUEUABLE):
        return False
    deadline = time.monotonic() + grace_s
    while True:
        if (live_state(job_id) or "").upper() in QUEUED:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def wait_in_queue(job, poll_s: float = 2.0) -> None:
    """Wait while the controller holds ``job`` (requeued: pending, then running) and it has no result yet."""
    while not job.paths.result_pickle.exists() and (live_state(job.job_id) or "").upper() in QUEUED:
        time.sleep(poll_s)


class SlurmLauncher(HydraSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """As Hydra's ``SlurmLauncher.launch`` (the same executor, parameters and job arguments), but every job's
        outcome is collected, a job without a result becoming a failed cell (``_outcome``)."""
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import filter_overrides

        assert self.config is not None and len(job_overrides) > 0
        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))
        return [self._outcome(job, list(o), idx) for job, (o, _, idx, _, _) in zip(jobs, job_params)]

    def _outcome(self, job, overrides: list[str], idx: int) -> JobReturn:
        """The job's own return; for a job that ended without one, a failed cell (status file and return value)."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        while True:
            try:
                return job.results()[0]
            except FailedJobError as e:
                failed: Exception = e
                break
            except UncompletedJobError as e:
                if not back_in_queue(job.job_id, job.state):
                    failed = e
                    break
                log.info(f"SLURM job {job.job_id} ended {job.state} and is back in the queue: waiting for it again")
                wait_in_queue(job)
        if isinstance(failed, FailedJobError):  # submitit's own end of the job, e.g. a time limit with no requeue left
            last = [line for line in str(failed).splitlines() if line.strip()][-1:] or [type(failed).__name__]
            error = {"type": type(failed).__name__, "where": "slurm", "message": f"SLURM job {job.job_id} ended "
                     f"{job.state}: {last[0][:300]} (logs: {job.paths.folder})"}
        else:  # killed (UncompletedJobError, FailedJobError's parent) and not requeued: no result at all
            error = {"type": type(failed).__name__, "where": "slurm", "message": f"SLURM job {job.job_id} ended "
                     f"{job.state} without a result (logs: {job.paths.folder})"}
        cell_id = self._mark_failed(overrides, idx, error)
        return JobReturn(overrides=overrides, status=HydraStatus.COMPLETED,
                         _return_value={"cell_id": cell_id, "status": "failed", "error": error})

    def _mark_failed(self, overrides: list[str], idx: int, error: dict) -> str | None:
        """Mark job ``idx`` failed in its status file (written by the job if it started, else here, in the job's dir
        as Hydra names it); returns the job's cell id when it got that far."""
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        plan = read_plan(sweep_dir)
        found = [s for s in read_statuses(sweep_dir, plan.get("invocation")) if s.get("job") == idx]
        if found:
            info = {k: v for k, v in found[-1].items() if k != "dir"}
            job_dir = Path(found[-1]["dir"])
        else:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(cfg.hydra.job):
                cfg.hydra.job.num = idx
            job_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            info = {"job": idx, "overrides": overrides, "invocation": plan.get("invocation"), "cell_id": None,
                    "started_at": time.time()}
        status = JobStatus(job_dir, info)
        status.write(state="failed", error=error, **status.ended())
        return info.get("cell_id")

    def __reduce__(self) -> tuple[Any, tuple]:
        """Jobs unpickle this launcher (submitit's ``checkpoint`` resubmits it) in a Python whose path may lack
        ``bench/sweep/plugins``: the plug-in subclass travels as this class."""
        return _restore, (self.__dict__,)


def _restore(state: dict) -> SlurmLauncher:
    launcher = SlurmLauncher.__new__(SlurmLauncher)
    launcher.__dict__.update(state)
    return launcher
