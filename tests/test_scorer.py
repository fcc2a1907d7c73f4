"""Per-response scores as a training input (bench/evaluation/scorer.py, bench/cell/extras.py): computed once per data
set and cached, said in the record, and a learned flip rate recorded against the injected ones."""
from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import Dataset

from bench.evaluation import scorer as scoring
from conftest import run_bench


class CountingScorer:
    """A stand-in reward model: a response's score is its length; counts the texts it was asked to score."""

    key = "counting-v1"

    def __init__(self):
        self.calls = 0

    def score(self, prompts, responses):
        self.calls += len(responses)
        return np.array([float(len(r)) for r in responses])


def _pairs(n=6):
    return Dataset.from_dict({"prompt": [f"p{i}" for i in range(n)], "chosen": ["x" * (i + 5) for i in range(n)],
                              "rejected": ["y" * (i + 1) for i in range(n)]})


def test_scores_are_computed_once_per_data_set_and_cached(tmp_path):
    s = CountingScorer()
    a = scoring.add_scores(_pairs(), s, "data-1", tmp_path)
    assert s.calls == 12  # every response once
    assert a["score_chosen"] == [float(i + 5) for i in range(6)] and a["score_rejected"] == [float(i + 1) for i in range(6)]
    b = scoring.add_scores(_pairs(), s, "data-1", tmp_path)
    assert s.calls == 12 and b["score_chosen"] == a["score_chosen"]  # from the cache
    scoring.add_scores(_pairs(), s, "data-2", tmp_path)
    assert s.calls == 24  # other data: scored again


def test_agreement_with_labels_after_the_flips():
    import noise

    scored = scoring.add_scores(_pairs(8), CountingScorer(), "d", None)
    noisy = noise.from_config({"name": "random_flip", "rate": 0.25}, seed=0)(scored)
    a = scoring.agreement(noisy)
    assert a["agrees_clean"] == 1.0  # the scorer ranks every pair as its clean label does
    assert a["agrees_observed"] == pytest.approx(0.75)  # and disagrees exactly with the flipped quarter
    assert a["flip_auroc"] == 1.0


@pytest.mark.slow
def test_an_oracle_scored_cell_records_its_scorer(smoke_root, tmp_path):
    proc = run_bench("experiment=smoke", "loss=madpo", "scorer=oracle", root=smoke_root, results=tmp_path / "results")
    assert "madpo" in proc.stdout
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").glob("*/record.json")]
    rec = next(r for r in recs if r.get("loss") == "madpo" and (r.get("scorer") or {}).get("name") == "oracle")
    s = rec["scorer"]
    assert rec["status"] == "ok" and rec["loss_label"] == "MADPO [oracle scorer]"
    assert s["kind"].startswith("oracle") and s["rm_labels"] == {"noise": None}  # trained on clean labels
    assert 0.0 <= s["agrees_clean"] <= 1.0 and 0.0 <= s["agrees_observed"] <= 1.0 and s["rm_train_pairs"] > 0
    assert "scores" in rec["timings"]


@pytest.mark.slow
def test_a_learned_flip_rate_per_annotator_is_recorded_against_the_injected_ones(smoke_root, tmp_path):
    run_bench("experiment=smoke", "loss=ncdpo", "loss.per_annotator=true", "noise=annotator_biased",
              "train.max_steps=4", "loss.eps_lr=0.05", root=smoke_root, results=tmp_path / "results")
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").glob("*/record.json")]
    rec = next(r for r in recs if r.get("loss") == "ncdpo" and r.get("noise") == "annotator_biased")
    got = rec["loss_learned"]
    names = set(got["learned"]["eps"])
    assert names and names <= {"reliable", "careless", "length_lover", "adversarial"}
    assert names <= set(got["injected"]) and "overall" in got["injected"]
    assert all(0.0 < v < 0.5 for v in got["learned"]["eps"].values())
