"""ROPO's full method (bench/methods/ropo_full/): filter accounting, the rejection-sampling rule, the reference path for
new pairs against TRL's precompute, configuration errors, and one end-to-end cell on a small world.

The filter's quality (precision above the flip rate) is not asserted: the CI worlds are too small for that.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

import tiny_models
from bench import losses
from bench import training as tr
from bench.core.counting import exact_count
from bench.core.options import ConfigError
from bench.methods import pairs as rscore
from bench.methods.ropo_full import candidates as rcand
from bench.methods.ropo_full import config as rf
from bench.methods.ropo_full import filter as rfilter
from conftest import run_bench


# ------------------------------------------------------------------------------------------------ accounting
def test_filter_stats_against_a_known_mask():
    flipped = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    dropped = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0], dtype=bool)
    losses_ = np.array([9, 1, 8, 0, 0, 7, 0, 0, 0, 0], dtype=float)
    s = rfilter.filter_stats(dropped, flipped, losses_)
    assert (s["n_scored"], s["n_dropped"], s["n_flipped"], s["n_dropped_flipped"]) == (10, 3, 3, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["chance_precision"] == pytest.approx(0.3)
    # loss as a detector: flipped {9, 1, 7} vs clean {8, 0 x6}: 9 beats 7, 7 beats 6, 1 beats 6: 19 of 21 pairs
    assert s["auroc"] == pytest.approx(19 / 21)
    assert s["mean_loss_flipped"] == pytest.approx(17 / 3) and s["mean_loss_clean"] == pytest.approx(8 / 7)


def test_filter_stats_edge_cases():
    none_dropped = rfilter.filter_stats(np.zeros(4, bool), np.array([1, 0, 0, 0], bool))
    assert none_dropped["precision"] is None and none_dropped["recall"] == 0.0
    no_flips = rfilter.filter_stats(np.array([1, 0, 0, 0], bool), np.zeros(4, bool), np.arange(4.0))
    assert no_flips["precision"] == 0.0 and no_flips["recall"] is None and no_flips["auroc"] is None
    unknown = rfilter.filter_stats(np.array([1, 0], bool), None)
    assert unknown["precision"] is None and unknown["n_dropped"] == 1
    with pytest.raises(ValueError, match="flip mask"):
        rfilter.filter_stats(np.array([1, 0], bool), np.array([1, 0, 0], bool))


def test_pooled_precision_sums_over_rounds():
    rounds = [{"n_dropped": 4, "n_dropped_flipped": 1}, {"n_dropped": 6, "n_dropped_flipped": 5}]
    assert rfilter.pooled_precision(rounds) == pytest.approx(6 / 10)  # not the mean of 0.25 and 0.833
    assert rfilter.pooled_precision([]) is None
    assert rfilter.pooled_precision([{"n_dropped": 2, "n_dropped_flipped": None}]) is None


def test_highest_loss_picks_the_top_k_deterministically():
    vals = np.array([0.5, 2.0, float("nan"), 2.0, 1.0])
    assert rfilter.highest_loss(vals, 2).tolist() == [False, True, True, False, False]  # NaN first, tie -> lower index
    assert rfilter.highest_loss(vals, 3).tolist() == [False, True, True, True, False]
    assert rfilter.highest_loss(vals, 0).sum() == 0
    assert [exact_count(0.2, n) for n in (1, 2, 3, 10, 12)] == [0, 0, 1, 2, 2]
    assert exact_count(0.25, 2) == 1  # halves up


# ------------------------------------------------------------------------------------------------ rejection sampling
def test_choose_pair_is_the_lowest_loss_pair_and_rejects_above_the_cut():
    loss = losses.get("ropo")
    pol = [-10.0, -8.0, -12.0, -9.0]
    ref = [-10.0, -10.0, -10.0, -10.0]  # implicit rewards beta*(pol - ref): 0, 0.2, -0.2, 0.1
    texts = ["a", "b", "c", "d"]
    lens = [3, 3, 3, 3]
    c = rcand.choose_pair(loss, pol, ref, lens, texts, cut=None)
    assert (c.chosen, c.rejected) == (1, 2) and c.accepted  # highest reward chosen, lowest rejected
    assert c.margin == pytest.approx(0.4)
    expected = float(loss(torch.tensor([-8.0]), torch.tensor([-12.0]), torch.tensor([-10.0]), torch.tensor([-10.0])))
    assert c.loss == pytest.approx(expected)
    assert not rcand.choose_pair(loss, pol, ref, lens, texts, cut=expected - 1e-6).accepted
    assert rcand.choose_pair(loss, pol, ref, lens, texts, cut=expected + 1e-6).accepted
    # identical texts never form a pair; fewer than two distinct candidates: no pair
    assert rcand.choose_pair(loss, [-8.0, -12.0], [-10.0, -10.0], [3, 3], ["x", "x"], cut=None) is None
    assert rcand.choose_pair(loss, [-8.0], [-10.0], [3], ["x"], cut=None) is None


def test_choose_pair_reference_free_loss():
    loss = losses.get("simpo")
    c = rcand.choose_pair(loss, [-10.0, -30.0, -5.0], None, [10, 10, 10], ["a", "b", "c"], cut=None)
    assert (c.chosen, c.rejected) == (2, 1)


# ------------------------------------------------------------------------------------------------ configuration
def ropo_options(node: dict):
    """``method=ropo_full``'s options: conf/method/ropo_full.yaml as composed, overridden by ``node``."""
    from bench import methods

    return methods.get("ropo_full", **{k: v for k, v in node.items() if k != "name"}).options


