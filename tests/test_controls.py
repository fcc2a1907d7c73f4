"""The controls of a test bed that can show a robustness gain: cleaning as a method (detectors, actions, the oracle
and random cleaners), the clean learning curve (``subset``), margin diagnostics, and the policy scored at
checkpoints within one run, with the checkpoint as a tuning knob. End-to-end cells run in this process on the
session's smoke world (``conftest.smoke_root``)."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset

from bench.config.compose import compose
from bench.core.detection import detection_stats
from bench.evaluation.margins import sample_pairs, summarize
from bench.methods import cleaning, detectors

STEPS = 4


# ------------------------------------------------------------------------------------------------ detection figures
def test_detection_stats_by_hand():
    named = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    flipped = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    s = detection_stats(named, flipped, scores=np.array([9, 8, 7, 6, 1, 1, 1, 1.0]))
    assert (s["n"], s["n_named"], s["n_flipped"], s["n_hit"]) == (8, 3, 3, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["chance_precision"] == pytest.approx(3 / 8)
    assert s["auroc"] == pytest.approx(14 / 15)  # flipped scores 9, 8, 6 against clean 7, 1, 1, 1, 1
    nothing = detection_stats(np.zeros(8, bool), flipped)
    assert nothing["precision"] is None and nothing["recall"] == 0.0 and nothing["f1"] is None
    unknown = detection_stats(named, None)
    assert unknown["precision"] is None and unknown["n_named"] == 3


# ------------------------------------------------------------------------------------------------ detectors
def _noisy(n=200, rate=0.3, seed=0):
    rng = np.random.default_rng(seed)
    flipped = np.zeros(n, bool)
    flipped[rng.choice(n, round(rate * n), replace=False)] = True
    return Dataset.from_dict({"prompt": [f"p{i}" for i in range(n)], "chosen": [f"a{i}" for i in range(n)],
                              "rejected": [f"b{i}" for i in range(n)], "is_flipped": flipped.tolist()})


def test_the_oracle_names_exactly_the_flipped_pairs():
    ds = _noisy()
    ctx = SimpleNamespace(train_dataset=ds, seed=3)
    scores, _ = detectors.Oracle().scores(ctx, None)
    named = cleaning.top_k(scores, 60, seed=3)
    s = detection_stats(named, np.asarray(ds["is_flipped"]))
    assert s["precision"] == 1.0 and s["recall"] == 1.0 and s["f1"] == 1.0


def test_the_random_detector_is_at_chance_over_seeds():
    ds = _noisy(rate=0.3)
    flipped = np.asarray(ds["is_flipped"])
    precisions = []
    for seed in range(60):
        scores, _ = detectors.Random().scores(SimpleNamespace(train_dataset=ds, seed=seed), None)
        precisions.append(detection_stats(cleaning.top_k(scores, 60, seed), flipped)["precision"])
    assert abs(np.mean(precisions) - 0.3) < 0.02  # chance: the flip rate (SE of the mean ~0.006)
    assert np.std(precisions) > 0.02  # and it does vary from seed to seed


# ------------------------------------------------------------------------------------------------ actions
class _Run:
    """Stands in for the TRL run: what dataset it would train on, and for how many steps."""

    def __init__(self, ctx, steps, name):
        self.steps, self.trained = steps, None

    def prepare(self, ds):
        return ds

    def run(self, i, ds):
        self.trained = ds


def test_ref_margin_scores_the_reference_margin_and_loads_the_reference_only_when_not_cached(tmp_path, monkeypatch):
    import tiny_models
    from bench.models import sampling

    ds = tiny_models.pairs_dataset()
    ref, tok = tiny_models.model(), tiny_models.tokenizer()
    loads = []
    monkeypatch.setattr(detectors, "load_causal_lm", lambda path, device: loads.append(path) or (ref, tok))
    ctx = SimpleNamespace(train_dataset=ds, tokenizer=tok, reference_path="ref", data_key="d", cache_root=str(tmp_path))
    scores, _ = detectors.RefMargin().scores(ctx, None)
    want = (sampling.sequence_logps(ref, tok, ds["prompt"], ds["rejected"])
            - sampling.sequence_logps(ref, tok, ds["prompt"], ds["chosen"]))
    np.testing.assert_allclose(scores, want.double().numpy(), rtol=0, atol=1e-6)  # minus the margin as labelled
    assert loads == ["ref"]  # once, for both sides
    again, _ = detectors.RefMargin().scores(ctx, None)  # cached: no load at all
    assert loads == ["ref"] and np.array_equal(again, scores)


@pytest.mark.parametrize("action", ["remove", "flip", "weight"])
def test_each_action_changes_exactly_the_named_pairs(action, monkeypatch):
    monkeypatch.setattr(cleaning, "Staged", _Run)
    ds = _noisy(n=40, rate=0.25)
    named = np.zeros(40, bool)
    named[[1, 5, 6, 30]] = True
    ctx = SimpleNamespace(train_dataset=ds, train=SimpleNamespace(max_steps=None, batch_size=4,
                                                                  gradient_accumulation_steps=1, epochs=1.0))
    weights = np.where(named, 0.25, 1.0) if action == "weight" else None
    run, n = cleaning.train_cleaned(ctx, named, action, "epochs", "clean", weights=weights)
    out = run.trained
    if action == "remove":
        assert n == 36 and len(out) == 36 and run.steps == [9]  # epochs: one pass over the 36 left
        assert sorted(out["prompt"]) == sorted(p for i, p in enumerate(ds["prompt"]) if not named[i])
    elif action == "flip":
        assert len(out) == 40 and run.steps == [10]
        for i in range(40):
            swapped = out["chosen"][i] == ds["rejected"][i]
            assert swapped == named[i] and (out["rejected"][i] == ds["chosen"][i]) == named[i]
            assert out["is_flipped"][i] == (ds["is_flipped"][i] != named[i])  # orientation against the clean label
    else:
        assert len(out) == 40 and out["chosen"] == ds["chosen"]
        assert np.allclose(out["pair_weight"], np.where(named, 0.25, 1.0))
    run_steps, _ = cleaning.train_cleaned(ctx, named, "remove", "steps", "clean")
    assert run_steps.steps == [10]  # budget=steps: the standard cell's steps on all 40 pairs


# ------------------------------------------------------------------------------------------------ diagnostics
def test_margin_diagnostics_on_a_hand_made_case():
    z = np.array([2.0, -1.0, 0.5, -0.2, 3.0, 0.0])
    flipped = np.array([1, 1, 0, 0, 0, 0], bool)
    d = summarize(z, flipped)
    assert d["diag_memorized"] == 0.5  # the flipped pair with z = 2 agrees with its wrong label: memorized
    assert d["diag_fit"] == 0.5  # clean pairs with z > 0: 0.5 and 3.0 of four (z = 0 is not fitted)
    assert d["diag_z_flipped_q50"] == pytest.approx(0.5) and d["diag_z_clean_q50"] == pytest.approx(0.25)
    assert d["diag_n_flipped"] == 2 and d["diag_n_clean"] == 4 and d["diag_abs_z_median"] == pytest.approx(0.75)


def test_the_diagnostic_sample_takes_up_to_half_flipped_pairs_the_same_each_time():
    ds = _noisy(n=300, rate=0.1)
    rows = sample_pairs(ds, 64, seed=1)
    flipped = np.asarray(ds["is_flipped"])[rows]
    assert len(rows) == 64 and flipped.sum() == 30  # all 30 flipped pairs (fewer than half of 64)
    assert np.array_equal(rows, sample_pairs(ds, 64, seed=1)) and not np.array_equal(rows, sample_pairs(ds, 64, 2))


# ------------------------------------------------------------------------------------------------ end to end
def _cell(smoke_root: Path, results: Path, *overrides: str):
    from bench.cell import run_cell

    cfg = compose(["experiment=smoke", f"paths.root={smoke_root}", f"paths.results={results}",
                   f"train.max_steps={STEPS}", "train.progress=false", *overrides])
    rec = run_cell(cfg)
    assert rec["status"] == "ok" and not rec.get("skipped")
    return rec


@pytest.mark.slow
def test_oracle_and_random_cleaners_end_to_end(smoke_root, tmp_path):
    oracle = _cell(smoke_root, tmp_path, "method=clean", "method.detector=oracle", "noise.rate=0.4")
    assert oracle["loss_label"] == "DPO + oracle cleaner (remove)" and oracle["control"] == "positive"
    block = oracle["clean"]
    assert block["precision"] == 1.0 and block["recall"] == 1.0 and block["fraction"] == 0.4
    assert block["n_named"] == oracle["noise_stats"]["n_flipped"]
    assert oracle["metrics"]["clean_f1"] == 1.0 and oracle["metric_info"]["clean_f1"]["higher_is_better"] is True
    rand = _cell(smoke_root, tmp_path, "method=clean", "method.detector=random", "noise.rate=0.4")
    assert rand["control"] == "negative" and rand["clean"]["n_named"] == block["n_named"]
    assert rand["clean"]["n_trained_pairs"] == oracle["clean"]["n_trained_pairs"]


@pytest.mark.slow
def test_a_realistic_detector_records_its_figures(smoke_root, tmp_path):
    rec = _cell(smoke_root, tmp_path, "method=clean", "method.detector=rm_margin", "method.action=flip",
                "noise.rate=0.4", "eval.validation.proxy_rm.train.max_steps=4")
    block = rec["clean"]
    assert rec["control"] is None and rec["loss_label"] == "DPO + rm_margin cleaner (flip)"
    assert 0 <= block["precision"] <= 1 and 0 <= block["recall"] <= 1 and 0 <= block["auroc"] <= 1
    assert rec["metrics"]["clean_precision"] == pytest.approx(block["precision"])


@pytest.mark.slow
def test_checkpoints_give_one_point_each_and_change_no_training_step(smoke_root, tmp_path):
    plain = _cell(smoke_root, tmp_path / "plain")
    curved = _cell(smoke_root, tmp_path / "curved", "eval.checkpoints.every=1", "eval.checkpoints.unit=steps")
    assert "curve" not in plain and [p["step"] for p in curved["curve"]] == [1, 2, 3, 4]  # 3 checkpoints + the end
    for key in ("gold_reward", "kl", "implicit_acc", "train_loss", "diag_memorized"):
        assert curved["metrics"][key] == plain["metrics"][key] or (
            math.isnan(curved["metrics"][key]) and math.isnan(plain["metrics"][key]))
    end = curved["curve"][-1]
    assert all(end[k] == curved["metrics"][k] for k in ("gold_reward", "kl", "diag_fit"))
    assert len({round(p["gold_reward"], 6) for p in curved["curve"]}) > 1  # the policy moved between checkpoints
    assert curved["timings"]["checkpoints"] > 0 and plain["cell_id"] != curved["cell_id"]
    margins = __import__("json").loads((tmp_path / "curved" / "cells" / curved["cell_id"] / "margins.json").read_text())
    assert len(margins["points"]) == 4 and all(len(p["z"]) == len(margins["rows"]) for p in margins["points"])


@pytest.mark.slow
def test_a_run_that_stops_at_a_checkpoint_is_the_whole_runs_curve_up_to_there(smoke_root, tmp_path):
    """eval.checkpoints.stop_after ends the run at a checkpoint: the same cell (its id), the whole run's steps and
    scores up to there bit for bit (the end's evaluation stands for that checkpoint). Such a record serves a run
    asked to stop there or before; one asked to go further trains again and keeps the sources it served."""

    from bench.cell import run_cell
    from bench.core import records

    ckpt = ("eval.checkpoints.every=1", "eval.checkpoints.unit=steps")
    whole, short = _whole_and_stopped(smoke_root, tmp_path, ckpt)
    at2 = whole["curve"][1]["epoch"]

    rec = records.read_record(tmp_path / "short", whole["cell_id"])
    assert records.reaches(rec, at2) and records.reaches(rec, whole["curve"][0]["epoch"])
    assert not records.reaches(rec, None) and not records.reaches(rec, whole["curve"][2]["epoch"])
    assert records.reaches(whole, None) and records.reaches(whole, at2)
    source = {"source": "tuning", "criterion": "later"}
    cfg = compose(["experiment=smoke", f"paths.root={smoke_root}", f"paths.results={tmp_path / 'short'}",
                   f"train.max_steps={STEPS}", "train.progress=false", *ckpt])
    again = run_cell(cfg, hp_source=source)  # asked for the whole run: the one that stopped does not serve it
    assert not again.get("skipped") and "stopped" not in again and again["curve"] == whole["curve"]
    assert again["hp_sources"] == [{"source": "default"}, source]
    assert run_cell(cfg)["skipped"]


def _whole_and_stopped(smoke_root: Path, tmp_path: Path, ckpt: tuple, *overrides: str,
                       at: int = 2) -> tuple[dict, dict]:
    """The cell run whole, and again ended at its checkpoint after step ``at`` of 4: checked to be the same run
    there (a checkpoint every step)."""
    import json

    whole = _cell(smoke_root, tmp_path / "whole", *ckpt, *overrides)
    epoch = whole["curve"][at - 1]["epoch"]  # the checkpoint after step `at` of 4
    short = _cell(smoke_root, tmp_path / "short", *ckpt, *overrides, f"eval.checkpoints.stop_after={epoch}")
    assert short["cell_id"] == whole["cell_id"] and "stopped" not in whole
    assert short["stopped"] == {"step": at, "epoch": epoch, "stop_after": epoch, "planned_steps": STEPS}
    assert short["train_steps"] == at and [p["step"] for p in short["curve"]] == list(range(1, at + 1))
    assert short["curve"] == whole["curve"][:at]  # every metric of every point, exactly
    assert all(short["metrics"][k] == whole["curve"][at - 1][k] for k in whole["curve"][at - 1]
               if k not in ("step", "epoch"))
    z = [json.loads((tmp_path / d / "cells" / whole["cell_id"] / "margins.json").read_text())["points"]
         for d in ("whole", "short")]
    assert z[1] == z[0][:at]
    return whole, short


@pytest.mark.slow
def test_a_cleaner_stops_at_a_checkpoint_as_the_standard_run_does(smoke_root, tmp_path):
    """The cleaners train one staged run on the kept pairs (its schedule built by ``Staged``): the same stop, here
    at the first checkpoint (the curve's one point is the end, where it was read)."""
    _, short = _whole_and_stopped(smoke_root, tmp_path, ("eval.checkpoints.every=1", "eval.checkpoints.unit=steps"),
                                  "method=clean", "method.detector=oracle", "noise.rate=0.4", at=1)
    assert short["clean"]["precision"] == 1.0


@pytest.mark.slow
def test_a_method_in_rounds_stops_at_a_checkpoint_on_a_rounds_last_step(smoke_root, tmp_path):
    """ROPO's full method trains 3 rounds (2, 1 and 1 of the 4 steps) on one schedule. Asked to end at the
    checkpoint after step 3 (round 2's last step, which the whole run scores as round 3 begins), it refreshes its
    pairs once (after round 1) and trains no round after the stop: the whole run's curve and margins up to there,
    bit for bit, and the record's filter rounds are the ones it ran."""
    whole, short = _whole_and_stopped(smoke_root, tmp_path, ("eval.checkpoints.every=1", "eval.checkpoints.unit=steps"),
                                      "loss=ropo", "method=ropo_full", "noise.rate=0.4", at=3)
    assert whole["ropo_full"]["round_steps"] == short["ropo_full"]["round_steps"] == [2, 1, 1]
    assert len(whole["ropo_full"]["rounds"]) == 2 and short["ropo_full"]["rounds"] == whole["ropo_full"]["rounds"][:1]


def test_which_methods_stop_early_and_stop_after_needs_checkpoints(tmp_path):
    from bench.cell.parts import build_parts
    from bench.cell.run import _stop_after
    from bench.core.options import ConfigError

    base = ["experiment=smoke", f"paths.root={tmp_path}", "eval.checkpoints.every=1",
            "eval.checkpoints.stop_after=2"]
    assert _stop_after(build_parts(compose(base))) == 2.0
    assert _stop_after(build_parts(compose([*base, "method=clean", "method.detector=oracle"]))) == 2.0
    assert _stop_after(build_parts(compose([*base, "loss=ropo", "method=ropo_full"]))) == 2.0  # its rounds too
    assert _stop_after(build_parts(compose([*base, "method=curriculum"]))) == 2.0
    parts = build_parts(compose(base))
    mine = SimpleNamespace(name="mine")  # a method of one's own that does not say it can stop: it runs to its end
    assert _stop_after(SimpleNamespace(eval=parts.eval, method=mine)) is None
    with pytest.raises(ConfigError, match="eval.checkpoints.stop_after=2 .* valid: eval.checkpoints.every set"):
        build_parts(compose([*base[:2], "eval.checkpoints.stop_after=2"]))


def test_a_checkpoint_on_a_stages_last_step_is_scored_as_the_next_stage_begins_and_the_runs_end_is_left_to_it():
    """A staged method (ROPO's rounds, a curriculum) runs one trainer per stage: a checkpoint due on a stage's last
    step is scored by the next trainer's first act (the policy that stage left); the run's own end is the final
    evaluation's. Three stages of 2 steps, a checkpoint every 2 steps: points at steps 2 and 4, none at 6."""
    from bench.evaluation.checkpoints import Checkpoints, Scored

    class Policy:
        version = 0

        def train(self):
            pass

    seen = []

    def evaluate(policy, final):
        seen.append(policy.version)
        return Scored({"gold_reward": float(policy.version)}, {})

    cb, policy = Checkpoints(evaluate, every=2, unit="steps"), Policy()
    loader = list(range(4))  # 4 batches an epoch
    for _stage in range(3):
        args = SimpleNamespace(gradient_accumulation_steps=1)
        cb.on_train_begin(args, None, None, train_dataloader=loader, model=policy)
        for k in range(1, 3):
            policy.version += 1  # one optimizer step
            cb.on_step_end(args, SimpleNamespace(global_step=k, max_steps=2), None, model=policy)
    assert [p["step"] for p in cb.points] == [2, 4] and [p["epoch"] for p in cb.points] == [0.5, 1.0]
    assert seen == [2, 4]  # each scored the policy its stage left, before the next stage's first step
    assert cb.pending == 6  # the run's end: the final evaluation's


def test_staged_tells_the_checkpoints_the_runs_length_and_a_curriculums_epoch():
    """A curriculum's first stage trains on a third of the pairs: its epoch is still a pass over all of them (300
    pairs, batch 10: 30 steps), not over the first stage's data loader (10 batches); other staged runs count it
    on their first trainer's loader, as the standard cell does."""
    from bench.evaluation.checkpoints import Checkpoints
    from bench.methods.base import TrainContext
    from bench.methods.stages import Staged

    def staged(**kw):
        cb = Checkpoints(lambda policy, final: None, every=1)
        ctx = TrainContext(policy=None, tokenizer=None, train_dataset=None, loss=None, out_dir=Path("."), seed=0,
                           train=SimpleNamespace(batch_size=10, gradient_accumulation_steps=1), reference_path="",
                           callbacks=[cb])
        Staged(ctx, [10, 10, 10], "curriculum", **kw)
        cb.on_train_begin(SimpleNamespace(gradient_accumulation_steps=1), None, None, train_dataloader=list(range(10)))
        return cb

    cb = staged(epoch_pairs=300)
    assert (cb.planned_steps, cb.steps_per_epoch, cb.epoch(15)) == (30, 30, 0.5)
    cb = staged()
    assert (cb.planned_steps, cb.steps_per_epoch) == (30, 10)


def test_a_stop_on_a_stages_last_step_ends_the_run_there_and_the_runs_own_end_is_no_stop():
    """Told the whole run's length (``planned_steps``, as ``Staged`` does), the checkpoints end a staged run at a
    checkpoint on a stage's last step (left unscored: the final evaluation's), and never call the run's own end a
    stop. Three stages of 2 steps, a checkpoint every 2 steps, 4 steps an epoch."""
    from bench.evaluation.checkpoints import Checkpoints, Scored

    def run(stop_after):
        seen = []
        cb = Checkpoints(lambda policy, final: seen.append(policy.version) or Scored({}, {}), every=2, unit="steps",
                         stop_after=stop_after)
        cb.planned_steps = 6
        policy = SimpleNamespace(version=0, train=lambda: None)
        for _stage in range(3):
            args, control = SimpleNamespace(gradient_accumulation_steps=1), SimpleNamespace(should_training_stop=False)
            cb.on_train_begin(args, None, control, train_dataloader=list(range(4)), model=policy)
            for k in range(1, 3):
                policy.version += 1
                cb.on_step_end(args, SimpleNamespace(global_step=k, max_steps=2), control, model=policy)
                if control.should_training_stop:
                    return cb, seen
        return cb, seen

    cb, seen = run(stop_after=1.0)  # step 4: stage 2's last step
    assert cb.stopped == {"step": 4, "epoch": 1.0, "stop_after": 1.0, "planned_steps": 6}
    assert seen == [2] and cb.pending is None
    cb, seen = run(stop_after=1.5)  # step 6: the run's own end, no stop
    assert cb.stopped is None and seen == [2, 4] and cb.pending == 6


# ------------------------------------------------------------------------------------------------ tuning
def test_a_tuning_selection_can_pick_a_checkpoint_and_the_report_reads_it(tmp_path):
    from bench.report.aggregate import per_hp_source
    from bench.tune import selection
    from bench.tune.space import Knob, Space

    lrs = (1e-4, 2e-4)
    # epoch 1 is best for lr 1e-4 (0.30), the end (epoch 2) for 2e-4 (0.20): the rule picks lr 1e-4 at epoch 1
    curves = {1e-4: {1.0: 0.30, 2.0: 0.10}, 2e-4: {1.0: 0.15, 2.0: 0.20}}
    scores = {}
    for lr, c in curves.items():
        p = selection.point({"train.learning_rate": lr})
        curve = {e: {"epoch": e, "val_gold_reward": v, "gold_reward": v - 0.05} for e, v in c.items()}
        scores[("dpo", "c", p, 0)] = {"val_gold_reward": c[2.0], "gold_reward": c[2.0] - 0.05,
                                      selection.CURVE: curve}
    space = Space("dpo", (Knob("train.learning_rate", lrs, 2e-4),))
    plan = {"seeds": [0], "checkpoints": True}
    row = selection._row(plan, space, {"key": "c", "noise": "random_flip", "rate": 0.4},
                         SimpleNamespace(name="oracle", metric="val_gold_reward"), scores)
    assert row["train.learning_rate"] == 1e-4 and row["checkpoint"] == 1.0 and row["val_score"] == 0.30
    assert row["test_gold_reward"] == pytest.approx(0.25)  # the test score at the picked checkpoint
    no_ckpt = selection._row({**plan, "checkpoints": False}, space, {"key": "c", "noise": "random_flip", "rate": 0.4},
                             SimpleNamespace(name="oracle", metric="val_gold_reward"), scores)
    assert no_ckpt["train.learning_rate"] == 2e-4 and "checkpoint" not in no_ckpt
    rec = {"cell_id": "x", "metrics": {"gold_reward": 0.05, "clean_f1": 1.0}, "method": "clean",
           "metric_info": {"clean_f1": {"evaluator": "clean"}, "gold_reward": {"evaluator": "gold"}},
           "curve": [{"step": 5, "epoch": 1.0, "gold_reward": 0.25}, {"step": 10, "epoch": 2.0, "gold_reward": 0.05}],
           "hp_source": {"source": "tuning", "criterion": "oracle", "checkpoint": 1.0}}
    (out,) = per_hp_source([rec])
    assert out["metrics"] == {"gold_reward": 0.25, "clean_f1": 1.0} and out["checkpoint"] == 1.0
