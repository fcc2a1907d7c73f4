"""The cluster path for real (issue 26): sweeps through a real single-node SLURM cluster (tests/slurm/cluster.sh:
munge, slurmdbd, slurmctld, slurmd) with submitit, and the faults a cluster brings: a job cancelled mid-cell, a job
preempted (submitit's checkpoint/requeue) or requeued by the scheduler, the node lost mid-sweep, and two sweeps of
overlapping cells at once.

These run where SLURM_CONF names a running cluster (`.ci/run` starts one, and sets PREFNOISE_REQUIRE_SLURM=1 so
that a cluster which did not come up fails here instead of skipping); elsewhere each test skips with one line.
The cells are smoke cells on the session's smoke world (conftest.smoke_root, through paths.cache); each test has its
own results and sweep dirs, and every sweep reads its site settings from an untracked-style site config
(`local/default.yaml` in a folder on hydra.searchpath, as conf/local/default.yaml would be on a real site).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from bench import sweep
from bench.core import records
from conftest import ROOT, RUN

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PARTITION = "ci"  # tests/slurm/cluster.sh's only partition
FAULT_STEPS = 80  # training steps of a cell a fault must catch mid-way: seconds of training, more than KillWait (2 s)
SITE = f"""# @package _global_
# the site config of the test cluster: what conf/local/default.yaml holds on a real site
cluster:
  partition: {PARTITION}
  account: null
  time_min: 60
  cpus_per_task: 1
  mem_gb: 1
  gpus_per_cell: 0      # a partition without GPUs
  max_parallel: 4
"""


def _why_no_cluster() -> str | None:
    """Why the cluster tests cannot run here, in one line (None: they can)."""
    how = 'start one as root with: eval "$(tests/slurm/cluster.sh up)" (.ci/run does)'
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        return f"no SLURM cluster (SLURM_CONF={conf or ''} names no file): {how}"
    try:
        out = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no SLURM cluster (sinfo: {e}): {how}"
    states = {s.rstrip("*~#$@+") for s in out.stdout.split()}
    if out.returncode or not states & {"idle", "mixed", "allocated", "completing"}:
        said = " ".join((out.stderr or out.stdout).split())[:160] or "no node"
        return f"no SLURM cluster answering on partition {PARTITION!r} ({said}): {how}"
    return None


@pytest.fixture(scope="session", autouse=True)  # session: decided before the session's smoke world is built
def cluster():
    why = _why_no_cluster()
    if why is not None:
        if os.environ.get("PREFNOISE_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("site")
    (folder / "local").mkdir()
    (folder / "local" / "default.yaml").write_text(SITE)
    return f"hydra.searchpath=[file://{folder}]"


class Sweep:
    """One sweep of smoke cells through the cluster: `bench/run.py -m hydra/launcher=slurm ...` in the background,
    its sweep dir ``root/<name>``, its records under ``root/results``, its jobs' statuses, SLURM ids and logs."""

    def __init__(self, root: Path, smoke_root: Path, site: str, *overrides: str, name: str = "sweep"):
        self.root, self.dir, self.log = root, root / name, root / f"{name}.log"
        self.args = ["-m", "hydra/launcher=slurm", "experiment=smoke", "eval.max_new_tokens=4",
                     f"paths.cache={smoke_root / '.cache'}", f"paths.results={root / 'results'}",
                     f"hydra.sweep.dir={self.dir}", site, *overrides]
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sweep:
        env = {**os.environ, "PREFNOISE_ROOT": str(self.root), "TQDM_DISABLE": "1"}
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([*RUN, *self.args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def wait(self, timeout: float = 420) -> tuple[int, str]:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        return rc, self.log.read_text()

    def run(self, timeout: float = 420) -> tuple[int, str]:
        return self.start().wait(timeout)

    def statuses(self) -> dict[int, dict]:
        return {s["job"]: s for s in sweep.read_statuses(self.dir, sweep.read_plan(self.dir).get("invocation"))}

    def mid_cell(self, job: int, timeout: float = 240) -> dict:
        """Job ``job``'s status once its cell is training: its flip mask is written, and training is next."""
        deadline = time.time() + timeout
        while True:
            s = self.statuses().get(job) or {}
            cid = s.get("cell_id")
            if cid and s.get("state") == "running" and (self.root / "results" / "cells" / cid / "flip_mask.json").exists():
                return s
            assert self.proc is None or self.proc.poll() is None, f"the sweep ended first:\n{self.log.read_text()[-3000:]}"
            assert time.time() < deadline, f"job {job} never got to training: {s}"
            time.sleep(0.2)

    def slurm_id(self, job: int) -> str:
        """The SLURM id of job ``job`` (``<array id>_<job>``): submitit's folder for it."""
        found = [p.name for p in (self.dir / ".submitit").glob(f"*_{job}") if p.is_dir()]
        assert len(found) == 1, found
        return found[0]

    def job_log(self, job: int) -> str:
        jid = self.slurm_id(job)
        return (self.dir / ".submitit" / jid / f"{jid}_0_log.out").read_text()

    def stop(self) -> None:
        """Stop the sweep process if it still runs, and cancel its jobs (a failed test leaves nothing queued)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        arrays = {p.name.split("_")[0] for p in (self.dir / ".submitit").glob("*_*")} if self.dir.exists() else set()
        if arrays:
            subprocess.run(["scancel", *sorted(arrays)], capture_output=True)


@pytest.fixture
def sweeps(tmp_path, smoke_root, site):
    """``sweeps(*overrides, name=...)``: a Sweep under this test's tmp dir, stopped (and its jobs cancelled) after."""
    made: list[Sweep] = []

    def make(*overrides: str, name: str = "sweep") -> Sweep:
        made.append(Sweep(tmp_path, smoke_root, site, *overrides, name=name))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def _records(root: Path) -> dict[str, dict]:
    return {r["cell_id"]: r for r in records.iter_records(root / "results")}


def _record_files(root: Path) -> list[Path]:
    """Every file a cell folder holds that is a record or a record being written (a temp file left half-way)."""
    return sorted(p for p in (root / "results" / "cells").glob("*/*") if p.name.startswith(("record.json", ".record")))


def _attempts(job_id: str, timeout: float = 60) -> list[str]:
    """The states of every run of a SLURM job, first to last, from the accounting (sacct --duplicates), once the
    last one has ended (a job whose result is in is still exiting for a moment)."""
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job_id], capture_output=True,
                             text=True, check=True)
        states = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
        if states and states[-1] not in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED"):
            return states
        assert time.time() < deadline, f"SLURM job {job_id} still {states}"
        time.sleep(0.5)