def test_config_defaults_and_errors():
    cfg = ropo_options({"name": "ropo_full"})
    assert cfg.rounds >= 2 and 0 < cfg.drop_fraction < 1 and cfg.budget == "matched"
    with pytest.raises(ConfigError, match="drop_fraction"):
        ropo_options({"drop_fractoin": 0.3})  # did-you-mean
    with pytest.raises(ConfigError, match="rounds"):
        ropo_options({"rounds": 1})
    with pytest.raises(ConfigError, match="drop_fraction"):
        ropo_options({"drop_fraction": 1.0})
    from bench import methods
    from bench.config.compose import compose
    with pytest.raises(ConfigError, match="standard"):
        methods.from_config({"name": "ropo"})
    assert compose().method.name == "standard"  # no method chosen: the standard one


def test_loss_other_than_ropo_is_an_error_unless_allowed():
    cfg = ropo_options({})
    assert rf.check_loss(losses.get("ropo"), cfg) == rf.LABEL
    with pytest.raises(ConfigError, match="loss=ropo"):
        rf.check_loss(losses.get("dpo"), cfg)
    allowed = ropo_options({"allow_other_loss": True})
    with pytest.warns(UserWarning, match="ablation"):
        assert rf.check_loss(losses.get("dpo"), allowed) == "ROPO full method (DPO)"
    with pytest.raises(ConfigError, match="batch-level"):
        rf.check_loss(losses.get("drdpo"), allowed)


def test_round_steps():
    cfg = ropo_options({"rounds": 3})
    train = tiny_models.train_config
    with pytest.warns(UserWarning, match=r"a round is 0\.05 of a pass over the 1000 pairs"):  # 3 of 63 steps
        assert rf.round_steps(cfg, train(batch_size=16, max_steps=10), 1000) == [4, 3, 3]
    with pytest.warns(UserWarning, match="never trained on"):
        assert rf.round_steps(cfg, train(batch_size=16, epochs=1, max_steps=None), 100) == [3, 2, 2]  # 7 steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a round of a whole pass or more: no warning
        assert rf.round_steps(cfg, train(batch_size=16, epochs=3, max_steps=None), 100) == [7, 7, 7]
    per_round = ropo_options({"rounds": 3, "budget": "per_round"})
    assert rf.round_steps(per_round, train(batch_size=16, epochs=1, max_steps=None), 100) == [7, 7, 7]
    with pytest.raises(ConfigError, match="budget"):
        rf.round_steps(cfg, train(batch_size=16, max_steps=2), 100)


