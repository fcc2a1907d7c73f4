"""The seed methods (bench/methods/): ``curriculum`` (Curry-DPO's easy-to-hard stages), ``rm_ensemble`` (a reward-model
ensemble on bootstraps of the noisy pairs) and ``self_play`` (SPPO's rounds), the stage machinery they share
(bench/methods/stages.py), and the scores they read (bench/evaluation/scorer.py), which must flip with the labels.

Unit tests first (no training beyond a tiny trainer), then one cell of each method on the smoke world, run in this
process with the session's smoke world as cache (``conftest.smoke_root``) and results of their own under tmp_path.
No test asserts that a method helps: the smoke world is far too small for that.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset, disable_progress_bars

import noise
import tiny_models
from bench import losses
from bench import methods as methods_pkg
from bench.config.compose import compose, group_node
from bench.core.options import ConfigError
from bench.methods import curriculum as cur
from bench.methods import rm_ensemble as rme
from bench.methods.stages import split_steps, total_steps

disable_progress_bars()


# ------------------------------------------------------------------------------------------------ the budget
@pytest.mark.parametrize("total, weights, expected", [
    (6, [15, 15, 14], [2, 2, 2]),     # the smoke cell's three curriculum bins
    (10, [1, 1, 1], [4, 3, 3]),       # a tie: the first stage takes the extra step
    (12, [1, 2, 3], [2, 4, 6]),       # exact shares are kept
    (10, [8, 1, 1], [8, 1, 1]),
    (7, [2, 1], [5, 2]),              # shares 4.67 and 2.33
    (3, [100, 1, 1], [1, 1, 1]),      # shares that round to 0 still get one step each
    (5, [0, 0, 5], [1, 1, 3]),
])
def test_split_steps_by_hand(total, weights, expected):
    assert split_steps(total, weights, "t") == expected


def test_split_steps_sums_to_total_at_least_one_each_and_within_one_of_the_share():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(2, 7))
        weights = rng.integers(0, 50, k).tolist()
        if sum(weights) == 0:
            weights[0] = 1
        total = int(rng.integers(k, 80))
        steps = split_steps(total, weights, "t")
        assert len(steps) == k and sum(steps) == total and min(steps) >= 1, (total, weights, steps)
        shares = [total * w / sum(weights) for w in weights]
        if min(shares) >= 1:  # nothing had to be moved to a stage below one step: a largest-remainder split
            assert all(abs(s - q) < 1 for s, q in zip(steps, shares)), (total, weights, steps)
        for i in range(k):  # a heavier stage never gets fewer steps
            for j in range(k):
                if weights[i] < weights[j]:
                    assert steps[i] <= steps[j], (total, weights, steps)


def test_split_steps_error_when_the_budget_is_below_the_stages():
    with pytest.raises(ConfigError, match=r"method=curriculum: the training budget is 2 steps, fewer than its "
                                                r"3 stages.*train\.max_steps.*method\.budget=per_stage"):
        split_steps(2, [5, 5, 5], "method=curriculum")
    assert split_steps(3, [5, 5, 5], "t") == [1, 1, 1]


def test_the_methods_name_their_own_budget_setting_in_the_error():
    train = tiny_models.train_config(max_steps=2)
    ctx = SimpleNamespace(train_dataset=list(range(30)), train=train, scorer=object(), seed=0)
    with pytest.raises(ConfigError, match=r"method=curriculum.*2 steps.*3 stages.*method\.budget=per_stage"):
        _method("curriculum").train(ctx)
    with pytest.raises(ConfigError, match=r"method=self_play.*2 steps.*3 stages.*method\.budget=per_round"):
        _method("self_play").train(ctx)
    with pytest.raises(ConfigError, match="method=self_play needs a scorer"):
        _method("self_play").train(SimpleNamespace(**{**vars(ctx), "scorer": None}))


@pytest.mark.parametrize("batch_size, accumulation, epochs", [(3, 2, 1.0), (4, 1, 1.5), (3, 1, 1.0), (8, 1, 1.0)])
def test_total_steps_counts_as_transformers_does(tmp_path, batch_size, accumulation, epochs):
    """8 pairs, epoch-based: the method's budget is the global_step a plain TRL run of the cell's settings reaches
    (3 batches with accumulation 2: transformers makes 2 optimizer steps, the last on one micro-batch)."""
    from bench import training as tr

    train = dataclasses.replace(tiny_models.TRAIN, max_steps=None, batch_size=batch_size,
                                gradient_accumulation_steps=accumulation, epochs=epochs)
    trainer = tr.PreferenceTrainer(model=tiny_models.model(), args=tr.dpo_config(train, tmp_path, seed=0),
                                   train_dataset=tiny_models.pairs_dataset(), processing_class=tiny_models.tokenizer(),
                                   pref_loss=losses.get("dpo"))
    trainer.train()
    assert total_steps(train, 8) == trainer.state.global_step
    assert total_steps(dataclasses.replace(train, max_steps=7), 8) == 7  # max_steps overrides epochs


# ------------------------------------------------------------------------------------------------ scores and flips
class FakeScorer:
    """A scorer by word count (chosen responses are longer): what ``add_scores`` needs, and a call counter."""

    key = "fake-scorer"

    def __init__(self):
        self.calls = []

    def score(self, prompts, responses):
        self.calls.append(len(responses))
        return np.array([len(r.split()) + 0.01 * len(p) for p, r in zip(prompts, responses)], dtype=float)


def _pairs(n: int = 20) -> Dataset:
    return Dataset.from_dict({
        "prompt": [f"Question {i}?" for i in range(n)],
        "chosen": [" ".join(["good"] * (3 + i % 4)) + f" {i}" for i in range(n)],
        "rejected": [f"bad {i}" for i in range(n)],
        "gold_chosen": [1.0 + i for i in range(n)],
        "gold_rejected": [0.0] * n,
    })


def _scored(tmp_path, n: int = 20):
    from bench.evaluation import scorer as scoring

    fake = FakeScorer()
    ds = scoring.add_scores(_pairs(n), fake, "fp-test", str(tmp_path))
    return ds, fake


def test_scores_flip_with_labels(tmp_path):
    from bench.evaluation import scorer as scoring

    clean, fake = _scored(tmp_path)
    assert fake.calls == [40]  # every response scored once, in one call
    sc, sr = np.asarray(clean["score_chosen"]), np.asarray(clean["score_rejected"])
    m_clean = sc - sr
    assert (m_clean > 0).all()
    # cached: the same scorer key and data fingerprint are not scored again
    again = scoring.add_scores(_pairs(), fake, "fp-test", str(tmp_path))
    assert fake.calls == [40] and again["score_chosen"] == clean["score_chosen"]

    noisy = noise.from_config({"name": "random_flip", "rate": 0.5}, seed=0)(clean)
    flipped = np.asarray(noisy["is_flipped"], dtype=bool)
    assert flipped.sum() == 10
    m_noisy = np.asarray(noisy["score_chosen"]) - np.asarray(noisy["score_rejected"])
    assert np.array_equal(np.sign(m_noisy) < 0, flipped)  # the margin changes sign exactly on flipped rows
    np.testing.assert_allclose(m_noisy, np.where(flipped, -m_clean, m_clean))
    for i in range(len(clean)):  # and the scores travel with their own responses
        src = ("rejected", "chosen") if flipped[i] else ("chosen", "rejected")
        assert (noisy["chosen"][i], noisy["rejected"][i]) == (clean[src[0]][i], clean[src[1]][i])
        assert noisy["score_chosen"][i] == clean[f"score_{src[0]}"][i]
    assert scoring.agreement(noisy)["agrees_observed"] == pytest.approx(0.5)
    assert scoring.agreement(noisy)["agrees_clean"] == pytest.approx(1.0)


def test_curriculum_difficulty_puts_flipped_pairs_last(tmp_path):
    clean, _ = _scored(tmp_path)
    noisy = noise.from_config({"name": "random_flip", "rate": 0.4}, seed=1)(clean)
    flipped = np.asarray(noisy["is_flipped"], dtype=bool)
    easy = cur.difficulty(noisy, "score_gap")
    np.testing.assert_allclose(easy, np.asarray(noisy["score_chosen"]) - np.asarray(noisy["score_rejected"]))
    assert (easy[flipped] < 0).all() and (easy[~flipped] > 0).all()
    # the method's order: easiest (largest margin as labelled) first, in equal bins; 8 flips of 20 in 2 bins
    first, last = np.array_split(np.argsort(-easy, kind="stable"), 2)
    assert not flipped[first].any() and flipped[last].sum() == 8
    assert easy[first].min() >= easy[last].max()

    with_ref = noisy.add_column("ref_chosen_logps", [-1.0] * 20).add_column("ref_rejected_logps", [-3.0] * 20)
    np.testing.assert_allclose(cur.difficulty(with_ref, "ref_margin"), 2.0)
    with pytest.raises(ConfigError, match=r"method\.by=score_gap.*score_chosen.*scorer=proxy"):
        cur.difficulty(_pairs(), "score_gap")
    with pytest.raises(ConfigError, match=r"method\.by=ref_margin.*ref_chosen_logps"):
        cur.difficulty(noisy, "ref_margin")


# ------------------------------------------------------------------------------------------------ rm_ensemble pieces
def test_combine_by_hand():
    margins = np.array([[1.0, -2.0, 3.0],
                        [3.0, 0.0, -1.0]])  # 2 members x 3 pairs; variances 1, 1, 4
    np.testing.assert_allclose(rme.combine(margins, "mean", 1.0), [2.0, -1.0, 1.0])
    np.testing.assert_allclose(rme.combine(margins, "worst_case", 1.0), [1.0, -2.0, -1.0])
    np.testing.assert_allclose(rme.combine(margins, "uncertainty", 0.5), [1.5, -1.5, -1.0])
    np.testing.assert_allclose(rme.combine(margins, "uncertainty", 0.0), rme.combine(margins, "mean", 0.0))


def test_weights_are_a_sigmoid_of_margin_over_temperature():
    w = rme.weights(np.array([0.0, 2.0, -2.0, 40.0]), 2.0)
    np.testing.assert_allclose(w[:3], [0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))])
    assert w[1] + w[2] == pytest.approx(1.0) and w[3] == pytest.approx(1.0)
    assert rme.weights(np.array([1.0]), 0.5)[0] > rme.weights(np.array([1.0]), 5.0)[0]


def test_touched_stats_by_hand():
    touched = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    flipped = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    s = rme.touched_stats(touched, flipped)
    assert (s["n_pairs"], s["n_touched"]) == (6, 3)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["chance_precision"] == pytest.approx(0.5)
    none_touched = rme.touched_stats(np.zeros(6, bool), flipped)
    assert none_touched["precision"] is None and none_touched["recall"] == 0.0 and none_touched["n_touched"] == 0
    no_flips = rme.touched_stats(touched, np.zeros(6, bool))
    assert no_flips["precision"] == 0.0 and no_flips["recall"] is None and no_flips["chance_precision"] == 0.0
    unknown = rme.touched_stats(touched, None)
    assert unknown["precision"] is None and unknown["recall"] is None and unknown["chance_precision"] is None
    assert unknown["n_touched"] == 3


def test_relabel_swaps_texts_and_scores_on_the_masked_rows_and_xors_is_flipped(tmp_path):
    clean, _ = _scored(tmp_path, 12)
    noisy = noise.from_config({"name": "random_flip", "rate": 0.5}, seed=0)(clean)
    flipped = np.asarray(noisy["is_flipped"], dtype=bool)
    mask = np.zeros(12, dtype=bool)
    mask[np.flatnonzero(flipped)[:3]] = True  # three flipped pairs (relabelled back) ...
    mask[np.flatnonzero(~flipped)[:2]] = True  # ... and two clean ones (now wrong)
    out = rme.relabel(noisy, mask)
    assert out.column_names == noisy.column_names and len(out) == 12
    for i in range(12):
        a, b = ("rejected", "chosen") if mask[i] else ("chosen", "rejected")
        for prefix in ("", "score_", "gold_"):
            assert out[f"{prefix}chosen"][i] == noisy[f"{prefix}{a}"][i], (i, prefix)
            assert out[f"{prefix}rejected"][i] == noisy[f"{prefix}{b}"][i], (i, prefix)
        assert out["prompt"][i] == noisy["prompt"][i]
    assert np.array_equal(np.asarray(out["is_flipped"], dtype=bool), flipped ^ mask)
    # relabelling exactly the flipped pairs gives back the clean data, with no flip left
    back = rme.relabel(noisy, flipped)
    assert back["chosen"] == clean["chosen"] and back["score_chosen"] == clean["score_chosen"]
    assert not any(back["is_flipped"])
    # data without a flip mask: swapped, and no is_flipped column appears
    plain = rme.relabel(clean, mask)
    assert "is_flipped" not in plain.column_names and plain["chosen"][int(np.argmax(mask))] == clean["rejected"][
        int(np.argmax(mask))]


# ------------------------------------------------------------------------------------------------ configuration
def _method(name: str, **changes):
    return methods_pkg.from_config({**group_node("method", name), **changes})


@pytest.mark.parametrize("name, changes, field", [
    ("curriculum", {"stages": 1}, "method.stages"),
    ("curriculum", {"by": "length"}, "method.by"),
    ("curriculum", {"budget": "per_round"}, "method.budget"),
    ("rm_ensemble", {"k": 1}, "method.k"),
    ("rm_ensemble", {"combine": "max"}, "method.combine"),
    ("rm_ensemble", {"action": "flip"}, "method.action"),
    ("rm_ensemble", {"temperature": 0.0}, "method.temperature"),
    ("self_play", {"rounds": 1}, "method.rounds"),
    ("self_play", {"n_samples": 1}, "method.n_samples"),
    ("self_play", {"reference": "frozen"}, "method.reference"),
    ("self_play", {"budget": "per_stage"}, "method.budget"),
])
def test_method_config_errors_name_the_field(name, changes, field):
    key, value = next(iter(changes.items()))
    with pytest.raises(ConfigError, match=rf"^{field}={value!r}"):
        _method(name, **changes)


def test_method_defaults_build():
    assert _method("curriculum").options.stages == 3 and _method("curriculum").needs_scores
    assert not _method("curriculum", by="ref_margin").needs_scores
    assert _method("rm_ensemble").extra_columns == () and _method("rm_ensemble", action="weight").extra_columns == (
        "pair_weight",)
    assert _method("self_play").needs_scores
    rm = {**group_node("method", "rm_ensemble")["rm"], "path": "/models/mine"}
    with pytest.raises(ConfigError, match=r"method\.rm\.path.*embedded"):
        _method("rm_ensemble", rm=rm)


def _parts(*overrides: str):
    from bench.cell.parts import build_parts

    return build_parts(compose(list(overrides)))


@pytest.mark.parametrize("overrides, match", [
    (("method=curriculum", "method.stages=1"), r"^method\.stages=1"),
    (("method=rm_ensemble", "method.combine=max"), r"^method\.combine='max'"),
    (("method=rm_ensemble", "method.action=flip"), r"^method\.action='flip'"),
    (("method=curriculum", "loss=simpo", "method.by=ref_margin"), r"method\.by=ref_margin.*loss=simpo.*reference-free"),
    (("method=curriculum", "loss=asft", "method.reset_reference=true"),
     r"method\.reset_reference=true.*loss=asft.*reference-free"),
    (("method=self_play", "scorer=none"), r"scorer=none, but method=self_play reads per-response scores.*scorer=proxy"),
    (("method=curriculum", "scorer=none"), r"scorer=none, but method=curriculum"),
    (("method=self_play", "loss=ncdpo", "loss.per_annotator=true", "noise=annotator_biased"),
     r"method=self_play.*annotator"),
])
def test_cell_config_errors_at_start_up(overrides, match):
    with pytest.raises(ConfigError, match=match):
        _parts(*overrides)


def test_cell_parts_of_the_seed_methods():
    p = _parts("method=curriculum")
    assert p.scorer.name == "proxy" and p.label == "DPO + curriculum (score_gap)"  # the method picks scorer=proxy
    # by the reference's margin nothing reads scores: no scorer is computed (nor part of the identity)
    assert _parts("method=curriculum", "method.by=ref_margin").scorer.name == "none"
    assert _parts("method=curriculum", "loss=simpo").label.endswith("+ curriculum (score_gap)")
    assert _parts("method=curriculum", "scorer=oracle").label.endswith("[oracle scorer]")
    assert _parts("method=self_play").scorer.name == "proxy"
    assert _parts("method=rm_ensemble").scorer.name == "none"


# ------------------------------------------------------------------------------------------------ end to end
STEPS = 6  # experiment=smoke has train.max_steps=2, fewer than 3 stages


def _cell(smoke_root: Path, results: Path, *overrides: str):
    """One smoke cell in this process: the session's smoke world (and its caches), results under ``results``."""
    from bench.cell import run_cell
    from bench.core import records

    cfg = compose(["experiment=smoke", f"paths.root={smoke_root}", f"paths.results={results}",
                   f"train.max_steps={STEPS}", "train.progress=false", *overrides])
    rec = run_cell(cfg)
    assert rec["status"] == "ok" and not rec.get("skipped")
    cell = records.cell_dir(results, rec["cell_id"])
    assert records.read_record(results, rec["cell_id"])["status"] == "ok"
    return cfg, rec, cell


