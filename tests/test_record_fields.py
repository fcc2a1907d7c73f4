"""A reproducible record (``provenance`` and ``versions``, bench/cell/provenance.py) and the report's warning when
the cells of one table were not made alike (bench/report/provenance.py).

Each new field from a real cell (the smoke world's, run by the session fixture); each field's computation by hand;
no secret of the judge (its key, a user:password in its URL) in what a record keeps; the report's warning on
synthetic records that mix two effective batch sizes, two versions of peft, or two noisy training sets of one seed.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from bench.cell import provenance
from bench.core.records import iter_records, write_record

NEW_FIELDS = {"effective_batch_size", "per_device_batch_size", "gradient_accumulation_steps", "world_size", "device",
              "device_name", "dtype", "param_dtype", "lora", "parameters", "data_fingerprint", "train_fingerprint",
              "evaluators"}


def test_a_cell_record_has_every_new_field(smoke_root):
    (rec,) = [r for r in iter_records(smoke_root / "results") if r.get("sweep") == "smoke"]
    p = rec["provenance"]
    assert set(p) == NEW_FIELDS
    train = rec["config"]["train"]
    assert p["effective_batch_size"] == train["batch_size"] * train["gradient_accumulation_steps"] * 1 == 4
    assert p["world_size"] == 1 and p["device"] == "cpu" and p["device_name"]
    assert p["dtype"] == p["param_dtype"] == "float32"  # the CPU never trains in bf16
    assert p["lora"] is None and p["parameters"]["trainable"] == p["parameters"]["total"] > 0
    assert len(p["data_fingerprint"]) == 16 and len(p["train_fingerprint"]) == 16
    assert p["evaluators"] == {"gold": {"kind": "gold"}}
    for pkg in ("torch", "transformers", "trl", "datasets", "peft", "prefnoise"):
        assert rec["versions"][pkg], pkg


def test_the_training_fingerprint_is_of_the_pairs_as_trained():
    from datasets import Dataset

    rows = {"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"], "rejected": ["u", "v", "w"]}
    fp = provenance.fingerprint_pairs(Dataset.from_dict(rows))
    assert fp == provenance.fingerprint_pairs(Dataset.from_dict({**rows, "is_flipped": [False] * 3}))  # pairs only
    flipped = {**rows, "chosen": ["x", "v", "z"], "rejected": ["u", "y", "w"]}  # one label flipped
    assert provenance.fingerprint_pairs(Dataset.from_dict(flipped)) != fp
    reordered = {k: v[::-1] for k, v in rows.items()}
    assert provenance.fingerprint_pairs(Dataset.from_dict(reordered)) != fp
    chat = {"prompt": [[{"role": "user", "content": "a"}]], "chosen": [[{"role": "assistant", "content": "x"}]],
            "rejected": [[{"role": "assistant", "content": "u"}]]}
    assert len(provenance.fingerprint_pairs(Dataset.from_dict(chat))) == 16


def test_effective_batch_size_world_size_and_precision(monkeypatch):
    import torch

    from bench.config.compose import train_config

    train = train_config(batch_size=4, gradient_accumulation_steps=2)
    s = provenance.training_setup(train, "cpu", False, torch.float32, world_size=2)
    assert s["effective_batch_size"] == 16 and s["world_size"] == 2 and s["dtype"] == "float32"
    assert provenance.training_setup(train, "cpu", True, torch.float32, 1)["dtype"] == "bfloat16"
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert provenance.world_size() == 4
    monkeypatch.delenv("WORLD_SIZE")
    assert provenance.world_size() == 1


def test_evaluator_models_are_recorded_without_secrets(monkeypatch):
    import evaluators

    monkeypatch.setenv("MY_JUDGE_KEY", "sk-verysecretkey123")
    judge = evaluators.get("llm_judge", base_url="https://alice:hunter2@judge.example.com:8443/v1?token=abc",
                           model="judge-7b", api_key_env="MY_JUDGE_KEY", cache_dir="/tmp/unused-judge-cache")
    rm = evaluators.get("reward_model", path="embedded")
    ids = provenance.evaluator_ids([judge, rm, evaluators.get("gold")])
    assert ids["llm_judge"] == {"model": "judge-7b", "base_url_host": "judge.example.com:8443"}
    assert ids["reward_model"]["path"] == "embedded" and "all-MiniLM-L6-v2" in ids["reward_model"]["backbone"]
    assert ids["gold"] == {"kind": "gold"}
    text = json.dumps(ids)
    for secret in ("sk-verysecretkey123", "hunter2", "alice", "token=abc", "/v1"):
        assert secret not in text
    config = provenance.safe_config({"evaluator": {"llm_judge": {"base_url": judge.base_url, "api_key": "sk-abcdef123",
                                                                 "api_key_env": "MY_JUDGE_KEY"}}})
    kept = config["evaluator"]["llm_judge"]
    assert "api_key" not in kept and kept["api_key_env"] == "MY_JUDGE_KEY"
    assert "hunter2" not in json.dumps(config) and "judge.example.com" in kept["base_url"]


def test_a_reward_model_folder_names_its_backbone(tmp_path):
    import evaluators

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"],
                                                      "model_type": "bert"}))
    ids = provenance.evaluator_ids([evaluators.get("reward_model", path=str(tmp_path))])
    assert ids["reward_model"]["backbone"] == "BertForSequenceClassification (bert)"
    hub = provenance.evaluator_ids([evaluators.get("reward_model", path="org/some-rm")])
    assert hub["reward_model"]["backbone"] == "org/some-rm"


def test_the_project_commit(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    provenance.project_commit.cache_clear()
    assert provenance.project_commit() is None  # not a git checkout
    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    provenance.project_commit.cache_clear()
    assert provenance.project_commit() == sha
    (tmp_path / "f.txt").write_text("b")
    provenance.project_commit.cache_clear()
    assert provenance.project_commit() == f"{sha}+dirty"
    provenance.project_commit.cache_clear()


# ------------------------------------------------------------------------------------------------ the report
def _record(loss, rate, seed, batch=16, peft="0.21.2", pairs=None, old=False):
    gold = {"dpo": 0.5, "ipo": 0.6}[loss] - rate + 0.01 * seed
    rec = {"cell_id": f"{loss}-{rate}-{seed}-{batch}", "sweep": "mix", "status": "ok", "loss": loss,
           "noise": "random_flip", "rate": rate, "seed": seed, "data": "world", "model": "tiny",
           "metrics": {"gold_reward": gold}, "metric_info": {"gold_reward": {"higher_is_better": True,
                                                                              "evaluator": "gold"}},
           "config": {"train": {"batch_size": batch, "gradient_accumulation_steps": 1, "num_gpus": 1}},
           "versions": {"torch": "2.13.0", "trl": "1.16.0", "peft": peft}, "timings": {"total": 1.0}, "error": None}
    if not old:
        rec["provenance"] = {"effective_batch_size": batch, "world_size": 1, "device": "cpu", "device_name": "cpu",
                             "dtype": "float32", "lora": None, "data_fingerprint": "d0",
                             "train_fingerprint": pairs or f"pairs-{rate}-{seed}",
                             "evaluators": {"gold": {"kind": "gold"}}}
    return rec


def _report(tmp_path, records):
    from bench.report import build_report

    for r in records:
        write_record(tmp_path, r)
    build_report(tmp_path)
    return (tmp_path / "report" / "report.md").read_text()


GRID = [(loss, rate, seed) for loss in ("dpo", "ipo") for rate in (0.0, 0.2) for seed in (0, 1)]


def test_the_report_warns_when_a_table_mixes_two_effective_batch_sizes(tmp_path):
    text = _report(tmp_path, [_record(loss, rate, seed, batch=32 if loss == "ipo" else 16)
                              for loss, rate, seed in GRID])
    assert "**Warning: the cells of this table were not made alike.**" in text
    assert "- effective batch size differs: 16 (4 cells); 32 (4 cells)" in text
    assert "peft differs" not in text and "training pairs differ" not in text


def test_no_warning_when_the_cells_were_made_alike(tmp_path):
    text = _report(tmp_path, [_record(*key) for key in GRID])
    assert "not made alike" not in text


@pytest.mark.parametrize("change, line", [
    ({"peft": "0.20.0"}, "- peft differs: 0.20.0 (4 cells); 0.21.2 (4 cells)"),
    ({"pairs": "other"}, "- training pairs differ within 4 (noise, rate, seed) group(s)"),
    ({"old": True, "batch": 64}, "- effective batch size differs: 16 (4 cells); 64 (4 cells)"),
])
def test_the_warning_names_each_difference(tmp_path, change, line):
    text = _report(tmp_path, [_record(loss, rate, seed, **(change if loss == "ipo" else {}))
                              for loss, rate, seed in GRID])
    assert line in text
    if change.get("old"):
        assert "4 of 8 cells predate the provenance block" in text
