"""GPU ownership for sweep jobs, and multi-GPU cells that start their own distributed launch.

Each cell owns explicit devices:

- one GPU per cell (the default, `train.num_gpus: 1`): under SLURM (`hydra/launcher=slurm`) the scheduler gives
  each job its own GPU through CUDA_VISIBLE_DEVICES. Where a job sees more GPUs than it needs (joblib or the basic
  launcher on a multi-GPU box), it claims free ones with a per-host file lock held for the life of its process and
  narrows CUDA_VISIBLE_DEVICES to them, so parallel jobs never pile onto GPU 0 and the HF Trainer never wraps a
  single-GPU cell in DataParallel.
- several GPUs per cell (`train.num_gpus: 4`): the job does not rely on the launcher; it builds the shared
  artifacts (world, reference policy) once, then runs

      python -m accelerate.commands.launch --multi_gpu --num_processes 4 ... -m bench.cell.rank --config <cell>/launch_config.yaml

  Every rank (``bench.cell.rank``) trains (DDP through TRL/accelerate); rank 0 alone evaluates and writes the record
  and the W&B run.
  bf16 comes from the cell's own `train.bf16` (auto: on for GPUs that support it), which TRL applies in each rank.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import data as data_mod
from bench.cell.parts import Parts, build_parts
from bench.core import records
from bench.core.files import atomic_write_json, atomic_write_text

log = logging.getLogger("prefnoise")

CHILD_ENV = "PREFNOISE_DISTRIBUTED_CHILD"
_claimed: list[str] | None = None  # devices this process owns (kept for its lifetime)
_locks: list = []


def num_gpus(cell) -> int:
    """``train.num_gpus`` of ``cell``: a composed config (a job, before its cell's parts are built) or its ``Parts``."""
    return int(cell.train.num_gpus)


def in_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1" or "LOCAL_RANK" in os.environ


def needs_launch(cell) -> bool:
    """A cell (its composed config or its ``Parts``) that wants several GPUs and is not already one rank of a
    distributed launch."""
    return num_gpus(cell) > 1 and not in_child()


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# ----------------------------------------------------------------------------------------------------------------
# device claims


def visible_devices() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs); [] without CUDA."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        n = torch.cuda.device_count()  # NVML count: does not initialize CUDA
    except Exception:
        n = 0
    return [str(i) for i in range(n)]


def claim_devices(n: int, devices: list[str] | None = None, lock_dir: str | None = None) -> list[str]:
    """Own ``n`` of the visible GPUs for the rest of this process; narrows CUDA_VISIBLE_DEVICES to them.

    A no-op when the process sees at most ``n`` GPUs (SLURM gave it its own) or has claimed before (CUDA, once
    initialized, cannot move). Claims are per-host file locks, so parallel jobs on one machine get distinct GPUs.
    """
    global _claimed
    from filelock import FileLock, Timeout

    if _claimed is not None:
        return _claimed
    devices = visible_devices() if devices is None else devices
    if len(devices) <= n:
        _claimed = devices
        return devices
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
        log.warning("CUDA already initialized in this process: cannot narrow it to %d of %s GPUs", n, devices)
        _claimed = devices
        return devices
    lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / "prefnoise-gpu-locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    got: list[str] = []
    deadline = time.time() + 3600
    while len(got) < n:
        for d in devices:
            if d in got:
                continue
            lock = FileLock(str(lock_dir / f"{socket.gethostname()}-gpu-{d}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            _locks.append(lock)
            got.append(d)
            if len(got) == n:
                break
        if len(got) < n:
            if time.time() > deadline:
                raise RuntimeError(f"could not claim {n} free GPUs of {devices} within an hour")
            time.sleep(5)  # more jobs than GPUs on this host: wait for one to finish
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(got)
    log.info("this job owns GPU(s) %s", ",".join(got))
    _claimed = got
    return got


# ----------------------------------------------------------------------------------------------------------------
# the parent side: one job, its own `accelerate launch`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(config_path: str | os.PathLike, n: int, cell_id: str, port: int | None = None,
                   hp_source_path: str | os.PathLike | None = None) -> list[str]:
    """The argv of a multi-GPU cell's launch (pure, tested)."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(n), "--num_machines", "1",
        "--mixed_precision", "no",  # TRL sets bf16 per rank from train.bf16 (auto: on where the GPU supports it)
        "--dynamo_backend", "no",
        "--main_process_port", str(port if port is not None else free_port()),
        "-m", "bench.cell.rank", "--config", str(config_path), "--cell-id", cell_id,
    ] + (["--hp-source", str(hp_source_path)] if hp_source_path is not None else [])


def launch_cell(cfg: DictConfig, cid: str, results: str | os.PathLike, base: dict, parts: Parts | None = None) -> dict:
    """Run a multi-GPU cell as its own distributed launch; returns rank 0's record. A failure is recorded.

    It takes the composed config itself, past the cell's typed ``parts`` (built here when not given): its ranks are
    processes of their own, and the config, written beside the cell, is what each of them runs the cell from."""

    results = Path(results)
    n = num_gpus(cfg)
    start = time.time()

    def fail(kind: str, message: str, where: str):
        rec = {**base, "status": "failed", "error": {"type": kind, "message": message, "where": where}}
        records.write_record(results, rec)
        raise RuntimeError(f"{kind}: {message}")

    devices = visible_devices()
    if len(devices) < n:
        fail("ValueError", f"train.num_gpus={n} but {len(devices)} CUDA device(s) are visible", "launch")
    # the shared artifacts are built here, in one process, so the ranks only read them

    parts = build_parts(cfg) if parts is None else parts
    data_mod.load(parts.data, parts.model, parts.cache_root)
    config_path = records.cell_dir(results, cid) / "launch_config.yaml"  # the config the ranks run the cell from
    atomic_write_text(config_path, OmegaConf.to_yaml(cfg, resolve=True))
    hp_path = records.cell_dir(results, cid) / "launch_hp_source.json"  # rank 0 records where the values came from
    atomic_write_json(hp_path, base.get("hp_source") or {"source": "default"})
    cmd = launch_command(config_path, n, cid, hp_source_path=hp_path)
    env = {**os.environ, CHILD_ENV: "1", "CUDA_VISIBLE_DEVICES": ",".join(devices[:n])}
    log.info("multi-GPU cell %s: %s", cid, " ".join(cmd))
    rc = subprocess.run(cmd, env=env).returncode
    rec = records.read_record(results, cid)
    fresh = rec is not None and (records.cell_dir(results, cid) / records.RECORD_FILE).stat().st_mtime >= start
    if rc == 0 and fresh and rec.get("status") == "ok":
        return rec
    if fresh and rec.get("status") == "failed":
        e = rec["error"]
        raise RuntimeError(f"{e['type']}: {e['message']} ({e['where']})")
    fail("LaunchError", f"accelerate launch exited with {rc} and no record from rank 0", "launch: see this job's log")
