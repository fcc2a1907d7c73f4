"""Shared fixtures: one thread per process, and one smoke world built once per test session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "bench" / "run.py")]


def run_bench(*overrides: str, root: Path, results: Path | None = None, check: bool = True,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``bench/run.py`` with overrides, with its cache (and results) under ``root``; returns the completed
    process. ``results``: records go there instead (a test that shares the session's smoke world writes its own
    records, so no test reads another's leftovers)."""
    if results is not None:
        overrides = (*overrides, f"paths.results={results}")
    env = {**os.environ, "PREFNOISE_ROOT": str(root), "TQDM_DISABLE": "1"}
    proc = subprocess.run([*RUN, *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"bench/run.py {' '.join(overrides)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """A root whose .cache holds the smoke world (built by one smoke cell); results/ holds that cell's record."""
    root = tmp_path_factory.mktemp("smoke")
    run_bench("experiment=smoke", root=root)
    return root
