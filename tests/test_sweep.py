"""Sweeps at scale: a joblib sweep; a sweep killed halfway with a failed cell, resumed through submitit's local
executor; the shared reference log-prob cache against TRL's own precompute; launcher configs, GPU claims and the
multi-GPU launch command.

The sweeps reuse the session's smoke world (conftest.smoke_root) through paths.cache and write their records under
their own tmp results dir, so each test sees only its own cells.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from bench import sweep
from bench.core import records
from conftest import ROOT, RUN, run_bench

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _args(root: Path, smoke_root: Path) -> list[str]:
    # the session's smoke world, this test's own results and sweep dir; 4 new tokens keep evaluation short
    return ["-m", "experiment=smoke", "eval.max_new_tokens=4", f"paths.cache={smoke_root / '.cache'}",
            f"hydra.sweep.dir={root / 'sweep'}"]


def _sweep(root: Path, *overrides: str, smoke_root: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run_bench(*_args(root, smoke_root), *overrides, root=root, check=check)


def _statuses(root: Path) -> dict[int, dict]:
    return {s["job"]: s for s in sweep.read_statuses(root / "sweep")}


def _records(root: Path) -> dict[str, dict]:
    return {r["cell_id"]: r for r in records.iter_records(root / "results")}


def _compose(*overrides: str, conf_dir: Path = ROOT / "conf"):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


# ---------------------------------------------------------------------------------------------------------------
# launchers


@pytest.mark.slow
def test_joblib_sweep_runs_cells_in_parallel_with_one_thread_each(tmp_path, smoke_root):
    proc = _sweep(tmp_path, "hydra/launcher=parallel", "noise.rate=0,0.4", smoke_root=smoke_root)
    recs = _records(tmp_path)
    assert sorted(r["rate"] for r in recs.values()) == [0.0, 0.4] and all(r["status"] == "ok" for r in recs.values())
    st = _statuses(tmp_path)
    assert sorted(st) == [0, 1] and {s["state"] for s in st.values()} == {"ok"}
    assert all(s["torch_threads"] == 1 for s in st.values())  # no thread fight between the 2 workers
    assert st[0]["pid"] != st[1]["pid"] and os.getpid() not in (st[0]["pid"], st[1]["pid"])  # loky workers
    a, b = st[0], st[1]
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # they overlapped in time
    plan = sweep.read_plan(tmp_path / "sweep")
    assert plan["total"] == 2 and plan["launcher"] == "JoblibLauncher"
    assert "2 cells: 2 ran (2 ok, 0 failed), 0 skipped" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# resume: kill a sweep halfway, fail a cell, re-run


@pytest.mark.slow
def test_killed_sweep_with_a_failed_cell_resumes_only_missing_cells_through_submitit(tmp_path, smoke_root):
    args = [*_args(tmp_path, smoke_root), "noise.rate=0,1.5,0.2"]  # job 1 fails, the sweep goes on; we kill job 2
    env = {**os.environ, "PREFNOISE_ROOT": str(tmp_path), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([*RUN, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while _statuses(tmp_path).get(2) is None:
            assert proc.poll() is None and time.time() < deadline, "sweep ended before job 2 started"
            time.sleep(0.02)
        # job 2 has just started (its cell takes seconds): kill the whole sweep at once, no cleanup allowed. (A
        # fixed wait here raced the cell, which can finish within a second on a warm cache.)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    st = _statuses(tmp_path)
    assert st[0]["state"] == "ok" and st[1]["state"] == "failed" and st[2]["state"] == "running"
    before = _records(tmp_path)
    assert sorted(r["status"] for r in before.values()) == ["failed", "ok"]  # job 2 left no record, not half a one
    failed = next(r for r in before.values() if r["status"] == "failed")
    assert failed["error"]["type"] == "ConfigError" and "noise.rate" in failed["error"]["message"]  # the one config error (a ValueError)
    assert failed["error"]["where"].startswith("config")
    summary = sweep.summarize(tmp_path / "sweep")  # the status command sees the dead job as interrupted
    assert summary["counts"]["interrupted"] == 1 and summary["counts"]["failed"] == 1

    # the re-run goes through submitit's local executor (one process per cell, like SLURM without a cluster)
    proc = _sweep(tmp_path, "noise.rate=0,1.5,0.2", "hydra/launcher=local_submitit", smoke_root=smoke_root, check=False)
    assert proc.returncode == 1  # a cell failed (again): non-zero exit, after every other cell ran
    assert sweep.read_plan(tmp_path / "sweep")["launcher"] == "LocalLauncher"
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's own job folders and logs
    assert "3 cells: 2 ran (1 ok, 1 failed), 1 skipped" in proc.stdout
    assert "ConfigError: noise.rate" in proc.stdout  # the one config error (a ValueError)
    st = _statuses(tmp_path)
    assert [st[j]["state"] for j in (0, 1, 2)] == ["skipped", "failed", "ok"]
    after = _records(tmp_path)
    assert len(after) == 3 == len({st[j]["cell_id"] for j in st})  # one record per cell, no duplicates
    ok_before = next(cid for cid, r in before.items() if r["status"] == "ok")
    assert after[ok_before]["finished_at"] == before[ok_before]["finished_at"]  # skipped, not re-run
    leftovers = [p for p in (tmp_path / "results" / "cells").rglob("*") if p.name.endswith(".tmp")]
    assert all(not p.name.startswith(".record.json") for p in leftovers)
    out = subprocess.run([RUN[0], "-m", "bench.sweep", "status", str(tmp_path / "sweep")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 1 and "3/3 cells finished, ok 1, skipped 1, failed 1" in out.stdout


# ---------------------------------------------------------------------------------------------------------------
# shared reference log-probs


@pytest.mark.slow
def test_reference_logp_cache_equals_trl_precompute_in_the_cell(tmp_path, smoke_root):
    import noise as noise_pkg
    from bench import data as data_mod
    from bench import losses
    from bench import training as tr
    from bench.cell.parts import build_parts
    from bench.models import load_causal_lm
    from bench.training import REF_COLUMNS
    from bench.training.ref_cache import ReferenceLogpCache

    cfg = _compose("experiment=smoke", f"paths.root={smoke_root}")
    with open_dict(cfg):
        del cfg["hydra"]
    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    loss = losses.from_config(OmegaConf.to_container(cfg.loss), noise_rate=0.4)
    policy, tok = load_causal_lm(data.model_path, "cpu")

    def ref_columns(rate: float, ref_cache, out: str):
        noisy = noise_pkg.get("random_flip", rate=rate, seed=3)(data.train)
        args = tr.dpo_config(parts.train, tmp_path / out, 0)
        t = tr.PreferenceTrainer(model=policy, args=args, train_dataset=noisy, processing_class=tok, pref_loss=loss,
                                 ref_cache=ref_cache)
        ds = t.train_dataset
        return np.asarray(ds["is_flipped"]), np.asarray(ds[REF_COLUMNS[0]]), np.asarray(ds[REF_COLUMNS[1]])

    flipped, direct_c, direct_r = ref_columns(0.4, None, "direct")  # TRL's own precompute, in the cell
    assert 0 < flipped.sum() < len(flipped)
    cache = ReferenceLogpCache(tmp_path / "cache", {"data": data.fingerprint, "model": data.model_path})
    ref_columns(0.0, cache, "fill")  # the entry is built by a cell with another flip mask (none at all)
    assert (tmp_path / "cache" / "ref_logps" / cache.key / ".complete").exists()
    flipped2, cached_c, cached_r = ref_columns(0.4, cache, "cached")  # read back and re-oriented by this mask
    assert (flipped2 == flipped).all()
    np.testing.assert_allclose(cached_c, direct_c, rtol=0, atol=1e-4)
    np.testing.assert_allclose(cached_r, direct_r, rtol=0, atol=1e-4)
    assert not np.allclose(direct_c, direct_r)  # the check is not vacuous


# ---------------------------------------------------------------------------------------------------------------
# configs, claims, commands (fast)


def test_launcher_configs_compose_and_cluster_settings_come_from_local(tmp_path):
    import shutil

    for name, target in [("parallel", "JoblibLauncher"), ("local_submitit", "LocalLauncher"), ("slurm", "SlurmLauncher")]:
        cfg = _compose(f"hydra/launcher={name}", "hydra.sweep.dir=/tmp/x")
        launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        assert launcher["_target_"].endswith(target)
    assert _compose("hydra/launcher=parallel").hydra.launcher.n_jobs == 2
    slurm = _compose("hydra/launcher=slurm", "hydra.sweep.dir=/tmp/x").hydra.launcher
    assert slurm.partition is None and slurm.gpus_per_node == 1 and slurm.tasks_per_node == 1

    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()
    shutil.copy(ROOT / "conf" / "local.example" / "default.yaml", conf / "local" / "default.yaml")
    with_local = _compose("hydra/launcher=slurm", "hydra.sweep.dir=/tmp/x", "train.num_gpus=2", conf_dir=conf)
    s = OmegaConf.to_container(with_local.hydra.launcher, resolve=True)
    assert (s["partition"], s["account"], s["timeout_min"], s["gpus_per_node"]) == ("gpu", "my-project", 240, 2)
    assert s["setup"][0].startswith("module load")

    from bench.cell import cell_id

    plain = _compose("experiment=smoke")
    local = _compose("experiment=smoke", conf_dir=conf)
    for c in (plain, local):
        with open_dict(c):
            del c["hydra"]
    assert "cluster" in local and cell_id(local) == cell_id(plain)  # site settings are not part of a cell


def test_ray_launcher_config_composes_when_the_plugin_is_installed():
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    cfg = _compose("hydra/launcher=ray_cluster", "hydra.sweep.dir=/tmp/x")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("RayLauncher") and launcher["ray"]["remote"]["num_cpus"] == 1


def test_plan_counts_jobs_like_the_basic_sweeper():
    cfg = _compose()
    with_task = OmegaConf.to_container(cfg, resolve=False)
    with_task["hydra"]["overrides"]["task"] = ["loss=ropo,dpo", "noise.rate=0,0.2,0.4"]
    jobs = sweep.plan_jobs(OmegaConf.create(with_task))
    assert len(jobs) == 6 and ["loss=ropo", "noise.rate=0"] in jobs


def test_summary_and_eta_from_status_files(tmp_path):
    now = time.time()
    records.atomic_write_json(tmp_path / sweep.PLAN_FILE, {"invocation": "i1", "total": 6, "started_at": now - 100})
    rows = [("ok", 10.0, 65), ("ok", 30.0, 55), ("skipped", 0.1, 25), ("failed", 20.0, 25)]  # one at a time
    for j, (state, dur, ago) in enumerate(rows):
        records.atomic_write_json(tmp_path / str(j) / sweep.STATUS_FILE, {
            "job": j, "state": state, "duration": dur, "invocation": "i1", "started_at": now - ago,
            "error": {"type": "ValueError", "message": "bad", "where": "loss"} if state == "failed" else None})
    records.atomic_write_json(tmp_path / "4" / sweep.STATUS_FILE, {  # a running job (this very process)
        "job": 4, "state": "running", "invocation": "i1", "started_at": now - 5, "pid": os.getpid(),
        "host": __import__("socket").gethostname()})
    records.atomic_write_json(tmp_path / "9" / sweep.STATUS_FILE, {"job": 9, "state": "ok", "invocation": "old"})
    s = sweep.summarize(tmp_path)
    assert s["counts"] == {"ok": 2, "skipped": 1, "failed": 1, "running": 1, "interrupted": 0, "waiting": 1}
    assert s["eta_s"] == pytest.approx(20.0 * 1 + (20.0 - 5), abs=1.0)  # mean of cells that ran: 20 s
    line = sweep.progress_line(s)
    assert line.startswith("4/6 cells finished, ok 2, skipped 1, failed 1, running 1, waiting 1")
    assert "ValueError: bad (loss)" in sweep.failure_lines(s)[0]


def test_eta_counts_the_cells_a_launcher_runs_at_once(tmp_path):
    """Two jobs at a time: when one cell has just ended and the next has not started, one cell runs, and the ETA
    still divides by the two the launcher runs."""
    now = time.time()
    records.atomic_write_json(tmp_path / sweep.PLAN_FILE, {"invocation": "i1", "total": 8, "started_at": now - 100})
    for j, (ago, dur) in enumerate([(100, 40.0), (100, 40.0), (60, 40.0), (60, 40.0)]):  # two pairs, side by side
        records.atomic_write_json(tmp_path / str(j) / sweep.STATUS_FILE, {
            "job": j, "state": "ok", "duration": dur, "invocation": "i1", "started_at": now - ago})
    records.atomic_write_json(tmp_path / "4" / sweep.STATUS_FILE, {
        "job": 4, "state": "running", "invocation": "i1", "started_at": now - 10, "pid": os.getpid(),
        "host": __import__("socket").gethostname()})
    s = sweep.summarize(tmp_path)
    assert s["counts"]["running"] == 1 and s["counts"]["waiting"] == 3
    assert s["eta_s"] == pytest.approx((40.0 * 3 + 30.0) / 2, abs=1.0)


def test_each_job_claims_its_own_gpus(tmp_path, monkeypatch):
    from bench.cell import distributed

    monkeypatch.setattr(distributed, "_claimed", None)
    monkeypatch.setattr(distributed, "_locks", [])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert distributed.claim_devices(1, lock_dir=str(tmp_path)) == ["0"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert distributed.claim_devices(2, lock_dir=str(tmp_path)) == ["0"]  # claimed once per process
    monkeypatch.setattr(distributed, "_claimed", None)  # a second job on the same host (GPU 0's lock is held)
    assert distributed.claim_devices(2, devices=["0", "1", "2", "3"], lock_dir=str(tmp_path)) == ["1", "2"]
    for lock in distributed._locks:
        lock.release()
    monkeypatch.setattr(distributed, "_claimed", None)
    assert distributed.claim_devices(1, devices=["5"], lock_dir=str(tmp_path)) == ["5"]  # SLURM gave exactly one


def test_multi_gpu_cell_builds_its_own_accelerate_launch(tmp_path, monkeypatch):
    from bench.cell import cell_id, distributed, run_cell

    cmd = distributed.launch_command("/r/cells/abc/launch_config.yaml", 4, "abc", port=29555)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    i = cmd.index("--num_processes")
    assert cmd[i + 1] == "4" and "--multi_gpu" in cmd and cmd[cmd.index("--main_process_port") + 1] == "29555"
    assert cmd[-6:] == ["-m", "bench.cell.rank", "--config", "/r/cells/abc/launch_config.yaml", "--cell-id", "abc"]

    cfg = _compose("experiment=smoke", f"paths.root={tmp_path}", "train.num_gpus=2")
    with open_dict(cfg):
        del cfg["hydra"]
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv(distributed.CHILD_ENV, raising=False)
    assert distributed.needs_launch(cfg)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not distributed.needs_launch(cfg)  # inside the launch each rank runs the cell itself
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here: the cell fails cleanly, with a record
    with pytest.raises(RuntimeError, match="num_gpus=2"):
        run_cell(cfg)
    rec = records.read_record(tmp_path / "results", cell_id(cfg))
    assert rec["status"] == "failed" and rec["error"]["where"] == "launch"


def test_a_tuned_multi_gpu_cell_records_its_tuned_source_on_rank_0(tmp_path, monkeypatch):
    """The launch carries the cell's hp_source to the ranks, and rank 0 records it (a tuned cell is never recorded
    as paper defaults)."""
    import json

    from bench import data as data_mod
    from bench.cell import cell_id, distributed, rank

    cfg = _compose("experiment=smoke", f"paths.root={tmp_path}", "train.num_gpus=2")
    with open_dict(cfg):
        del cfg["hydra"]
    cid = cell_id(cfg)
    tuned = {"source": "tuning", "tuning": "tune/oracle", "values": {"train.learning_rate": 1e-4}}
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv(distributed.CHILD_ENV, raising=False)
    monkeypatch.setattr(distributed, "visible_devices", lambda: ["0", "1"])
    monkeypatch.setattr(data_mod, "load", lambda *a, **k: None)  # the shared artifacts: not needed here
    launched = []

    class Done:
        returncode = 0

    def fake_run(cmd, env=None):  # stands in for `accelerate launch`: runs rank 0's entry point in this process
        launched.append(cmd)
        argv = cmd[cmd.index("bench.cell.rank") + 1:]
        seen = {}
        monkeypatch.setattr(rank, "run_cell", lambda c, hp_source=None: seen.update(hp_source=hp_source) or
                            records.write_record(c.paths.results, {"cell_id": cid, "status": "ok",
                                                                   "hp_source": hp_source}))
        assert rank.child_main(argv) == 0 and seen["hp_source"] == tuned
        return Done()

    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    rec = distributed.launch_cell(cfg, cid, tmp_path / "results", {"cell_id": cid, "hp_source": tuned})
    assert rec["hp_source"] == tuned
    hp_file = Path(launched[0][launched[0].index("--hp-source") + 1])
    assert json.loads(hp_file.read_text()) == tuned


def test_cell_id_ignores_progress_bars_and_keys_gpus_per_cell():
    from bench.cell import cell_id

    def cid(*o):
        c = _compose("experiment=smoke", *o)
        with open_dict(c):
            del c["hydra"]
        return cell_id(c)

    base = cid()
    assert cid("train.progress=false") == base  # how a cell shows progress does not change its result
    assert cid("train.num_gpus=1") == base
    assert cid("train.num_gpus=2") != base  # twice the effective batch: another cell
    assert cid("train.learning_rate=1e-4") != base


def test_all_losses_is_every_registered_loss():
    """Issue 24: ``experiment=all_losses`` is built from the registry (``losses: all``), so a new loss joins it."""
    from bench import losses
    from bench.sweep.sweeper import CellsSweeper

    node = OmegaConf.to_container(_compose("experiment=all_losses").hydra.sweeper)
    sweeper = CellsSweeper(node["losses"], node.get("conditions"), node.get("seeds"), node.get("params"))
    jobs = sweeper.jobs([])
    assert sorted({j for job in jobs for j in job if j.startswith("loss=")}) == sorted(f"loss={n}" for n in
                                                                                      losses.names())
    assert len(jobs) == len(losses.names()) * 2 * 3 and ["noise.rate=0", "loss=dpo", "seed=0"] in jobs


def test_records_per_sweep_name_count_ok_and_failed_cells_across_multiruns(tmp_path, capsys):
    from bench.core.records import write_record
    from bench.sweep.status import by_study, main

    for i, (name, status, total) in enumerate([("a", "ok", 10.0), ("a", "ok", 30.0), ("a", "failed", None),
                                                 ("b", "ok", 5.0), ("other", "ok", 1.0), ("a", "ok", 2.0)]):
        write_record(tmp_path, {"cell_id": f"c{i}", "sweep": name, "status": status,
                                "timings": {"total": total} if total else {},
                                **({"borrowed_from": {"cell_id": "c4"}} if total == 2.0 else {}),
                                **({"stopped": {"epoch": 3.0}} if total == 30.0 else {})})
    rows = {r["sweep"]: r for r in by_study(tmp_path, ["a", "b", "none"])}
    assert (rows["a"]["ok"], rows["a"]["failed"], sorted(rows["a"]["seconds"])) == (3, 1, [2.0, 10.0, 30.0])
    assert rows["a"]["borrowed"] == 1 and rows["a"]["stopped"] == 1 and sorted(rows["a"]["trained"]) == [10.0, 30.0]
    assert rows["b"]["ok"] == 1 and rows["none"]["ok"] == 0 and rows["none"]["latest"] is None
    assert main(["records", "a", "none", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| a | 3 | 1 | 1 | 1 | 0.0 | 20 s |" in out and "| none | 0 | 0 | 0 | 0 | 0.0 | - | - |" in out