# ------------------------------------------------------------------------------------------------ reference path
def test_reference_logps_of_new_pairs_match_trls_precompute(tmp_path):
    """The path ropo_full scores replacement pairs with (TRL's collator + compute_ref_log_probs on a separate
    frozen reference) gives TRL's own precomputed reference log-probs, on the training pairs and on new pairs."""
    from trl.trainer.utils import add_fused_lm_head

    tok = tiny_models.tokenizer()
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / "a", seed=0)
    trainer = tr.PreferenceTrainer(model=tiny_models.model(), args=args, train_dataset=tiny_models.pairs_dataset(),
                                   processing_class=tok, pref_loss=losses.get("ropo"))
    ref = tiny_models.model().eval()
    add_fused_lm_head(ref)
    got = rscore.pair_logps(trainer, ref, trainer.train_dataset, batch_size=3)
    assert torch.allclose(got["chosen"], torch.tensor(trainer.train_dataset["ref_chosen_logps"]), atol=1e-4)
    assert torch.allclose(got["rejected"], torch.tensor(trainer.train_dataset["ref_rejected_logps"]), atol=1e-4)

    # new pairs (as rejection sampling makes them): tokenized by TRL's preprocessing, scored by the same path
    base = tiny_models.pairs_dataset()
    new = base.select(range(4)).map(lambda r, i: {"chosen": r["rejected"] + " Extra.", "rejected": "Short."},
                                    with_indices=True)
    tok_new = rscore.tokenize_pairs(trainer, new, "new pairs")
    mine = rscore.pair_logps(trainer, ref, tok_new, batch_size=2)
    fresh = tr.PreferenceTrainer(model=tiny_models.model(), args=tr.dpo_config(tiny_models.TRAIN, tmp_path / "b", 0),
                                 train_dataset=new, processing_class=tok, pref_loss=losses.get("ropo"))
    assert torch.allclose(mine["chosen"], torch.tensor(fresh.train_dataset["ref_chosen_logps"]), atol=1e-4)
    assert torch.allclose(mine["rejected"], torch.tensor(fresh.train_dataset["ref_rejected_logps"]), atol=1e-4)
    assert (mine["chosen_len"] > 0).all()


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_ropo_full_cell_end_to_end(smoke_root, tmp_path):
    run_bench("experiment=smoke", "method=ropo_full", "loss=ropo", "noise.rate=0.4", "method.rounds=2",
              "method.drop_fraction=0.25", "train.max_steps=2", "eval.checkpoints.every=1", "eval.checkpoints.unit=steps",
              root=smoke_root, results=tmp_path / "results")
    recs = [json.loads(p.read_text()) for p in (tmp_path / "results" / "cells").glob("*/record.json")]
    rec = next(r for r in recs if r.get("method") == "ropo_full")
    assert rec["status"] == "ok" and rec["loss"] == "ropo" and rec["loss_label"] == "ROPO (full method)"
    assert rec["train_steps"] == 2
    assert [p["step"] for p in rec["curve"]] == [1, 2]  # round 1 ended on a checkpoint: scored as round 2 began
    summary = rec["ropo_full"]
    assert len(summary["rounds"]) == 1 and summary["round_steps"] == [1, 1]
    r1 = summary["rounds"][0]
    n = rec["n_train_pairs"]
    assert r1["n_scored"] == n and r1["n_dropped"] == exact_count(0.25, n)
    assert r1["n_flipped"] == rec["noise_stats"]["n_flipped"]

    # precision and recall recomputed from the cell's files: the filter's per-pair log against the saved mask
    cell = tmp_path / "results" / "cells" / rec["cell_id"]
    mask = json.loads((cell / "flip_mask.json").read_text())["is_flipped"]
    rows = [json.loads(line) for line in (cell / "ropo_filter.jsonl").read_text().splitlines()]
    dropped = [r for r in rows if r["dropped"]]
    assert len(dropped) == r1["n_dropped"]
    assert all(r["is_flipped"] == mask[r["row"]] for r in rows)
    tp = sum(mask[r["row"]] for r in dropped)
    assert r1["n_dropped_flipped"] == tp
    if dropped:
        assert r1["precision"] == pytest.approx(tp / len(dropped)) and 0.0 <= r1["precision"] <= 1.0
        assert rec["metrics"]["ropo_filter_precision"] == pytest.approx(tp / len(dropped))
    else:
        assert r1["precision"] is None and math.isnan(rec["metrics"]["ropo_filter_precision"])
    assert rec["metric_info"]["ropo_filter_precision"]["higher_is_better"] is True
    # the dropped pairs are the highest-loss ones
    kept_max = max((r["loss"] for r in rows if not r["dropped"]), default=-math.inf)
    assert all(r["loss"] >= kept_max for r in dropped)
    # every replacement is labelled by the policy (no gold, no noise flag) and accounted for
    reps = [json.loads(line) for line in (cell / "ropo_replacements.jsonl").read_text().splitlines()]
    assert len(reps) == len(dropped)
    assert r1["n_replacements"] + r1["n_rejected"] == len(dropped)
    assert all("is_flipped" not in r for r in reps)


