"""One tiny cell end to end on the CPU, a basic-launcher sweep, skips, and failures that lose nothing."""
import json
import math

import pytest

from bench.core import records
from conftest import run_bench

CORE = ("length", "length_ref", "kl", "implicit_acc")
GOLD = ("gold_reward", "gold_reward_ref", "gold_gain", "gold_win_rate")


def _records(results):
    return {r["cell_id"]: r for r in records.iter_records(results)}


@pytest.mark.slow
def test_smoke_cell_writes_a_complete_record(smoke_root):
    from bench.cell import cell_id
    from bench.config.compose import compose

    rec = _records(smoke_root / "results")[cell_id(compose(["experiment=smoke"]))]  # the fixture's own cell
    assert rec["status"] == "ok"
    assert (rec["loss"], rec["noise"], rec["rate"], rec["data"], rec["model"]) == ("dpo", "random_flip", 0.2, "world", "tiny")
    for m in CORE + GOLD:
        assert math.isfinite(rec["metrics"][m]), m
        assert m in rec["metric_info"]
    assert rec["metric_info"]["gold_reward"]["higher_is_better"] is True
    assert rec["metric_info"]["kl"]["higher_is_better"] is False
    assert 0 <= rec["metrics"]["gold_win_rate"] <= 1
    ns = rec["noise_stats"]
    assert ns["target_rate"] == 0.2 and abs(ns["realized_rate"] - 0.2) <= 0.5 / ns["n_pairs"] + 1e-12
    assert {"torch", "trl", "transformers"} <= set(rec["versions"])
    assert rec["config"]["loss"]["name"] == "dpo" and rec["timings"]["train"] > 0
    cell = records.cell_dir(smoke_root / "results", rec["cell_id"])
    mask = json.loads((cell / "flip_mask.json").read_text())
    assert sum(mask["is_flipped"]) == ns["n_flipped"]
    assert (cell / "train_log.jsonl").read_text().strip()


@pytest.mark.slow
def test_basic_multirun_sweep_then_rerun_skips(smoke_root, tmp_path):
    results = tmp_path / "results"
    run_bench("-m", "experiment=smoke", "noise.rate=0,0.5", root=smoke_root, results=results)
    after = _records(results)
    assert sorted(r["rate"] for r in after.values()) == [0.0, 0.5] and all(r["status"] == "ok" for r in after.values())
    stamps = {cid: r["finished_at"] for cid, r in after.items()}
    proc = run_bench("-m", "experiment=smoke", "noise.rate=0,0.5", root=smoke_root, results=results)
    assert "already complete: skipped" in proc.stdout + proc.stderr
    assert {cid: r["finished_at"] for cid, r in _records(results).items()} == stamps


@pytest.mark.slow
def test_failing_cell_records_its_error_and_loses_nothing(smoke_root, tmp_path):
    results = tmp_path / "results"
    run_bench("experiment=smoke", "train.max_steps=1", root=smoke_root, results=results)  # a complete one first
    before = _records(results)
    # a single run with a bad value stops before Hydra starts: one line, nothing written
    proc = run_bench("experiment=smoke", "loss=rdpo", "loss.eps=0.7", root=smoke_root, results=results, check=False)
    assert proc.returncode == 2 and "loss 'rdpo': eps=0.7 is out of range" in proc.stderr
    assert "Traceback" not in proc.stderr and _records(results) == before
    # in a sweep the cell itself checks, fails, and records why; the sweep exits non-zero
    proc = run_bench("-m", "experiment=smoke", "loss=rdpo", "loss.eps=0.7", root=smoke_root, results=results,
                     check=False)
    assert proc.returncode != 0
    after = _records(results)
    failed = [r for cid, r in after.items() if cid not in before]
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    assert failed[0]["error"]["type"] == "ConfigError" and "eps" in failed[0]["error"]["message"]
    assert all(after[cid] == rec for cid, rec in before.items())  # earlier records untouched


def test_failed_record_never_replaces_a_complete_one(tmp_path):
    records.write_record(tmp_path, {"cell_id": "c1", "status": "ok", "metrics": {"m": 1.0}})
    records.write_record(tmp_path, {"cell_id": "c1", "status": "failed", "error": {"type": "X"}})
    assert records.read_record(tmp_path, "c1")["status"] == "ok"
    assert not list((tmp_path / "cells" / "c1").glob("*.tmp"))
