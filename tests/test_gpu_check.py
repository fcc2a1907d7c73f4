"""The GPU check (bench/perf/gpu_check.sh, bench/perf/gpu.py): on a machine without a CUDA GPU it says so and exits
0; its figures (MFU, the peak it divides by, per-cell step time and tokens/s) are computed as documented."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bench.perf import gpu
from conftest import ROOT


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: the check would really run")
def test_without_a_gpu_it_says_so_and_exits_0():
    proc = subprocess.run(["bash", str(ROOT / "bench" / "perf" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU visible" in proc.stdout


def test_the_python_body_without_cuda_exits_0(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("sys.argv", ["bench.perf.gpu"])
    assert gpu.main() == 0 and "no CUDA GPU" in capsys.readouterr().out


def test_peaks_and_mfu():
    assert gpu.bf16_peak("NVIDIA H200") == 989.0 and gpu.bf16_peak("NVIDIA L40S") == 362.0  # not L40's, not L4's
    assert gpu.bf16_peak("NVIDIA L4") == 121.0 and gpu.bf16_peak("Some Future GPU") is None
    # 6 x 135M parameters x 1M tokens/s = 8.1e14 FLOP/s: 81.9% of 989 TFLOP/s
    assert gpu.mfu(135_000_000, 1e6, 989.0) == pytest.approx(6 * 135e6 * 1e6 / 989e12)
    assert gpu.mfu(135_000_000, 1e6, None) is None


def test_cell_figures_from_a_record():
    rec = {"cell_id": "c", "loss": "dpo", "rate": 0.2, "train_steps": 10, "timings": {"train": 5.0, "total": 30.0},
           "gpu": {"peak_memory_bytes": 3 * 2**30}, "metrics": {"gold_reward": 0.1}}
    f = gpu.cell_figures(rec, train_tokens=50_000, n_params=100, peak_tflops=1.0)
    assert f["step_s"] == 0.5 and f["tokens_per_s"] == 10_000 and f["peak_gpu_gib"] == 3.0 and f["wall_s"] == 30.0
    assert f["mfu"] == pytest.approx(6 * 100 * 10_000 / 1e12)