def _mask(cell: Path) -> np.ndarray:
    return np.asarray(json.loads((cell / "flip_mask.json").read_text())["is_flipped"], dtype=bool)


def _train_log(cell: Path) -> list[dict]:
    return [json.loads(line) for line in (cell / "train_log.jsonl").read_text().splitlines() if line.strip()]


def _check_one_schedule(cfg, cell: Path, stage_steps: list[int]) -> list[dict]:
    """The stages' steps are numbered 1..total and their learning rates follow one schedule over all of them (a
    schedule restarted per stage would fall back to its warmup at each stage's start)."""
    import torch
    from transformers import get_scheduler

    from bench.cell.parts import build_parts
    from bench.training import dpo_config

    log = [h for h in _train_log(cell) if "loss" in h]
    total = sum(stage_steps)
    assert [h["step"] for h in log] == list(range(1, total + 1))
    assert [h["stage"] for h in log] == [i + 1 for i, s in enumerate(stage_steps) for _ in range(s)]
    train = build_parts(cfg).train
    args = dpo_config(train, cell / "schedule-check", seed=0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=train.learning_rate)
    sched = get_scheduler(train.lr_scheduler, optimizer=opt, num_warmup_steps=args.get_warmup_steps(total),
                          num_training_steps=total)
    expected = []
    for _ in range(total):
        expected.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert [h["learning_rate"] for h in log] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    return log


