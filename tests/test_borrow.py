"""A cell that trains as its standard twin did takes the twin's results (``bench.cell.borrow``): which cells may,
what their record holds, and that training such a cell gives those same results. End-to-end cells run in this
process on the session's smoke world (``conftest.smoke_root``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.cell import borrow
from bench.cell.identity import cell_id
from bench.cell.parts import build_parts
from bench.config.compose import compose
from bench.core import records

STEPS = 4


def _cfg(root: Path, results: Path, *overrides: str):
    return compose(["experiment=smoke", f"paths.root={root}", f"paths.results={results}", f"train.max_steps={STEPS}",
                    "train.progress=false", *overrides])


def _fake_record(results: Path, cid: str, **fields) -> None:
    records.write_record(results, {"cell_id": cid, "status": "ok", "metrics": {}, "metric_info": {}, **fields})


# ------------------------------------------------------------------------------------------------ which cells
@pytest.mark.parametrize(("overrides", "expected"), [
    (("method=oracle_cleaner", "noise.rate=0"), True),  # takes the noise rate: names nothing at rate 0
    (("method=random_cleaner", "noise.rate=0"), True),
    (("method=clean", "method.detector=small_loss", "noise.rate=0"), True),
    (("method=oracle_cleaner", "noise.rate=0.2"), False),
    (("method=oracle_cleaner", "method.fraction=0", "noise.rate=0.4"), True),  # names nothing at any rate
    (("method=oracle_cleaner", "method.fraction=0.1", "noise.rate=0"), False),  # names pairs it has not flipped
    (("method=oracle_cleaner", "method.action=flip", "noise.rate=0"), False),  # only removal is claimed
    (("method=oracle_cleaner", "method.action=weight", "noise.rate=0"), False),
    (("noise.rate=0",), False),  # the standard method is the twin itself
    (("method=ropo_full", "loss=ropo", "noise.rate=0"), False),  # filters by loss whatever the noise
])
def test_which_methods_train_as_the_standard_one(tmp_path, overrides, expected):
    parts = build_parts(_cfg(tmp_path, tmp_path / "results", *overrides))
    assert parts.method.trains_as_standard(borrow.noise_rate(parts.injector)) is expected


def test_the_twin_is_the_same_cell_with_the_standard_method_and_is_taken_only_when_complete(tmp_path):
    results = tmp_path / "results"
    cleaner = _cfg(tmp_path, results, "method=oracle_cleaner", "noise.rate=0")
    twin = cell_id(_cfg(tmp_path, results, "noise.rate=0"))
    assert twin != cell_id(cleaner)
    assert borrow.twin_of(build_parts(cleaner)) is None  # no record of the twin yet: the cell trains
    records.write_record(results, {"cell_id": twin, "status": "failed", "error": {"message": "x"}})
    assert borrow.twin_of(build_parts(cleaner)) is None  # a failed twin is no result
    _fake_record(results, twin)
    assert borrow.twin_of(build_parts(cleaner)) == twin
    # reuse_standard off, fresh results asked for, a cell that saves its model, or a cleaner that names pairs: the
    # cell trains
    for extra in (("reuse_standard=false",), ("resume=false",), ("train.save_model=true",), ("noise.rate=0.2",)):
        cfg = _cfg(tmp_path, results, "method=oracle_cleaner", "noise.rate=0", *extra)
        assert borrow.twin_of(build_parts(cfg)) is None, extra
    assert cell_id(_cfg(tmp_path, results, "method=oracle_cleaner", "noise.rate=0", "reuse_standard=false")) == \
        cell_id(cleaner)  # the setting is not part of a cell's identity


def test_a_failed_attempt_to_borrow_is_logged_and_the_cell_trains(tmp_path, monkeypatch, caplog):
    parts = build_parts(_cfg(tmp_path, tmp_path / "results", "method=oracle_cleaner", "noise.rate=0"))
    monkeypatch.setattr(borrow, "twin_of", lambda parts: "abc")

    def broken(*args):
        raise KeyError("metric_info")

    monkeypatch.setattr(borrow, "borrowed", broken)
    phase = {"name": "config", "started": 100.0}
    assert borrow.attempt(parts, "cid", phase) is None
    assert "the cell trains" in caplog.text and "KeyError" in caplog.text
    assert phase["name"] == "config" and phase["started"] >= 100.0  # the attempt's time is not the config's


# ------------------------------------------------------------------------------------------------ end to end
def _equal(a, b) -> bool:
    """Equal values, NaN equal to NaN (a metric with nothing to measure), through dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@pytest.mark.slow
