"""The CPU-side parts of the LoRA benchmark (bench/perf/lora.py) and of the GPU check's LoRA cell
(bench/perf/gpu.py, bench/perf/gpu_check.sh): the plan and its overrides compose into a valid LoRA cell in bf16
beside the full one, MFU counts a LoRA step's FLOPs, the shell script parses, and the paper estimate's terms are
what its docstring says."""
from __future__ import annotations

import subprocess

import pytest

from bench.perf import gpu
from bench.perf import lora as perf_lora
from conftest import ROOT


def test_the_gpu_check_runs_a_lora_cell_beside_the_full_one():
    from bench.cell.identity import cell_id
    from bench.cell.parts import build_parts
    from bench.config.compose import compose

    steps = dict(gpu.plan(1))
    full, lora = steps["one world cell (world build included)"], steps["the same cell with LoRA (rank 16, every linear layer)"]
    assert list(steps)[:2] == ["one world cell (world build included)",
                               "the same cell with LoRA (rank 16, every linear layer)"]  # before the sweep
    assert len(gpu.plan(2)) == len(gpu.plan(1)) + 1
    p = build_parts(compose(lora))
    assert p.train.lora.rank == 16 and p.train.lora.target_modules == "all-linear"
    assert p.train.bf16 == "auto" and p.model.name == "smollm2_135m"  # bf16 on a GPU that has it, as the full cell
    assert cell_id(compose(lora)) != cell_id(compose(full))


def test_gpu_check_script_parses_and_pins_peft():
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "perf" / "gpu_check.sh")]).returncode == 0
    text = (ROOT / "bench" / "perf" / "gpu_check.sh").read_text()
    assert "peft==" in (ROOT / "pyproject.toml").read_text() and "PEFT_PIN" in text


def test_mfu_counts_a_lora_steps_flops():
    full = {"provenance": {"lora": None, "parameters": {"trainable": 100, "total": 100}}}
    lora = {"provenance": {"lora": {"rank": 16}, "parameters": {"trainable": 10, "total": 110}}}
    assert gpu.flops_per_token(full, 100) == 600.0 and gpu.flops_per_token({}, 100) == 600.0
    assert gpu.flops_per_token(lora, 100) == 4 * 100 + 6 * 10
    rec = {**lora, "cell_id": "c", "loss": "dpo", "rate": 0.0, "train_steps": 10, "timings": {"train": 5.0},
           "metrics": {}}
    f = gpu.cell_figures(rec, train_tokens=50_000, n_params=100, peak_tflops=1.0)
    assert f["lora"] is True and f["trainable"] == 10
    assert f["mfu"] == pytest.approx((4 * 100 + 6 * 10) * 10_000 / 1e12)


def test_the_paper_estimate_by_hand():
    one_b, eight_b = perf_lora.SHAPES
    assert one_b.parameters() == pytest.approx(1.236e9, rel=2e-3) and eight_b.parameters() == pytest.approx(
        8.030e9, rel=2e-3)  # the published sizes of these shapes
    # rank 16 on q, k, v, o, gate, up, down of a 2048-wide, 16-layer model with 512-wide k/v and an 8192 MLP
    assert one_b.lora_parameters(16) == 16 * 16 * (4096 + 2560 + 2560 + 4096 + 3 * 10240)
    e = perf_lora.estimate(one_b, rank=16, tokens=1000, completion_tokens=500)
    gib = 2**30
    n, a = one_b.parameters(), one_b.lora_parameters(16)
    assert e["full"]["weights"] == pytest.approx(2 * n / gib) and e["full"]["trainable_state"] == pytest.approx(
        14 * n / gib)
    assert e["lora"]["weights"] == pytest.approx(2 * (n + a) / gib)
    assert e["lora"]["trainable_state"] == pytest.approx(14 * a / gib)
    assert e["full"]["activations"] == e["lora"]["activations"] == pytest.approx(34 * 2048 * 16 * 1000 / gib)
    assert e["full"]["lm_head"] == pytest.approx(6 * 128256 * 500 / gib)
    for kind in ("full", "lora"):
        terms = ("weights", "trainable_state", "activations", "lm_head")
        assert e[kind]["total"] == pytest.approx(sum(e[kind][t] for t in terms))
    assert e["lora"]["total"] < e["full"]["total"]