@pytest.mark.slow
def test_curriculum_cell_end_to_end(smoke_root, tmp_path):
    cfg, rec, cell = _cell(smoke_root, tmp_path / "results", "method=curriculum")
    assert rec["method"] == "curriculum" and rec["loss_label"] == "DPO + curriculum (score_gap)"
    assert rec["scorer"]["name"] == "proxy"
    assert rec["train_steps"] == STEPS  # budget=matched: the standard cell's steps
    block = rec["curriculum"]
    stages = block["stages"]
    n = rec["n_train_pairs"]
    assert block["config"]["stages"] == 3 and [s["stage"] for s in stages] == [1, 2, 3]
    assert [s["n_pairs"] for s in stages] == [len(b) for b in np.array_split(np.arange(n), 3)]
    assert sum(s["n_pairs"] for s in stages) == n
    assert block["stage_steps"] == [s["steps"] for s in stages] and sum(block["stage_steps"]) == STEPS
    # the stages' realized flip rates, weighted by their pairs, are the cell's
    mask = _mask(cell)
    assert len(mask) == n and mask.sum() == rec["noise_stats"]["n_flipped"]
    flips = sum(s["realized_flip_rate"] * s["n_pairs"] for s in stages)
    assert flips == pytest.approx(mask.sum()) and flips / n == pytest.approx(rec["noise_stats"]["realized_rate"])
    for s in stages:
        assert rec["metrics"][f"curriculum_flip_rate_stage_{s['stage']}"] == pytest.approx(s["realized_flip_rate"])
    # easy to hard: every margin of a stage is at least every margin of the next
    for a, b in zip(stages, stages[1:]):
        assert a["margin_min"] >= b["margin_mean"] and a["margin_mean"] > b["margin_mean"]

    # the stages recomputed from the cell's own inputs: the scorer's scores on the clean pairs, swapped by the saved
    # mask, sorted by margin as labelled and dealt into equal bins, give exactly the recorded stages
    from omegaconf import OmegaConf

    from bench import data as data_mod
    from bench.cell import extras
    from bench.cell.parts import build_parts

    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    scored, scorer = extras.with_scores(parts, data, OmegaConf.to_container(cfg.noise, resolve=True), cfg.paths.cache)
    assert scorer.name == "proxy"
    noisy = parts.injector(scored)
    assert np.array_equal(np.asarray(noisy["is_flipped"], dtype=bool), mask)
    m_clean = np.asarray(scored["score_chosen"]) - np.asarray(scored["score_rejected"])
    easy = cur.difficulty(noisy, "score_gap")
    np.testing.assert_allclose(easy, np.where(mask, -m_clean, m_clean))  # a flip turns its margin around
    for s, idx in zip(stages, np.array_split(np.argsort(-easy, kind="stable"), 3)):
        assert s["n_pairs"] == len(idx)
        assert s["realized_flip_rate"] == pytest.approx(float(mask[idx].mean()))
        assert s["margin_mean"] == pytest.approx(float(easy[idx].mean()), abs=1e-5)
        assert s["margin_min"] == pytest.approx(float(easy[idx].min()), abs=1e-5)

    _check_one_schedule(cfg, cell, block["stage_steps"])


