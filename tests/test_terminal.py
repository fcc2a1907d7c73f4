"""A readable terminal: one progress bar per running cell, one line per finished cell, TRL's per-step logs only
when asked, and no warnings caused by the project's own settings."""
from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest

from conftest import ROOT, RUN, run_bench

pytestmark = pytest.mark.slow

QUICK = ["experiment=smoke", "eval.max_new_tokens=4"]
LIBRARY_BARS = ("Computing reference log probs", "Tokenizing", "Adding EOS", "Loading weights", "Map", "Filter",
                "Flattening", "Writing model shards", "sampling evaluation pairs")


def _cache(smoke_root) -> str:
    return f"paths.cache={smoke_root / '.cache'}"


def test_a_sweep_prints_one_line_per_cell_and_no_warnings(tmp_path, smoke_root):
    proc = run_bench("-m", *QUICK, _cache(smoke_root), "hydra/launcher=parallel", "noise.rate=0,0.4", root=tmp_path)
    results = [line for line in proc.stdout.splitlines() if line.startswith("[prefnoise] ok")]
    assert len(results) == 2 and {"random_flip@0 ", "random_flip@0.4 "} == {
        re.search(r"random_flip@[\d.]+ ", line).group(0) for line in results}
    assert all("gold_reward" in line and "cell " in line for line in results)
    out = proc.stdout + proc.stderr
    assert "{'loss'" not in out and "'learning_rate'" not in out  # no per-step dicts
    assert not re.search(r"(Future|Deprecation|User)Warning", out), out[-3000:]
    assert not any(bar in out for bar in LIBRARY_BARS)


def test_per_step_logs_only_when_asked(tmp_path, smoke_root):
    proc = run_bench(*QUICK, _cache(smoke_root), "train.print_logs=true", "train.logging_steps=1", root=tmp_path)
    assert proc.stdout.count("{'loss'") == 2  # two steps, two dicts
    logs = list((tmp_path / "results" / "cells").glob("*/train_log.jsonl"))
    assert len(logs) == 1 and len(logs[0].read_text().splitlines()) == 2  # the log file has them either way


def test_on_a_terminal_the_cell_has_one_bar(tmp_path, smoke_root):
    """Under a pseudo-terminal the cell draws its own bar (its label, then its phases) and no library draws one."""
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["PREFNOISE_ROOT"] = str(tmp_path)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*RUN, *QUICK, _cache(smoke_root)], cwd=ROOT, env=env, stdin=follower,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen[-3000:]
    assert "dpo random_flip@0.2 seed 0 | train" in screen and "dpo random_flip@0.2 seed 0 | policy samples" in screen
    assert not any(bar in screen for bar in LIBRARY_BARS), screen[-3000:]
    assert screen.count("[prefnoise] ok") == 1


def test_the_bar_is_off_in_pipes_and_logs(tmp_path, smoke_root):
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["PREFNOISE_ROOT"] = str(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), *QUICK, _cache(smoke_root)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and "| train" not in proc.stderr and proc.stdout.count("[prefnoise] ok") == 1
