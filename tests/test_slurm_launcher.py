"""bench/sweep/launcher.py without a cluster: a SLURM job that ends without a result (cancelled, lost with its node,
out of requeues) is one failed cell of the sweep, in its status file and its return value, never the end of the
sweep; and the launcher travels into jobs (submitit's checkpoint pickles it) as a class a job's Python can import.
The same on a real cluster, end to end: tests/test_slurm.py."""
from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn
from hydra.core.utils import JobStatus as HydraStatus
from omegaconf import OmegaConf
from submitit.core.utils import FailedJobError, UncompletedJobError

from bench import sweep
from bench.core.files import atomic_write_json
from conftest import ROOT

sys.path.append(str(ROOT / "bench" / "sweep" / "plugins"))  # as bench/run.py does: hydra_plugins.prefnoise

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FakeJob:
    """A finished submitit job as the launcher sees it: its id, SLURM state, folder and results()."""

    def __init__(self, job_id: str, state: str, outcome):
        self.job_id, self.state, self.outcome = job_id, state, outcome
        self.paths = SimpleNamespace(folder=f"/sweep/.submitit/{job_id}")

    def results(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return [self.outcome]


def _launcher(sweep_dir):
    from hydra_plugins.prefnoise import SlurmLauncher

    launcher = SlurmLauncher(submitit_folder=f"{sweep_dir}/.submitit/%j", partition="ci")
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"},
                                                  "job": {"num": None}}})
    # Hydra's config loader gives each job its config; here: the sweep's, whose subdir is the job number
    launcher.hydra_context = SimpleNamespace(config_loader=SimpleNamespace(
        load_sweep_config=lambda config, overrides: OmegaConf.create(OmegaConf.to_container(config))))
    return launcher


def test_jobs_without_a_result_are_failed_cells_in_the_summary_not_the_end_of_the_sweep(tmp_path):
    now = time.time()
    atomic_write_json(tmp_path / sweep.PLAN_FILE, {"invocation": "i1", "total": 3, "started_at": now - 60})
    atomic_write_json(tmp_path / "1" / sweep.STATUS_FILE, {  # job 1 started on a compute node, then was cancelled
        "job": 1, "invocation": "i1", "state": "running", "cell_id": "abc123", "started_at": now - 30,
        "host": "node-17", "pid": 4242, "overrides": ["loss=dpo"]})
    assert sweep.summarize(tmp_path)["counts"]["running"] == 1  # another host's file: trusted, running forever
    launcher = _launcher(tmp_path)
    done = JobReturn(overrides=["loss=ipo"], status=HydraStatus.COMPLETED, _return_value={"status": "ok"})

    assert launcher._outcome(FakeJob("7_2", "COMPLETED", done), ["loss=ipo"], 2) is done  # a result: as it came
    cancelled = launcher._outcome(FakeJob("7_1", "CANCELLED by 0", UncompletedJobError("Job 7_1 has not produced "
                                                                                       "any output")), ["loss=dpo"], 1)
    pending = launcher._outcome(FakeJob("7_0", "CANCELLED by 0", UncompletedJobError("no output")), ["loss=hinge"], 0)

    for ret in (cancelled, pending):  # Hydra's sweepers read them without raising: the sweep goes on to its summary
        assert ret.status == HydraStatus.COMPLETED and ret.return_value["status"] == "failed"
    err = cancelled.return_value["error"]
    assert err["where"] == "slurm" and err["type"] == "UncompletedJobError"
    assert err["message"] == "SLURM job 7_1 ended CANCELLED by 0 without a result (logs: /sweep/.submitit/7_1)"
    assert cancelled.return_value["cell_id"] == "abc123" and pending.return_value["cell_id"] is None
    st = {s["job"]: s for s in sweep.read_statuses(tmp_path, "i1")}
    assert st[1]["state"] == "failed" and st[1]["error"] == err and st[1]["host"] == "node-17"  # the job's own file
    assert st[1]["cell_id"] == "abc123" and st[1]["duration"] >= 29
    # a job cancelled before it started has no status file of its own: one is written where Hydra would put it
    assert st[0]["dir"] == str(tmp_path / "0") and st[0]["state"] == "failed" and st[0]["overrides"] == ["loss=hinge"]
    summary = sweep.summarize(tmp_path)
    assert summary["counts"] == {"ok": 0, "skipped": 0, "failed": 2, "running": 0, "interrupted": 0, "waiting": 1}
    lines = sweep.failure_lines(summary)
    assert len(lines) == 2 and "SLURM job 7_0 ended CANCELLED by 0 without a result" in lines[0]