@pytest.mark.slow
def test_rm_ensemble_cell_end_to_end(smoke_root, tmp_path):
    small = ("method=rm_ensemble", "method.k=2", "method.rm.train.max_steps=4")
    cfg, rec, cell = _cell(smoke_root, tmp_path / "results", *small)
    assert rec["method"] == "rm_ensemble" and rec["scorer"] is None
    assert rec["train_steps"] == STEPS  # the standard cell's budget, whatever is dropped
    block = rec["rm_ensemble"]
    n, mask = rec["n_train_pairs"], _mask(cell)
    assert block["n_pairs"] == n == len(mask)
    assert block["chance_precision"] == pytest.approx(mask.mean())
    # precision and recall against the saved flip mask: one count of hits behind both
    touched, n_flipped = block["n_touched"], int(mask.sum())
    assert 0 <= touched <= n and rec["metrics"]["rm_ensemble_touched"] == touched
    if touched:
        hits = block["precision"] * touched
        assert hits == pytest.approx(round(hits)) and 0 <= round(hits) <= min(touched, n_flipped)
        assert block["recall"] == pytest.approx(round(hits) / n_flipped)
        assert rec["metrics"]["rm_ensemble_precision"] == pytest.approx(block["precision"])
    else:
        assert block["precision"] is None and math.isnan(rec["metrics"]["rm_ensemble_precision"])
        assert block["recall"] == 0.0
    assert rec["metrics"]["rm_ensemble_recall"] == pytest.approx(block["recall"])
    assert rec["metric_info"]["rm_ensemble_precision"]["higher_is_better"] is True
    # the members: k distinct bootstraps, each trained with the given recipe and cached under <cache>/rm_ensemble/
    members = block["members"]
    assert [m["member"] for m in members] == [0, 1] and len({m["key"] for m in members}) == 2
    cache = Path(cfg.paths.cache) / "rm_ensemble"
    for m in members:
        assert m["train_steps"] == 4 and 0 < m["out_of_bag"] < 1 and 0 <= m["heldout_accuracy"] <= 1
        assert (cache / m["key"] / "meta.json").exists() and (cache / m["key"] / "model").is_dir()
    _check_one_schedule(cfg, cell, [STEPS])
    built = {m["key"]: (cache / m["key"] / "meta.json").stat().st_mtime_ns for m in members}
    # the ensemble's time is part of train, and named apart (the report counts it as a one-off: it is cached)
    t = rec["timings"]
    assert 0 < t["train_parts"]["ensemble"] < t["train"] and t["total"] == pytest.approx(
        sum(v for k, v in t.items() if k not in ("total", "train_parts")))

    # action=weight on the same noisy data: the same (cached) ensemble judges the same pairs, and every pair trains
    cfg_w, rec_w, cell_w = _cell(smoke_root, tmp_path / "results", *small, "method.action=weight")
    assert rec_w["cell_id"] != rec["cell_id"] and rec_w["status"] == "ok" and rec_w["train_steps"] == STEPS
    w = rec_w["rm_ensemble"]
    assert [m["key"] for m in w["members"]] == [m["key"] for m in members]
    assert (w["n_touched"], w["precision"], w["recall"]) == (touched, block["precision"], block["recall"])
    assert {k: (cache / k / "meta.json").stat().st_mtime_ns for k in built} == built  # no member trained twice
    assert w["config"]["action"] == "weight" and np.array_equal(_mask(cell_w), mask)


