"""Records of runs that ended at a checkpoint (``eval.checkpoints.stop_after``): which sources of values a record
serves, what a failed or longer re-run does to it, and how the report reads one. Synthetic records; the runs
themselves are tested end to end in tests/test_controls.py."""
from __future__ import annotations

from test_report import record

from bench.cell.run import _sources
from bench.core import records
from bench.core.records import read_record, write_record
from bench.report import archive
from bench.report.aggregate import load_results, per_hp_source

ORACLE = {"source": "tuning", "tuning": "t/oracle", "criterion": "oracle", "checkpoint": 3.0}
VAL = {"source": "tuning", "tuning": "t/val_rm_kl", "criterion": "val_rm_kl", "checkpoint": 5.0}
STOPPED_AT_5 = {"step": 50, "epoch": 5.0, "stop_after": 5.0, "planned_steps": 80}
CURVE = [{"step": 10 * k, "epoch": float(k), "gold_reward": 0.1 * k} for k in range(1, 9)]


def stopped(at: int, **extra) -> dict:
    return record("dpo", "random_flip", 0.4, 100, metrics={"gold_reward": 0.1 * at}, curve=CURVE[:at],
                  stopped={**STOPPED_AT_5, "step": 10 * at, "epoch": float(at), "stop_after": float(at)},
                  train_steps=10 * at, **extra)


def test_which_sources_a_record_serves():
    whole, short = record("dpo", "random_flip", 0.4, 100, metrics={"gold_reward": 0.8}, curve=CURVE), stopped(5)
    assert records.serves(whole, ORACLE) and records.serves(whole, VAL) and records.serves(whole, {"source": "default"})
    assert records.serves(short, ORACLE) and records.serves(short, VAL)
    assert not records.serves(short, {"source": "default"})  # the end of its schedule: never reached
    assert not records.serves(stopped(4), VAL)


def test_a_failed_longer_run_leaves_the_record_that_ended_early(tmp_path):
    rec = stopped(5, hp_source=VAL, hp_sources=[ORACLE, VAL])
    write_record(tmp_path, rec)
    assert not records.is_complete(tmp_path, rec["cell_id"])  # asked for the whole run, it does not serve
    write_record(tmp_path, {**rec, "status": "failed", "error": {"type": "E", "message": "m", "where": "train"}})
    kept = read_record(tmp_path, rec["cell_id"])
    assert kept["status"] == "ok" and kept["hp_sources"] == [ORACLE, VAL]


def test_a_rerun_keeps_the_sources_it_still_serves_and_one_entry_per_rule(tmp_path):
    write_record(tmp_path, stopped(5, hp_source=VAL, hp_sources=[ORACLE, VAL]))
    cid = stopped(5)["cell_id"]
    default = {"source": "default"}
    longer = record("dpo", "random_flip", 0.4, 100, metrics={"gold_reward": 0.8}, curve=CURVE, hp_source=default)  # the whole run: serves all
    assert _sources(tmp_path, cid, longer) == [ORACLE, VAL, default]
    shorter = stopped(3, hp_source=ORACLE)  # a re-run (resume=false) that ends at 3: epoch 5 is not reached
    assert _sources(tmp_path, cid, shorter) == [ORACLE]
    moved = {**ORACLE, "checkpoint": 4.0}  # the oracle rule's pick moved (its sweep re-run): one oracle entry
    assert _sources(tmp_path, cid, stopped(5, hp_source=moved)) == [VAL, moved]
    records.note_hp_source(tmp_path, cid, moved)
    assert read_record(tmp_path, cid)["hp_sources"] == [VAL, moved]


def test_the_report_reads_a_rules_latest_source_and_labels_a_run_ended_by_hand(tmp_path):
    (out,) = per_hp_source([record("dpo", "random_flip", 0.4, 100, metrics={"gold_reward": 0.8}, curve=CURVE, hp_source=ORACLE,
                                   hp_sources=[ORACLE, {**ORACLE, "checkpoint": 2.0}])])
    assert out["checkpoint"] == 2.0 and out["metrics"]["gold_reward"] == 0.2
    root = tmp_path / "results"
    for seed in (0, 1):
        write_record(root, record("dpo", "random_flip", 0.4, seed, config={"train": {"epochs": 8}}))
    write_record(root, record("dpo", "random_flip", 0.4, 2, config={"train": {"epochs": 8}},
                              stopped={**STOPPED_AT_5, "epoch": 2.0}))
    res = load_results(root)
    assert set(res.cells["label"]) == {"dpo", "dpo [ended at epoch 2]"}
    assert any("1 cell(s) ended early" in n for n in res.notes)


