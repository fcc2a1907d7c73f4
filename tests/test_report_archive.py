"""An archived study (bench/report/archive.py) rebuilds the same report with no live records, and a live record
replaces an archived one of the same cell."""
from __future__ import annotations

import pandas as pd
import pytest
from test_report import make_sweep, record

from bench.core.records import write_record
from bench.report import archive
from bench.report.__main__ import archives_to_read, main


def test_a_fresh_clone_rebuilds_the_report_from_the_archive_alone(tmp_path):
    live = tmp_path / "results"
    make_sweep(live)
    assert main(["--results", str(live), "--archives", "none", "--sweep", "syn", "--out", str(tmp_path / "a")]) == 0
    got = archive.pack(live, "syn", tmp_path / "docs" / "syn")
    assert got["records"] > 10 and got["bytes"] > 0
    empty = tmp_path / "fresh" / "results"  # a fresh clone: no results, the archive only
    assert main(["--results", str(empty), "--archives", str(tmp_path / "docs"), "--sweep", "syn",
                 "--out", str(tmp_path / "b")]) == 0
    a, b = pd.read_csv(tmp_path / "a" / "robustness.csv"), pd.read_csv(tmp_path / "b" / "robustness.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "a" / "paired_vs_dpo.csv").read_text() == (tmp_path / "b" / "paired_vs_dpo.csv").read_text()


def test_archives_are_read_for_a_named_study_or_a_fresh_clone_and_your_own_sweeps_report_alone(tmp_path, monkeypatch,
                                                                                               capsys):
    docs = tmp_path / "docs" / "results"
    archive.pack(make_sweep(tmp_path / "old"), "syn", docs / "syn")
    monkeypatch.setattr(archive, "DEFAULT_ROOT", docs)
    live, fresh = tmp_path / "results", tmp_path / "fresh"
    write_record(live, record("ipo", "random_flip", 0.2, 7, metrics={"gold_reward": 0.3, "gold_reward_ref": 0.0}))
    assert archives_to_read("auto", live, None) == ([], [docs / "syn"])  # your own sweeps: alone
    assert archives_to_read("auto", live, "syn") == ([docs / "syn"], [])  # a study named
    assert archives_to_read("auto", fresh, None) == ([docs / "syn"], [])  # a fresh clone: every archived study
    assert archives_to_read(str(docs), live, None) == ([docs / "syn"], [])  # asked for
    assert archives_to_read("none", fresh, "syn") == ([], [])
    assert main(["--results", str(live), "--out", str(tmp_path / "mine")]) == 0
    said = capsys.readouterr().out
    assert "cells: 1 ok" in said and "left out 1 archived study (syn): --sweep <study> reports one" in said
    assert set(pd.read_csv(tmp_path / "mine" / "robustness.csv")["loss"]) == {"ipo"}
    assert main(["--results", str(live), "--where", "sweep=syn", "--out", str(tmp_path / "theirs")]) == 0
    assert "read 1 archived study (syn)" in capsys.readouterr().out  # a study named by --where is read too


def test_a_live_record_replaces_the_archived_one(tmp_path):
    old = tmp_path / "old"
    write_record(old, record("dpo", "random_flip", 0.2, 0, metrics={"gold_reward": 0.1, "gold_reward_ref": 0.0}))
    archive.pack(old, "syn", tmp_path / "docs" / "syn")
    live = tmp_path / "results"
    write_record(live, record("dpo", "random_flip", 0.2, 0, metrics={"gold_reward": 0.3, "gold_reward_ref": 0.0}))
    with archive.viewed(live, archive.archived(tmp_path / "docs")) as view:
        recs = list((view / "cells").glob("*/record.json"))
        assert len(recs) == 1 and '"gold_reward": 0.3' in recs[0].read_text()
    assert not view.exists()  # the staging copy is gone after use


def test_restore_lays_archived_records_back_and_keeps_complete_live_ones(tmp_path):
    from bench.core.records import is_complete, read_record

    old = tmp_path / "old"
    a = record("dpo", "random_flip", 0.2, 0, metrics={"gold_reward": 0.1, "gold_reward_ref": 0.0})
    b = record("dpo", "random_flip", 0.4, 0, metrics={"gold_reward": 0.2, "gold_reward_ref": 0.0})
    write_record(old, a)
    write_record(old, b)
    (old / "tuning" / "syn_tune").mkdir(parents=True)
    (old / "tuning" / "syn_tune" / "plan.json").write_text("{}")
    archive.pack(old, "syn", tmp_path / "docs" / "syn", tuning=["syn_tune"])
    live = tmp_path / "results"
    write_record(live, {**a, "metrics": {"gold_reward": 0.9, "gold_reward_ref": 0.0}})  # re-run here since
    assert archive.main(["--restore", str(tmp_path / "docs" / "syn"), "--results", str(live)]) == 0
    assert is_complete(live, b["cell_id"]) and read_record(live, b["cell_id"])["metrics"]["gold_reward"] == 0.2
    assert read_record(live, a["cell_id"])["metrics"]["gold_reward"] == 0.9
    assert (live / "tuning" / "syn_tune" / "plan.json").read_text() == "{}"
    assert archive.restore(tmp_path / "docs" / "syn", live) == {"written": 0, "kept": 2, "tuning": [],
                                                                "kept_tuning": ["syn_tune"]}


def test_archiving_again_merges_and_restore_replaces_a_failed_live_record(tmp_path):
    from bench.core.records import read_record

    here, there = tmp_path / "here", tmp_path / "there"
    a = record("dpo", "random_flip", 0.2, 0, metrics={"gold_reward": 0.1, "gold_reward_ref": 0.0})
    b = record("dpo", "random_flip", 0.4, 0, metrics={"gold_reward": 0.2, "gold_reward_ref": 0.0})
    write_record(here, a)
    archive.pack(here, "syn", tmp_path / "docs" / "syn")
    write_record(there, b)  # another machine, which never restored: archiving it keeps a
    assert archive.pack(there, "syn", tmp_path / "docs" / "syn")["records"] == 2  # the archive, merged
    ids = set(pd.read_parquet(tmp_path / "docs" / "syn" / archive.RECORDS)["cell_id"])
    assert ids == {a["cell_id"], b["cell_id"]}
    fresh = tmp_path / "fresh"
    write_record(fresh, {**a, "status": "failed", "metrics": {}})  # failed here: the archived ok record wins
    got = archive.restore(tmp_path / "docs" / "syn", fresh)
    assert (got["written"], got["kept"]) == (2, 0)
    assert read_record(fresh, a["cell_id"])["status"] == "ok"


def test_a_cell_archived_by_another_study_is_refused_before_anything_is_written(tmp_path):
    """A cell of one archived study, run again under another sweep, cannot be archived twice: the report's view
    would keep one record of it and one study would lose the cell."""
    docs = tmp_path / "docs" / "results"
    first = tmp_path / "first"
    write_record(first, record("dpo", "random_flip", 0.2, 7, metrics={"gold_reward": 0.3, "gold_reward_ref": 0.0}))
    archive.pack(first, "syn", docs / "syn")
    second = tmp_path / "second"  # the same cell, re-run in another sweep, and one cell of its own
    for seed in (7, 8):
        rec = record("dpo", "random_flip", 0.2, seed, metrics={"gold_reward": 0.1, "gold_reward_ref": 0.0})
        write_record(second, {**rec, "sweep": "other"})
    with pytest.raises(SystemExit, match=r"1 cell\(s\) of sweep 'other' are already archived in .*syn \(sweep syn\)"):
        archive.pack(second, "other", docs / "other")
    assert not (docs / "other").exists()
    third = tmp_path / "third"  # a study whose cells are its own archives as before
    write_record(third, record("dpo", "random_flip", 0.2, 1, sweep="other"))
    assert archive.pack(third, "other", docs / "other")["records"] == 1