@pytest.mark.slow
def test_self_play_cell_end_to_end(smoke_root, tmp_path):
    # no warmup: every step moves the policy, so a round's reference differs from the initial policy
    cfg, rec, cell = _cell(smoke_root, tmp_path / "results", "method=self_play", "method.n_samples=2",
                           "train.warmup_steps=0")
    assert rec["method"] == "self_play" and rec["scorer"]["name"] == "proxy"
    assert rec["train_steps"] == STEPS
    block = rec["self_play"]
    rounds = block["rounds"]
    assert block["config"]["rounds"] == 3 and block["round_steps"] == [2, 2, 2]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert rounds[0]["source"] == "offline pairs" and rounds[0]["n_pairs"] == rec["n_train_pairs"]
    later = rounds[1:]
    assert all(r["source"] == "policy samples" for r in later)
    for r in later:
        assert 0 < r["n_pairs"] <= r["n_prompts"] and r["n_samples"] <= 2 * r["n_prompts"]
        assert r["score_gap_mean"] > 0  # the best sample minus the worst under the scorer
        assert 0.0 <= r["gold_agreement"] <= 1.0
    # the training prompts are dealt once over the later rounds
    from bench import data as data_mod
    from bench.cell.parts import build_parts

    parts = build_parts(cfg)
    prompts = data_mod.load(parts.data, parts.model, cfg.paths.cache).train["prompt"]
    assert sum(r["n_prompts"] for r in later) == len(set(prompts))
    assert rec["metrics"]["self_play_gold_agreement"] == pytest.approx(np.mean([r["gold_agreement"] for r in later]))

    log = _check_one_schedule(cfg, cell, block["round_steps"])
    # reference=round: each later round's reference is the policy it starts from, so its first DPO loss is log 2
    for r in (2, 3):
        first = next(h for h in log if h["stage"] == r)
        assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)