def test_a_job_submitit_ended_itself_says_why(tmp_path):
    atomic_write_json(tmp_path / sweep.PLAN_FILE, {"invocation": "i1", "total": 1, "started_at": time.time()})
    trace = ("Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent "
             "call last):\n  File ...\nsubmitit.core.utils.UncompletedJobError: Job not requeued because: timed-out "
             "too many times.\n")
    ret = _launcher(tmp_path)._outcome(FakeJob("9_0", "TIMEOUT", FailedJobError(trace)), ["loss=dpo"], 0)
    err = ret.return_value["error"]
    assert err["type"] == "FailedJobError" and err["message"].startswith(
        "SLURM job 9_0 ended TIMEOUT: submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out")
    assert sweep.summarize(tmp_path)["counts"]["failed"] == 1


def test_a_job_slurm_requeued_after_a_lost_node_is_waited_for_not_failed(tmp_path, monkeypatch):
    """The accounting says NODE_FAIL for a moment before the controller requeues the job: the launcher asks the
    controller (squeue) and waits for the job's second run; a CANCELLED job is never waited for."""
    from bench.sweep import launcher as slurm

    atomic_write_json(tmp_path / sweep.PLAN_FILE, {"invocation": "i1", "total": 1, "started_at": time.time()})
    done = JobReturn(overrides=["loss=dpo"], status=HydraStatus.COMPLETED, _return_value={"status": "ok"})

    class Requeued(FakeJob):  # first results(): no result (the node died); then the requeued run's
        calls = 0

        def results(self):
            Requeued.calls += 1
            if Requeued.calls == 1:
                raise UncompletedJobError("Job 5_0 has not produced any output (state: NODE_FAIL)")
            return [done]

    live = iter(["NODE_FAIL", "PENDING", "PENDING", "RUNNING", None])  # the controller: requeued, then run, then gone
    asked: list[str] = []
    monkeypatch.setattr(slurm, "live_state", lambda job_id: asked.append(job_id) or next(live))
    monkeypatch.setattr(slurm.time, "sleep", lambda s: None)
    job = Requeued("5_0", "NODE_FAIL", None)
    job.paths.result_pickle = tmp_path / "5_0_result.pkl"  # not there while it runs again
    assert _launcher(tmp_path)._outcome(job, ["loss=dpo"], 0) is done and Requeued.calls == 2
    assert asked == ["5_0"] * 5
    assert sweep.summarize(tmp_path)["counts"]["failed"] == 0

    # a lost node whose job was not requeued: watched for the grace period, then a failed cell
    monkeypatch.setattr(slurm, "live_state", lambda job_id: "NODE_FAIL")
    assert not slurm.back_in_queue("5_1", "NODE_FAIL", grace_s=0.0)
    # a cancelled job: its end is its end, the controller is not asked
    monkeypatch.setattr(slurm, "live_state", lambda job_id: pytest.fail("asked about a cancelled job"))
    assert not slurm.back_in_queue("5_2", "CANCELLED by 0")


def test_the_launcher_unpickles_in_a_job_without_the_plugin_path(tmp_path):
    """submitit pickles the launcher into every job (and again at a checkpoint); a job's Python has the project but
    not bench/sweep/plugins on its path, so the plug-in class must travel as bench.sweep.launcher's."""
    import cloudpickle
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as HydraSlurmLauncher
    from hydra_plugins.prefnoise import SlurmLauncher as Plugin

    from bench.sweep.launcher import SlurmLauncher

    launcher = _launcher(tmp_path)
    assert type(launcher) is Plugin and isinstance(launcher, HydraSlurmLauncher)
    path = tmp_path / "launcher.pkl"
    path.write_bytes(cloudpickle.dumps(launcher))
    code = ("import pickle, sys; obj = pickle.load(open(sys.argv[1], 'rb')); "
            "print(type(obj).__module__, type(obj).__name__, obj.params['partition'], hasattr(obj, 'checkpoint'))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["bench.sweep.launcher", "SlurmLauncher", "ci", "True"]
    back = cloudpickle.loads(path.read_bytes())
    assert type(back) is SlurmLauncher and back.params == launcher.params


def test_the_slurm_launcher_config_names_the_plugin():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.sweep.dir=/tmp/x",
                                           "+cluster.gpus_per_cell=0", "train.num_gpus=2"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.prefnoise.SlurmLauncher"
    assert launcher["gpus_per_node"] == 0 and launcher["max_num_timeout"] == 0  # a CPU partition's cluster setting
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.sweep.dir=/tmp/x", "train.num_gpus=2"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher.gpus_per_node == 2  # without it: train.num_gpus per cell