def test_restore_keeps_a_live_record_that_ended_early(tmp_path):
    old, live = tmp_path / "old", tmp_path / "results"
    write_record(old, stopped(3))
    archive.pack(old, "syn", tmp_path / "docs" / "syn")
    write_record(live, stopped(5))  # extended here since
    assert archive.restore(tmp_path / "docs" / "syn", live)["kept"] == 1
    assert read_record(live, stopped(5)["cell_id"])["stopped"]["epoch"] == 5.0


def test_a_record_that_ended_at_its_first_checkpoint_is_read_at_its_rules_pick(tmp_path):
    """Such a record was written without a curve before 2026-12-07 (its one point, the end, was left out): it is
    read back with that point (the end's evaluation metrics, where it stopped), so the report reads it at its
    rule's pick, in its arm, and not as a run ended by hand."""
    from test_report import INFO

    pick = {**ORACLE, "checkpoint": 1.0}
    info = {**INFO, "train_loss": {"evaluator": "train"}, "clean_f1": {"evaluator": "standard"}}
    rec = record("dpo", "random_flip", 0.4, 100, metrics={"gold_reward": 0.3, "train_loss": 0.6, "clean_f1": 1.0},
                 metric_info=info, hp_source=pick, hp_sources=[pick], train_steps=10, method="standard",
                 stopped={"step": 10, "epoch": 1.0, "stop_after": 1.0, "planned_steps": 80})
    root = tmp_path / "results"
    write_record(root, rec)
    back = read_record(root, rec["cell_id"])
    assert back["curve"] == [{"step": 10, "epoch": 1.0, "gold_reward": 0.3}]
    (out,) = per_hp_source([back])
    assert out["checkpoint"] == 1.0 and out["metrics"] == {"gold_reward": 0.3, "clean_f1": 1.0}
    write_record(root, record("dpo", "random_flip", 0.4, 101, metrics={"gold_reward": 0.5}, curve=CURVE[:3],
                              hp_source={**pick, "checkpoint": 2.0}))
    res = load_results(root)
    assert set(res.cells["label"]) == {"dpo [oracle]"} and not any("ended early" in n for n in res.notes)


def test_a_pick_off_the_cells_own_checkpoint_grid_is_read_at_the_first_checkpoint_past_it(tmp_path):
    """A cleaner's selection borrowed from another rate (tuning_from) picks an epoch of that rate's cleaned data:
    checkpoints every 86 steps are other epochs on this cell's data. The run asked to stop there ends at the first
    checkpoint at or past it, and the report reads it there, saying so; a pick past the curve's end stays missing."""
    curve = [{"step": 86 * k, "epoch": round(86 * k / 78, 6), "gold_reward": 0.1 * k} for k in range(1, 5)]
    borrowed = {**ORACLE, "checkpoint": 3.7391, "from": {"noise": "random_flip", "rate": 0.2}}
    rec = record("dpo", "random_flip", 0.1, 100, method="clean", metrics={"gold_reward": 0.4}, curve=curve,
                 hp_source=borrowed, stopped={"step": 344, "epoch": 4.410256, "stop_after": 3.7391, "planned_steps": 624})
    (out,) = per_hp_source([rec])
    assert out["checkpoint"] == 4.410256 and out["checkpoint_pick"] == 3.7391 and out["metrics"]["gold_reward"] == 0.4
    (on,) = per_hp_source([{**rec, "hp_source": {**borrowed, "checkpoint": 3.307692}}])
    assert on["checkpoint"] == 3.307692 and "checkpoint_pick" not in on and abs(on["metrics"]["gold_reward"] - 0.3) < 1e-12
    (beyond,) = per_hp_source([{**rec, "hp_source": {**borrowed, "checkpoint": 6.0}}])
    assert beyond["metrics"] == {} and beyond["checkpoint_missing"] == 6.0
    write_record(tmp_path, rec)
    res = load_results(tmp_path)
    assert list(res.cells["label"]) == ["dpo [oracle]"]  # not a run ended by hand
    assert any("1 cell(s) of dpo [oracle] are read at the first checkpoint at or past their rule's pick" in n
               for n in res.notes)