def test_method_standard_leaves_cell_ids_unchanged():
    """Adding ``method: standard`` to the defaults must not re-key cells recorded before methods existed."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from bench.cell import cell_id
    from conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        std = compose("config", overrides=["loss=ropo"])
        full = compose("config", overrides=["loss=ropo", "method=ropo_full"])
    assert std.method.name == "standard"
    legacy = OmegaConf.create(OmegaConf.to_container(std))
    with open_dict(legacy):
        del legacy["method"]
    assert cell_id(std) == cell_id(legacy)
    assert cell_id(full) != cell_id(std)


# ------------------------------------------------------------------------------------------------ the named steps
def test_filter_pairs_drops_the_highest_losses_and_sets_the_cut():
    losses_ = np.array([0.1, 0.9, 0.5, 0.7, 0.2])
    flipped = np.array([0, 1, 0, 1, 0], dtype=bool)
    f = rfilter.filter_pairs(losses_, 0.4, flipped, round_no=2)
    assert f.dropped.tolist() == [False, True, False, True, False]  # round(0.4 * 5) = 2 highest
    assert f.cut == pytest.approx(0.5)  # the largest loss kept
    assert f.stats["round"] == 2 and f.stats["precision"] == 1.0 and f.stats["recall"] == 1.0
    assert f.stats["loss_cut"] == pytest.approx(0.5)


def test_sample_candidates_are_distinct_non_empty_and_seeded():
    model, tok = tiny_models.model(), tiny_models.tokenizer()
    prompts = list(tiny_models.pairs_dataset(3)["prompt"])
    kw = dict(max_new_tokens=8, seed=5, temperature=1.0, top_p=1.0, desc="test")
    a = rcand.sample_candidates(model, tok, prompts, 4, **kw)
    assert len(a) == 3 and all(1 <= len(c) <= 4 for c in a)
    assert all(len(set(c)) == len(c) and all(s.strip() for s in c) for c in a)
    assert a == rcand.sample_candidates(model, tok, prompts, 4, **kw)  # the same seed, the same candidates
    assert rcand.sample_candidates(model, tok, [], 4, **kw) == []


def test_score_responses_matches_trls_scoring_of_each_candidate(tmp_path):
    """Candidates scored two at a time as pseudo-pairs get exactly the log-probs TRL's path gives each of them."""
    tok = tiny_models.tokenizer()
    trainer = tr.PreferenceTrainer(model=tiny_models.model(), args=tr.dpo_config(tiny_models.TRAIN, tmp_path, 0),
                                   train_dataset=tiny_models.pairs_dataset(), processing_class=tok,
                                   pref_loss=losses.get("ropo"))
    ref = tiny_models.model().eval()
    from trl.trainer.utils import add_fused_lm_head

    add_fused_lm_head(ref)
    prompts = list(tiny_models.pairs_dataset(2)["prompt"])
    cands = [["Great.", "I would avoid it.", "The price is great."], ["Solid."]]
    scored = rcand.score_responses(trainer, trainer.model, ref, prompts, cands, like="x", batch_size=2)
    assert [s.texts for s in scored] == cands
    from datasets import Dataset

    for s, p in zip(scored, prompts):  # each candidate on its own, as the chosen side of a pair with a fixed partner
        single = Dataset.from_dict({"prompt": [p] * len(s.texts), "chosen": s.texts, "rejected": ["Okay."] * len(s.texts)})
        direct = rscore.pair_logps(trainer, ref, rscore.tokenize_pairs(trainer, single, "t"), batch_size=4)
        assert torch.allclose(torch.tensor(s.reference), direct["chosen"], atol=1e-4)
        assert [int(x) for x in s.lengths] == [int(x) for x in direct["chosen_len"]]