def test_a_cleaner_at_rate_0_takes_its_twins_results_and_training_it_gives_the_same(smoke_root, tmp_path):
    from bench.cell import run_cell

    results = tmp_path / "results"
    twin = run_cell(_cfg(smoke_root, results, "noise.rate=0", "eval.checkpoints.every=2", "eval.checkpoints.unit=steps"))
    overrides = ("method=oracle_cleaner", "noise.rate=0", "eval.checkpoints.every=2", "eval.checkpoints.unit=steps")
    rec = run_cell(_cfg(smoke_root, results, *overrides))
    assert rec["status"] == "ok" and rec["borrowed_from"]["cell_id"] == twin["cell_id"] != rec["cell_id"]
    assert rec["borrowed_from"]["timings"] == twin["timings"] and set(rec["timings"]) == {
        "config", "data", "noise", "borrow", "total"}
    assert rec["method"] == "clean" and rec["loss_label"] == "DPO + oracle cleaner (remove)"
    assert rec["control"] == "positive" and rec["clean"]["n_named"] == 0 and rec["metrics"]["clean_named"] == 0
    assert rec["clean"]["n_trained_pairs"] == twin["n_train_pairs"] and rec["hp_source"] == {"source": "default"}
    for key in ("gold_reward", "kl", "implicit_acc", "train_loss"):
        assert rec["metrics"][key] == twin["metrics"][key]
    assert _equal(rec["curve"], twin["curve"]) and rec["provenance"] == twin["provenance"]
    ours, theirs = records.cell_dir(results, rec["cell_id"]), records.cell_dir(results, twin["cell_id"])
    for name in ("samples.jsonl", "margins.json", "train_log.jsonl", "flip_mask.json"):
        assert (ours / name).read_text() == (theirs / name).read_text(), name
    assert not (ours / "trainer").exists()  # nothing trained
    assert records.read_record(results, rec["cell_id"])["borrowed_from"]["cell_id"] == twin["cell_id"]

    # the same cell where its twin's record gives other training pairs: it trains, and its results are the borrowed
    # ones (the claim every borrowed record rests on), its record apart from its timings the same
    other = tmp_path / "other"
    tampered = json.loads((theirs / "record.json").read_text())
    tampered["provenance"]["train_fingerprint"] = "0" * 16
    _fake_record(other, twin["cell_id"], **{k: v for k, v in tampered.items() if k not in ("cell_id", "status")})
    trained = run_cell(_cfg(smoke_root, other, *overrides))
    assert trained["status"] == "ok" and "borrowed_from" not in trained
    assert trained["timings"]["train"] > 0
    same = ("metrics", "metric_info", "curve", "n_train_pairs", "train_steps", "loss_params", "noise_stats",
            "clean", "control", "loss_label", "method")
    for key in same:
        assert _equal(trained[key], rec[key]), key
    assert set(trained) - {"skipped"} == set(rec) - {"borrowed_from"}  # the same fields as a trained record
    assert trained["provenance"] == {**twin["provenance"]}


def test_a_borrowed_cells_wandb_summary_names_its_twin():
    from bench.cell.wandb_log import summary_of

    out = summary_of({"cell_id": "c", "status": "ok", "metrics": {"gold_reward": 0.1},
                      "borrowed_from": {"cell_id": "twin", "timings": {"total": 9.0}}})
    assert out["borrowed_from"] == "twin" and out["gold_reward"] == 0.1
    assert "borrowed_from" not in summary_of({"cell_id": "c", "status": "ok", "metrics": {}})


def test_a_borrowed_cells_line_in_a_sweep_names_its_twin(tmp_path):
    from bench.sweep.job import result_line

    cfg = _cfg(tmp_path, tmp_path / "results", "method=oracle_cleaner", "noise.rate=0")
    rec = {"metrics": {"gold_reward": 0.25, "kl": 1.5}, "borrowed_from": {"cell_id": "abc123"}}
    line = result_line(cfg, "ok", {"duration": 0.4, "cell_id": "c1"}, record=rec)
    assert "gold_reward 0.25, kl 1.5; its standard twin abc123's results (0 s) cell c1" in line
    assert "twin" not in result_line(cfg, "ok", {"duration": 9.0}, record={"metrics": {"gold_reward": 0.1}})