def _status_command(sweep_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([RUN[0], "-m", "bench.sweep", "status", str(sweep_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------------------------------------------------------
# a sweep through the cluster


def test_a_sweep_runs_each_cell_as_a_slurm_job_once_and_status_reads_it(sweeps, tmp_path):
    s = sweeps("loss=dpo,ipo", "noise.rate=0,0.4")
    rc, out = s.run()
    assert rc == 0, out[-3000:]
    assert "4 cells: 4 ran (4 ok, 0 failed), 0 skipped" in out
    plan = sweep.read_plan(s.dir)
    assert plan["launcher"] == "SlurmLauncher" and plan["total"] == 4
    st = s.statuses()
    assert sorted(st) == [0, 1, 2, 3] and {x["state"] for x in st.values()} == {"ok"}

    # one SLURM array, one task per cell, each COMPLETED once; the cell ran inside it (its line is in the job's log)
    ids = [s.slurm_id(j) for j in range(4)]
    assert len({i.split("_")[0] for i in ids}) == 1
    for j, jid in enumerate(ids):
        assert _attempts(jid) == ["COMPLETED"]
        assert f"job_id={jid}" in s.job_log(j) and f"cell {st[j]['cell_id']}" in s.job_log(j)
    # the site config reached sbatch: partition, time limit, CPUs, memory, no GPUs on this partition
    script = next((s.dir / ".submitit").glob("*/*_submission.sh")).read_text()
    for flag in ("--partition=ci", "--time=60", "--cpus-per-task=1", "--mem=1GB", "--gpus-per-node=0",
                 "--array=0-3%4", "--signal=USR2@120"):
        assert f"#SBATCH {flag}\n" in script, flag

    # records land once each: four cells, four complete records, nothing else
    recs = _records(tmp_path)
    assert sorted(recs) == sorted(x["cell_id"] for x in st.values())
    assert sorted((r["loss"], r["rate"]) for r in recs.values()) == [("dpo", 0.0), ("dpo", 0.4), ("ipo", 0.0),
                                                                     ("ipo", 0.4)]
    assert all(r["status"] == "ok" and "gold_reward" in r["metrics"] for r in recs.values())
    assert [p.name for p in _record_files(tmp_path)] == ["record.json"] * 4

    status = _status_command(s.dir)
    assert status.returncode == 0, status.stderr
    assert "4/4 cells finished, ok 4, skipped 0, failed 0, running 0, waiting 0" in status.stdout


# ---------------------------------------------------------------------------------------------------------------
# faults


def test_a_job_cancelled_mid_cell_leaves_no_record_and_a_rerun_runs_only_that_cell(sweeps, tmp_path):
    overrides = ("loss=dpo", "noise.rate=0,0.4", f"train.max_steps={FAULT_STEPS}")
    s = sweeps(*overrides).start()
    victim = s.mid_cell(1)
    jid = s.slurm_id(1)
    # scancel marks the job CANCELLED at once, but its processes get SIGTERM (ignored by submitit's jobs) and SIGKILL
    # only KillWait seconds later, or later still on a busy node: a smoke cell could finish and write its record in
    # between (it did in one fresh-clone run: 0 cancelled). The SIGKILL SLURM sends is sent here right after instead
    procs = _job_pids(jid, stepd=False)
    subprocess.run(["scancel", jid], check=True)
    _kill(procs)
    rc, out = s.wait()

    # the sweep waits for its other cell, then ends with its summary: one failed cell, exit 1
    assert rc == 1, out[-3000:]
    assert "2 cells: 2 ran (1 ok, 1 failed), 0 skipped" in out
    assert f"SLURM job {jid} ended CANCELLED" in out
    st = s.statuses()
    assert st[0]["state"] == "ok" and st[1]["state"] == "failed" and st[1]["error"]["where"] == "slurm"
    assert st[1]["cell_id"] == victim["cell_id"]
    assert _attempts(jid)[-1].startswith("CANCELLED")
    before = _records(tmp_path)
    assert list(before) == [st[0]["cell_id"]] and before[st[0]["cell_id"]]["status"] == "ok"
    assert not (tmp_path / "results" / "cells" / victim["cell_id"] / "record.json").exists()  # not half a one
    assert [p.name for p in _record_files(tmp_path)] == ["record.json"]
    status = _status_command(s.dir)
    assert status.returncode == 1 and "2/2 cells finished, ok 1, skipped 0, failed 1" in status.stdout
    assert f"SLURM job {jid} ended CANCELLED" in status.stdout

    # the same command again: only the cancelled cell runs
    again = sweeps(*overrides, name="rerun")
    rc, out = again.run()
    assert rc == 0, out[-3000:]
    assert "2 cells: 1 ran (1 ok, 0 failed), 1 skipped" in out
    st2 = again.statuses()
    assert (st2[0]["state"], st2[1]["state"]) == ("skipped", "ok") and st2[1]["cell_id"] == victim["cell_id"]
    after = _records(tmp_path)
    assert sorted(after) == sorted([st[0]["cell_id"], victim["cell_id"]])
    assert all(r["status"] == "ok" for r in after.values())
    assert after[st[0]["cell_id"]]["finished_at"] == before[st[0]["cell_id"]]["finished_at"]  # not re-run


def test_a_preempted_or_requeued_job_runs_its_cell_again_and_leaves_one_complete_record(sweeps, tmp_path):
    steps = 4 * FAULT_STEPS  # a cell of about 15 s: signals sent mid-cell land before it ends, on a fast machine too
    s = sweeps("loss=dpo", "noise.rate=0,0.4", f"train.max_steps={steps}").start()
    first = {0: s.mid_cell(0)}
    preempted = s.slurm_id(0)
    # job 0: the signal SLURM sends ahead of a preemption or the time limit (USR2, as submitit's own tests send it):
    # submitit calls the launcher's checkpoint (the same call again) and requeues the job itself
    subprocess.run(["scancel", "--signal=USR2", preempted], check=True)
    first[1] = s.mid_cell(1)
    requeued = s.slurm_id(1)
    # job 1: requeued by the scheduler (an admin, a preemption with PreemptMode=REQUEUE): killed, back in the queue.
    # SLURM sends SIGTERM (which submitit's jobs ignore) and SIGKILL some seconds later (in one CI run it had not
    # come 3.4 s after the SIGTERM, with KillWait=2), long enough for a smoke cell to finish: a race. The SIGKILL
    # is sent here at once instead
    procs = _job_pids(requeued, stepd=False)
    subprocess.run(["scontrol", "requeue", requeued], check=True)
    _kill(procs)
    rc, out = s.wait()

    assert rc == 0, out[-3000:]
    assert "2 cells: 2 ran (2 ok, 0 failed), 0 skipped" in out
    log0 = s.job_log(0)
    assert "Caught signal SIGUSR2" in log0 and "this job is preempted" in log0 and f"Requeued job {preempted}" in log0
    st = s.statuses()
    recs = _records(tmp_path)
    for j, jid in ((0, preempted), (1, requeued)):
        assert _attempts(jid) == ["REQUEUED", "COMPLETED"]  # SLURM ran the job twice
        assert st[j]["cell_id"] == first[j]["cell_id"]
        rec = recs[first[j]["cell_id"]]
        assert rec["status"] == "ok" and rec["train_steps"] == steps and "gold_reward" in rec["metrics"]
        if j == 0 and st[j]["state"] == "skipped":
            # submitit's graceful exit on USR2 is a SystemExit raised inside the job's process: in one CI run (2 busy
            # cores) the cell still finished and wrote its complete record before the process ended, so the requeued
            # job found it complete. Still one complete record, written before the second attempt began
            assert datetime.fromisoformat(rec["finished_at"]).timestamp() < st[j]["started_at"]
        else:
            assert st[j]["state"] == "ok" and st[j]["started_at"] > first[j]["started_at"]  # ran again, from the start
    assert len(recs) == 2 and [p.name for p in _record_files(tmp_path)] == ["record.json"] * 2  # one each


def _slurm_setting(key: str) -> str:
    """A setting of the test cluster's slurm.conf (SLURM_CONF), e.g. SlurmdPidFile."""
    text = Path(os.environ["SLURM_CONF"]).read_text()
    found = re.search(rf"^{key}=(\S+)", text, re.M)
    assert found, key
    return found.group(1)


def _job_pids(job_id: str, stepd: bool = True) -> set[int]:
    """The processes of a running job on the node (everything its steps run, with their slurmstepd if ``stepd``)."""
    raw = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%A"], capture_output=True, text=True, check=True)
    out = subprocess.run(["scontrol", "listpids", raw.stdout.strip()], capture_output=True, text=True, check=True)
    pids = {int(line.split()[0]) for line in out.stdout.splitlines()[1:] if line.strip()}
    for pid in list(pids) if stepd else ():  # the job step daemons above them
        while True:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                break
            pid = int(stat.rsplit(")", 1)[1].split()[1])
            if Path(f"/proc/{pid}/comm").read_text().strip() != "slurmstepd":
                break
            pids.add(pid)
    return pids


def _kill(pids) -> None:
    """Kill ``pids`` as at once: all frozen first (SIGSTOP), then all killed. Killed one by one, a job's slurmstepd
    could see its child die and report the job FAILED before the stepd itself is killed: not a lost node."""
    pids = list(pids)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _node_state() -> str:
    return subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _wait_node(want: tuple[str, ...], timeout: float = 120) -> str:
    deadline = time.time() + timeout
    while not (state := _node_state()).startswith(want):
        assert time.time() < deadline, f"node state {state!r}, waited for {want}"
        time.sleep(0.5)
    return state


def test_a_node_lost_mid_sweep_requeues_its_cells_never_half_written_and_a_rerun_completes(sweeps, tmp_path):
    overrides = ("loss=dpo", "noise.rate=0,0.4", f"train.max_steps={FAULT_STEPS}")
    s = sweeps(*overrides).start()
    first = {j: s.mid_cell(j) for j in (0, 1)}
    ids = [s.slurm_id(j) for j in (0, 1)]
    # the node dies: its slurmd and every process of its jobs killed at once, as when it loses power
    victims = set().union(*(_job_pids(jid) for jid in ids))
    slurmd = int(Path(_slurm_setting("SlurmdPidFile")).read_text())
    _kill([slurmd, *victims])
    try:
        _wait_node(("down",))  # the controller gives up on it (SlurmdTimeout) and requeues its jobs
        assert _records(tmp_path) == {} and _record_files(tmp_path) == []  # nothing half-written, nothing at all
        assert s.proc.poll() is None  # the sweep waits for its requeued cells
    finally:
        subprocess.run(["slurmd"], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)  # the node comes back (a daemon: its log is SlurmdLogFile)
    _wait_node(("idle", "mixed", "allocated", "completing"))
    rc, out = s.wait()

    assert rc == 0, out[-3000:]
    assert "2 cells: 2 ran (2 ok, 0 failed), 0 skipped" in out
    st = s.statuses()
    recs = _records(tmp_path)
    for j, jid in enumerate(ids):
        assert _attempts(jid) == ["NODE_FAIL", "COMPLETED"]
        assert st[j]["state"] == "ok" and st[j]["started_at"] > first[j]["started_at"]
        assert recs[first[j]["cell_id"]]["status"] == "ok"
    assert len(recs) == 2 and [p.name for p in _record_files(tmp_path)] == ["record.json"] * 2

    # a re-run of the study finds it complete
    rc, out = sweeps(*overrides, name="rerun").run()
    assert rc == 0 and "2 cells: 0 ran (0 ok, 0 failed), 2 skipped" in out
    assert {k: r["finished_at"] for k, r in _records(tmp_path).items()} == {k: r["finished_at"] for k, r in recs.items()}


def test_two_sweeps_sharing_a_cell_at_once_train_it_twice_and_one_record_wins(sweeps, tmp_path):
    """The decision for overlapping sweeps: no lock between jobs. Two sweeps submitted at once that share a cell
    may both train it; each writes the whole record by rename, so one complete record wins, the cell's result is
    the same either way (seeded), and the report counts the cell once. Each sweep runs one cell at a time here and
    the shared cell comes first in both, so both really train it at the same time."""
    from bench.report.aggregate import load_results, robustness_table

    one_at_a_time = "hydra.launcher.array_parallelism=1"
    a = sweeps("loss=dpo", "noise.rate=0.4,0", f"train.max_steps={FAULT_STEPS}", one_at_a_time, name="a").start()
    b = sweeps("loss=dpo,ipo", "noise.rate=0.4", f"train.max_steps={FAULT_STEPS}", one_at_a_time, name="b").start()
    (rc_a, out_a), (rc_b, out_b) = a.wait(), b.wait()
    assert rc_a == 0 and rc_b == 0, out_a[-2000:] + out_b[-2000:]
    assert "2 cells: 2 ran (2 ok, 0 failed), 0 skipped" in out_a and "2 cells: 2 ran (2 ok, 0 failed), 0 skipped" in out_b

    sa, sb = a.statuses(), b.statuses()
    shared = sa[0]["cell_id"]
    assert sb[0]["cell_id"] == shared and sa[1]["cell_id"] != shared != sb[1]["cell_id"]
    # trained twice, at the same time: neither job found it complete when it started
    assert sa[0]["state"] == sb[0]["state"] == "ok"
    assert sa[0]["started_at"] < sb[0]["ended_at"] and sb[0]["started_at"] < sa[0]["ended_at"]
    # one record wins: one complete record.json for the cell, no temp file left, three cells in all
    recs = _records(tmp_path)
    assert len(recs) == 3 and recs[shared]["status"] == "ok"
    assert [p.name for p in _record_files(tmp_path)] == ["record.json"] * 3
    # both runs printed the same result, and it is the record's (which run's rename came last does not matter)
    line = rf"\[prefnoise\] ok +dpo random_flip@0.4 seed 0: (.+) \(\d+ s\) cell {shared}"
    printed = {re.search(line, log).group(1) for log in (a.job_log(0), b.job_log(0))}
    m = recs[shared]["metrics"]
    assert printed == {f"gold_reward {m['gold_reward']:.4g}, kl {m['kl']:.4g}, length {m['length']:.4g}"}
    # the report counts the shared cell once
    res = load_results(tmp_path / "results")
    assert len(res.cells) == 3 and list(res.cells["cell_id"]).count(shared) == 1
    table = robustness_table(res)
    row = table[(table["loss"] == "dpo") & (table["rate"] == 0.4) & (table["metric"] == "gold_reward")]
    assert row["n_seeds"].tolist() == [1]