def test_choose_replacements_keeps_below_the_cut_and_records_every_choice():
    loss = losses.get("ropo")
    scored = [rcand.Scored(["a", "b", "c"], [-8.0, -12.0, -10.0], [-10.0, -11.0, -10.5], [3, 3, 3]),
              rcand.Scored(["x"], [-9.0], [-10.0], [2]),  # one candidate: no pair
              rcand.Scored(["p", "q"], [-9.9, -10.1], [-10.0, -10.0], [3, 3])]  # a weak pair: above the cut
    best = float(loss(torch.tensor([-8.0]), torch.tensor([-12.0]), torch.tensor([-10.0]), torch.tensor([-11.0])))
    reps = rcand.choose_replacements(loss, scored, ["P1", "P2", "P3"], [11, 12, 13], 1, cut=best + 1e-6, like="s",
                                     needs_ref=True, gold_reward=lambda p, y: {"a": 1.0, "b": -1.0}.get(y, 0.0))
    # the replacement carries its two candidates' own reference log-probs (no second reference pass)
    assert reps.pairs == [{"prompt": "P1", "chosen": "a", "rejected": "b", "ref_chosen_logps": -10.0,
                           "ref_rejected_logps": -11.0}]
    rows = {r["replaces_pair_id"]: r for r in reps.rows}
    assert rows[11]["accepted"] and rows[11]["gold_chosen"] == 1.0 and rows[11]["margin"] == pytest.approx(0.3)
    free = rcand.choose_replacements(losses.get("simpo"), scored[:1], ["P1"], [11], 1, None, "s", needs_ref=False)
    assert set(free.pairs[0]) == {"prompt", "chosen", "rejected"}  # a reference-free loss: no reference at all
    assert rows[12] == {"round": 1, "replaces_pair_id": 12, "prompt": "P2", "n_candidates": 1, "accepted": False,
                        "reason": "fewer than two distinct candidates"}
    assert not rows[13]["accepted"] and rows[13]["loss"] > best
    conversational = rcand.choose_replacements(loss, scored[:1], ["P1"], [11], 1, None, [{"role": "assistant"}], True)
    assert conversational.pairs[0]["chosen"] == [{"role": "assistant", "content": "a"}]


def test_add_originals_joins_the_dropped_pairs_own_responses_once():
    s = rcand.Scored(["a"], [-1.0], [-2.0], [3])
    pair = {"chosen": "b</s>", "rejected": "a", "policy_chosen": -3.0, "policy_rejected": -4.0, "ref_chosen": -5.0,
            "ref_rejected": -6.0, "len_chosen": 4, "len_rejected": 5}
    out = rcand.add_originals(s, pair, "</s>")
    assert out.texts == ["a", "b"] and out.policy == [-1.0, -3.0] and out.reference == [-2.0, -5.0]
    assert out.lengths == [3, 4]


def test_round_statistics_count_what_rejection_sampling_did():
    reps = rcand.Replacements(pairs=[{"prompt": "p"}], rows=[
        {"accepted": True, "margin": 0.4, "gold_chosen": 1.0, "gold_rejected": 0.0},
        {"accepted": False, "margin": 0.1}])
    st = rcand.round_statistics({"n_dropped": 2, "precision": 0.5}, reps, n_sampled=8, n_distinct=6, n_pairs=10)
    assert st["n_replacements"] == 1 and st["n_rejected"] == 1 and st["n_pairs_next_round"] == 9
    assert st["replacement_mean_margin"] == pytest.approx(0.4) and st["gold_agreement"] == 1.0
    assert st["n_candidates_sampled"] == 8 and st["n_candidates_distinct"] == 6 and st["precision"] == 0.5


def test_filter_only_drops_without_replacing():
    """accept=never (the filter alone, an ablation): no candidate is sampled, the dropped prompts have no pair in the
    next round, the label says so, and n_candidates is not checked."""
    from bench.methods.ropo_full import method as rmethod

    cfg = ropo_options({"accept": "never", "n_candidates": 1})
    assert rf.check_loss(losses.get("ropo"), cfg) == "ROPO (filter only)" != rf.LABEL
    with pytest.raises(ConfigError, match="n_candidates"):
        ropo_options({"n_candidates": 1})
    run = object.__new__(rmethod._Rounds)  # only what _replace reads
    run.cfg, run.ctx, run.prompts, run.base = cfg, None, [f"P{i}" for i in range(10)], list(range(10))
    f = rfilter.filter_pairs(np.arange(10.0), 0.2, np.arange(10) >= 8, 1)
    reps, st = run._replace(0, np.flatnonzero(f.dropped), None, f)
    assert reps.pairs == [] and reps.rows == []
    assert st["n_dropped"] == 2 and st["n_replacements"] == 0 and st["n_rejected"] == 2
    assert st["n_pairs_next_round"] == 8 and st["precision"] == 1.0 and st["gold_agreement"] is None
