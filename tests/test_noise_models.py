"""The literature's other noise models (issue 27), each checked against the embedded world's gold reward.

Pairs here are the world's own: its prompts, responses drawn by its response sampler, and ``gold_chosen`` /
``gold_rejected`` from ``bench.world.rules.gold_reward``, labelled by gold as the world labels its training pairs
(ties dropped). Each injector's defining property is tested against that gold; the contract shared with the other
injectors (exact counts, seeded masks, same rows) is in ``tests/test_noise.py``.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from datasets import Dataset, disable_progress_bars

import noise
from bench.core.options import ConfigError
from bench.world import rules

disable_progress_bars()


def world_pairs(n: int, seed: int = 0) -> Dataset:
    """``n`` world pairs labelled by gold (chosen = the higher gold reward; equal gold dropped)."""
    rng = np.random.default_rng(seed)
    prompts = rules.prompts_for("train")
    rows = []
    while len(rows) < n:
        p = prompts[rng.integers(len(prompts))]
        a, b = rules.sample_response(p, rng), rules.sample_response(p, rng)
        ga, gb = rules.gold_reward(p, a), rules.gold_reward(p, b)
        if ga == gb:
            continue
        c, r, gc, gr = (a, b, ga, gb) if ga > gb else (b, a, gb, ga)
        rows.append({"pair_id": len(rows), "prompt": p.text, "chosen": c, "rejected": r, "gold_chosen": gc,
                     "gold_rejected": gr})
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def world() -> Dataset:
    return world_pairs(1500)


def gap(ds: Dataset) -> np.ndarray:
    return np.asarray(ds["gold_chosen"][:]) - np.asarray(ds["gold_rejected"][:])


def col(ds: Dataset, name: str) -> np.ndarray:
    return np.asarray(ds[name][:])


def run(name: str, ds: Dataset, **kw):
    inj = noise.get(name, **kw)
    out = inj(ds)
    return inj, out, inj.summary(out)


# --- errors: one line naming the field and what is valid ----------------------------------------------------------
@pytest.mark.parametrize("name,kw,match", [
    ("gaussian_reward", {"rate": 0.2}, r"noise.rate=0.2: noise=gaussian_reward is set by its scale noise.sigma.*valid: null"),
    ("tie", {"rate": 0.2}, r"noise.rate=0.2: .*noise.threshold.*valid: null"),
    ("myopic", {"rate": 0.2}, r"noise.rate=0.2: .*noise.read.*valid: null"),
    ("natural", {"rate": 0.2, "annotators": ["a"]}, r"noise.rate=0.2: noise=natural is set by the data.*valid: null"),
    ("gaussian_reward", {"sigma": -1}, r"noise.sigma=-1; valid: a finite number >= 0"),
    ("tie", {"threshold": "wide"}, r"noise.threshold='wide'; valid: a finite number >= 0"),
    ("myopic", {"read": 1.5}, r"noise.read=1.5; valid: an integer >= 1"),
    ("myopic", {"unit": "paragraphs"}, r"noise.unit='paragraphs'; valid: sentences, words"),
    ("myopic", {"gold_reward": None}, r"noise.gold_reward=null: .*valid: world"),
    ("myopic", {"gold_reward": "some/rm"}, r"noise.gold_reward='some/rm'; valid: null, 'world'"),
    ("targeted", {"rate": 0.2, "gold_reward": "world"}, r"noise.gold_reward='world'; valid: null or a Python callable"),
    ("position_bias", {"rate": 0.6}, r"noise.rate=0.6 is not reachable by position_bias.*valid: a rate in \[0, 0.5\]"),
    ("natural", {"annotators": None}, r"noise.annotators=None; valid: a non-empty list of distinct column names"),
    ("natural", {"annotators": ["a", "a"]}, r"noise.annotators=\['a', 'a'\]; valid"),
    ("natural", {"annotators": ["a"], "label": "mode"}, r"noise.label='mode'; valid: majority, one, first"),
])
def test_bad_values_are_one_line_config_errors(name, kw, match):
    with pytest.raises(ConfigError, match=match) as err:
        noise.get(name, seed=0, **kw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["skip", "targeted", "position_bias"])
def test_rate_injectors_need_a_rate(name):
    with pytest.raises(ValueError, match=r"noise.rate is required"):
        noise.get(name, seed=0, rate=None)


def test_injectors_without_gold_say_how_to_give_it(world):
    text_only = world.remove_columns(["gold_chosen", "gold_rejected"])
    for name, kw in (("skip", {"rate": 0.2}), ("targeted", {"rate": 0.2}), ("position_bias", {"rate": 0.2}),
                     ("gaussian_reward", {}), ("tie", {})):
        with pytest.raises(ValueError, match=rf"{name} needs gold rewards.*gold_chosen.*gold_reward=callable"):
            noise.get(name, seed=0, **kw)(text_only)
    # a callable gold_reward that gives the world's gold gives the columns' masks
    inj = noise.get("targeted", rate=0.3, seed=4, gold_reward=lambda p, r: rules.gold_reward(p, r))
    by_fn = col(inj(text_only), "is_flipped")
    assert np.array_equal(by_fn, col(noise.get("targeted", rate=0.3, seed=4)(world), "is_flipped"))


# --- skip ----------------------------------------------------------------------------------------------------------
def test_skip_removes_the_pairs_whose_best_response_is_worst(world):
    best = np.maximum(col(world, "gold_chosen"), col(world, "gold_rejected"))
    inj, out, s = run("skip", world, rate=0.25, seed=0)
    keep = col(out, "keep").astype(bool)
    assert (~keep).sum() == round(0.25 * len(world)) == s["n_skipped"] and s["skipped_rate"] == (~keep).mean()
    assert not col(out, "is_flipped").any() and s["n_flipped"] == 0 and inj.flip_rate == 0.0
    assert best[~keep].max() <= best[keep].min()  # nothing kept is worse than anything skipped
    assert s["skip_threshold"] == best[~keep].max() and s["mean_best_gold_skipped"] < s["mean_best_gold_kept"]
    assert out.remove_columns(["keep", "is_flipped"]).to_dict() == world.to_dict()  # the same rows, unchanged
    # the world's gold has many equal values: the seed picks among those at the threshold, and fixes the pick
    at_cut = best == s["skip_threshold"]
    assert keep[at_cut].any() and (~keep[at_cut]).any()
    again = col(noise.get("skip", rate=0.25, seed=0)(world), "keep")
    other = col(noise.get("skip", rate=0.25, seed=1)(world), "keep")
    assert np.array_equal(again, keep) and not np.array_equal(other, keep)
    assert np.array_equal(~other.astype(bool) & ~at_cut, ~keep & ~at_cut)  # below the threshold: the same pairs
    rows, used = noise.training_rows(out, soft_labels=True)
    assert np.array_equal(rows, keep) and used["n_trained_pairs"] == keep.sum()


# --- tie -----------------------------------------------------------------------------------------------------------
def test_ties_are_the_near_ties_and_only_soft_losses_train_on_them(world):
    g = gap(world)
    counts = []
    for threshold in (0.0, 0.175, 0.325):
        inj, out, s = run("tie", world, rate=None, seed=0, threshold=threshold)
        conf = col(out, "label_confidence")
        tied = conf == 0.5
        assert np.array_equal(tied, np.abs(g) < threshold)  # exactly the pairs gold can barely tell apart
        assert set(np.unique(conf)) <= {0.5, 1.0} and not col(out, "is_flipped").any() and inj.flip_rate == 0.0
        assert s["n_tied"] == tied.sum() and s["tied_rate"] == tied.mean() and s["target_rate"] is None
        assert s["realized_rate"] == 0.0 and s["threshold"] == threshold
        if tied.any():
            assert s["max_abs_gap_tied"] < threshold <= s["min_abs_gap_untied"]
        counts.append(tied.sum())
        soft_rows, soft = noise.training_rows(out, soft_labels=True)
        hard_rows, hard = noise.training_rows(out, soft_labels=False)
        assert soft_rows.all() and soft["n_tied_trained"] == tied.sum() and soft["tied_pairs"].startswith("soft")
        assert np.array_equal(hard_rows, ~tied) and hard["n_tied_trained"] == 0 and hard["tied_pairs"] == "dropped"
    assert counts[0] == 0 < counts[1] < counts[2]


# --- myopic --------------------------------------------------------------------------------------------------------
def first_sentences(text: str, k: int) -> str:
    return " ".join(rules.sentences(text)[:k])  # the world's own sentence split, not the injector's


@pytest.mark.parametrize("read", [1, 2])
def test_myopic_labels_agree_with_the_gold_of_what_it_read(world, read):
    inj, out, s = run("myopic", world, rate=None, seed=0, read=read)
    flipped = col(out, "is_flipped")
    prompts, chosen, rejected = world["prompt"][:], world["chosen"][:], world["rejected"][:]
    seen = np.array([rules.gold_reward(p, first_sentences(c, read)) - rules.gold_reward(p, first_sentences(r, read))
                     for p, c, r in zip(prompts, chosen, rejected)])
    # after the noise, the chosen response is the one whose first `read` sentences score higher (where they differ)
    new_chosen = np.where(flipped, rejected, chosen)
    new_rejected = np.where(flipped, chosen, rejected)
    after = np.array([rules.gold_reward(p, first_sentences(c, read)) - rules.gold_reward(p, first_sentences(r, read))
                      for p, c, r in zip(prompts, new_chosen, new_rejected)])
    assert (after[seen != 0] > 0).all()
    tie = seen == 0
    assert tie.sum() > 100 and abs(flipped[tie].mean() - 0.5) < 4 * 0.5 / np.sqrt(tie.sum())  # guessed: a fair coin
    assert s["rate_read_disagrees"] == (seen < 0).mean() and s["rate_read_ties"] == tie.mean()
    assert s["realized_rate"] == flipped.mean() == s["realized_rate_vs_gold"]  # world labels are gold labels
    assert s["target_rate"] is None and s["read"] == read
    again = col(noise.get("myopic", rate=None, seed=0, read=read)(world), "is_flipped")
    other = col(noise.get("myopic", rate=None, seed=1, read=read)(world), "is_flipped")
    assert np.array_equal(again, flipped) and not np.array_equal(other, flipped)
    assert np.array_equal(other[~tie], flipped[~tie])  # the seed only decides the guesses


def test_myopic_reads_more_errs_less_and_reads_words_too(world):
    rates = [run("myopic", world, rate=None, seed=0, read=k)[2]["realized_rate"] for k in (1, 2, 3, 8)]
    assert rates[0] > rates[1] > rates[2] > rates[3] == 0.0  # 8 sentences: every world response read whole
    inj, out, s = run("myopic", world.select(range(300)), rate=None, seed=0, read=6, unit="words")
    flipped = col(out, "is_flipped")
    for p, c, r, f in zip(world["prompt"][:300], world["chosen"][:300], world["rejected"][:300], flipped):
        gc, gr = rules.gold_reward(p, " ".join(c.split()[:6])), rules.gold_reward(p, " ".join(r.split()[:6]))
        if gc != gr:
            assert f == (gr > gc)
    # another data set: a callable gold reward scores the first part
    plain = Dataset.from_dict({"prompt": ["q", "q"], "chosen": ["bad. good good good.", "good good."],
                               "rejected": ["good. bad bad.", "good."]})
    words = lambda p, r: float(r.count("good"))  # noqa: E731
    out = noise.get("myopic", rate=None, seed=0, read=1, gold_reward=words)(plain)
    # read whole, chosen is better in both; read to its first sentence, only in the second
    assert col(out, "is_flipped").tolist() == [True, False]
    with pytest.raises(ConfigError, match="scores the embedded world's prompts only"):
        noise.get("myopic", rate=None, seed=0, gold_reward="world")(plain)


# --- gaussian_reward -----------------------------------------------------------------------------------------------
def test_gaussian_reward_flips_near_ties_at_a_rate_set_by_sigma(world):
    g = gap(world)
    n = len(world)
    realized = []
    for sigma in (0.0, 0.05, 0.3, 1.0):
        inj, out, s = run("gaussian_reward", world, rate=None, seed=0, sigma=sigma)
        m = col(out, "is_flipped")
        realized.append(m.mean())
        assert s["sigma"] == sigma and s["target_rate"] is None and s["realized_rate"] == m.mean()
        assert s["realized_rate_vs_gold"] == m.mean()
        p = s["expected_rate"]
        assert abs(m.mean() - p) <= 4 * np.sqrt(max(p * (1 - p), 1e-9) / n) + 1e-12, sigma
        if sigma == 0.05:
            assert not m[g > 10 * sigma].any()  # ten noise scales apart: never flipped
        if sigma == 0.3:
            near, clear = np.abs(g) <= np.quantile(np.abs(g), 0.25), np.abs(g) >= np.quantile(np.abs(g), 0.75)
            assert m[near].mean() > 3 * m[clear].mean() and s["mean_abs_gap_flipped"] < s["mean_abs_gap_kept"]
    assert realized[0] == 0.0 < realized[1] < realized[2] < realized[3] < 0.5
    same = [col(noise.get("gaussian_reward", rate=None, seed=s, sigma=0.3)(world), "is_flipped") for s in (3, 3, 4)]
    assert np.array_equal(same[0], same[1]) and not np.array_equal(same[0], same[2])


# --- targeted ------------------------------------------------------------------------------------------------------
def test_targeted_flips_the_largest_gold_margins_first(world):
    g = gap(world)
    inj, out, s = run("targeted", world, rate=0.2, seed=0)
    m = col(out, "is_flipped")
    assert m.sum() == round(0.2 * len(world))
    assert g[m].min() >= g[~m].max() and s["min_gap_flipped"] == g[m].min() and s["max_gap_kept"] == g[~m].max()
    _, bt, bts = run("bt_confidence", world, rate=0.2, seed=0)  # the opposite: near-ties first
    assert s["mean_abs_gap_flipped"] > s["mean_abs_gap_kept"] and bts["mean_abs_gap_flipped"] < bts["mean_abs_gap_kept"]
    assert s["rate_clear"] > 0.5 and s["rate_near_ties"] == 0.0
    # equal margins at the cut: the seed chooses among them (and fixes the choice); the margins flipped are the same
    other = col(noise.get("targeted", rate=0.2, seed=1)(world), "is_flipped")
    assert not np.array_equal(other, m) and sorted(g[other]) == sorted(g[m])
    for rate in (0.05, 0.4):  # more flips only add smaller margins
        bigger = col(noise.get("targeted", rate=rate, seed=0)(world), "is_flipped")
        assert g[bigger].min() >= g[~bigger].max()


# --- position_bias -------------------------------------------------------------------------------------------------
def test_position_bias_flips_only_what_was_shown_first_and_mostly_near_ties(world):
    g = np.abs(gap(world))
    n = len(world)
    inj, out, s = run("position_bias", world, rate=0.2, seed=0)
    m = col(out, "is_flipped")
    first = inj.presentation_order(n)
    assert first.sum() == (n + 1) // 2 and m.sum() == round(0.2 * n)
    assert not m[~first].any() and s["rate_chosen_shown_first"] == 0.0  # shown first and rejected, or never
    assert s["rate_rejected_shown_first"] == m[first].mean() and s["share_rejected_shown_first"] == first.mean()
    near, clear = first & (g <= np.quantile(g, 0.25)), first & (g >= np.quantile(g, 0.75))
    assert m[near].mean() > 3 * m[clear].mean()
    # the order is seeded: the same seed, the same order and mask; another seed, another order, the flips follow it
    inj1, out1, _ = run("position_bias", world, rate=0.2, seed=1)
    first1, m1 = inj1.presentation_order(n), col(out1, "is_flipped")
    assert np.array_equal(noise.get("position_bias", rate=0.2, seed=0).presentation_order(n), first)
    assert not np.array_equal(first1, first) and not m1[~first1].any()
    # nothing but the order and the gold margin counts: other texts (other lengths, other words) give the same mask
    reworded = world.map(lambda row: {"chosen": row["chosen"] + " It arrived on a Tuesday." * 3,
                                      "rejected": "Short."})
    assert np.array_equal(col(noise.get("position_bias", rate=0.2, seed=0)(reworded), "is_flipped"), m)
    # at rate 0.5 every pair shown rejected-first is flipped
    half = col(noise.get("position_bias", rate=0.5, seed=0)(world.select(range(n - 1))), "is_flipped")
    assert np.array_equal(half, inj.presentation_order(n - 1))


# --- the summaries of scale injectors survive a reload --------------------------------------------------------------
@pytest.mark.parametrize("name,kw", [("gaussian_reward", {}), ("tie", {}), ("myopic", {}),
                                     ("skip", {"rate": 0.3}), ("position_bias", {"rate": 0.3})])
def test_summary_of_a_reloaded_dataset_matches(world, name, kw):
    small = world.select(range(300))
    inj, out, s1 = run(name, small, seed=2, **({"rate": None} | kw))
    s2 = inj.summary(out.select(range(len(out))))  # new fingerprint: recomputed from the data and label columns
    assert set(s1) - {"temperature"} == set(s2) and all(s1[k] == s2[k] for k in s2)
    json.dumps(s1)


def test_save_mask_writes_keep_and_label_confidence(tmp_path, world):
    for name, kw, key in (("skip", {"rate": 0.3}, "keep"), ("tie", {"rate": None}, "label_confidence")):
        out = noise.get(name, seed=0, **kw)(world.select(range(50)))
        noise.save_mask(out, tmp_path / f"{name}.json")
        saved = json.loads((tmp_path / f"{name}.json").read_text())
        assert set(saved) == {"is_flipped", key} and saved[key] == out[key][:]


def test_noising_a_noised_dataset_is_refused(world):
    out = noise.get("skip", rate=0.2, seed=0)(world.select(range(20)))
    with pytest.raises(ValueError, match="already has a 'keep' column"):
        noise.get("random_flip", rate=0.2, seed=0)(out.remove_columns("is_flipped"))


# --- natural: labels from annotator columns of a data file ----------------------------------------------------------
VOTE_STYLES = {"a1": (True, False), "a2": (1, 0), "a3": ("chosen", "rejected"), "a4": (1, 0)}


@pytest.fixture(scope="module")
def votes_file(tmp_path_factory):
    """200 pairs, four annotators who prefer the file's chosen response 90/80/70/60% of the time, in three encodings;
    a4 labels 70% of the pairs (null elsewhere)."""
    rng = np.random.default_rng(27)
    rows = []
    for i in range(200):
        row = {"prompt": f"Question {i}: which answer is better?", "chosen": f"A careful answer number {i}.",
               "rejected": f"A sloppy answer number {i}."}
        for a, p in zip(VOTE_STYLES, (0.9, 0.8, 0.7, 0.6)):
            right = rng.random() < p
            row[a] = None if a == "a4" and rng.random() < 0.3 else VOTE_STYLES[a][0 if right else 1]
        rows.append(row)
    path = tmp_path_factory.mktemp("natural") / "votes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def load_votes(path, label="majority", seed=0):
    """The training split of the file as ``data=hf noise=natural`` loads it, and the cell's injector."""
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.data import load

    cfg = compose(["data=hf", f"data.path={path}", "model=local", "model.path=unused", "noise=natural",
                   "noise.annotators=[a1,a2,a3,a4]", f"noise.label={label}", f"seed={seed}"])
    parts = build_parts(cfg)
    return load(parts.data, parts.model, "unused", columns=parts.injector.data_columns).train, parts.injector


def counted(train, rows_by_prompt):
    """Independent counting of the file's votes for the training rows: (votes for chosen, for rejected, first)."""
    fc, fr, first = [], [], []
    for p in train["prompt"][:]:
        vs = [None if rows_by_prompt[p][a] is None else rows_by_prompt[p][a] == VOTE_STYLES[a][0] for a in VOTE_STYLES]
        fc.append(sum(v is True for v in vs))
        fr.append(sum(v is False for v in vs))
        first.append(next(v for v in vs if v is not None))
    return np.array(fc), np.array(fr), np.array(first)


def test_natural_labels_come_from_the_annotators(votes_file):
    path, rows = votes_file
    by_prompt = {r["prompt"]: r for r in rows}
    train, inj = load_votes(path, "majority")
    assert set(VOTE_STYLES) <= set(train.column_names) and inj.target_rate is None and inj.flip_rate is None
    fc, fr, first = counted(train, by_prompt)
    out = inj(train)
    s = inj.summary(out)
    flipped, conf = col(out, "is_flipped"), col(out, "label_confidence")
    assert np.array_equal(flipped, fr > fc) and np.allclose(conf, np.maximum(fc, fr) / (fc + fr))
    split = fc == fr
    assert split.any() and (conf[split] == 0.5).all() and s["n_tied"] == split.sum()
    v = fc + fr
    assert np.isclose(s["disagreement_rate"], np.mean(fc * fr / (v * (v - 1) / 2)))  # every pair has >= 2 votes here
    assert s["unanimous_rate"] == np.mean((fc == 0) | (fr == 0)) and s["split_vote_rate"] == split.mean()
    assert s["realized_rate"] == flipped.mean() and s["mean_votes_per_pair"] == v.mean()
    assert s["coverage_annotator_a1"] == 1.0 and 0.5 < s["coverage_annotator_a4"] < 0.9
    assert s["rate_annotator_a1"] < s["rate_annotator_a4"]  # a1 agrees with the file's labels the most
    assert np.array_equal(noise.training_rows(out, soft_labels=False)[0], ~split)  # split votes are ties

    train, inj = load_votes(path, "first")
    out = inj(train)
    assert np.array_equal(col(out, "is_flipped"), ~first) and "label_confidence" not in out.column_names

    train, inj = load_votes(path, "one", seed=0)
    a, b = inj(train), load_votes(path, "one", seed=0)[1](train)
    c = load_votes(path, "one", seed=5)[1](train)
    fa, fc_ = col(a, "is_flipped"), col(c, "is_flipped")
    assert np.array_equal(fa, col(b, "is_flipped")) and not np.array_equal(fa, fc_)  # a seed fixes the draw
    assert not fa[fr == 0].any() and fa[fc == 0].all()  # whoever is drawn, a unanimous pair keeps its vote


def test_natural_errors_name_the_column_and_row(votes_file):
    path, rows = votes_file
    train, inj = load_votes(path)
    with pytest.raises(ConfigError, match=r"noise.annotators: the pairs have no column 'a2'"):
        inj(train.remove_columns("a2"))
    bad = train.remove_columns("a3").add_column("a3", ["maybe"] + ["chosen"] * (len(train) - 1))
    with pytest.raises(ConfigError, match=r"column 'a3' row 0 holds 'maybe'; valid: true/1/'chosen'"):
        inj(bad)
    nobody = Dataset.from_dict({"prompt": ["q"], "chosen": ["x"], "rejected": ["y"], "a1": [None], "a2": [None]})
    with pytest.raises(ConfigError, match=r"nobody labelled the pair at row 0"):
        noise.get("natural", rate=None, seed=0, annotators=["a1", "a2"])(nobody)


# --- what the cell does with skipped and tied pairs ------------------------------------------------------------------
def test_the_cell_trains_without_skipped_pairs_and_without_ties_unless_the_loss_takes_soft_labels(world):
    from bench import losses
    from bench.cell import extras, noising
    from bench.training.trainer import EXTRA_COLUMNS

    small = world.select(range(200))
    skipped = noise.get("skip", rate=0.25, seed=0)(small)
    trained, used, key = noising.training_pairs(skipped, losses.get("dpo"))
    assert len(trained) == 150 == used["n_trained_pairs"] and all(trained["keep"][:]) and key is not None
    other = noising.training_pairs(noise.get("skip", rate=0.25, seed=1)(small), losses.get("dpo"))[2]
    assert other != key  # another subset, another reference-cache key
    flipped = noise.get("random_flip", rate=0.25, seed=0)(small)
    assert noising.training_pairs(flipped, losses.get("dpo"))[2] is None  # every pair: the shared entry

    tied = noise.get("tie", rate=None, seed=0, threshold=0.325)(small)
    n_tied = int((col(tied, "label_confidence") == 0.5).sum())
    dpo, cdpo = losses.get("dpo"), losses.get("cdpo")
    trained, used, key = noising.training_pairs(tied, dpo)
    assert len(trained) == 200 - n_tied and used["tied_pairs"] == "dropped" and "label_confidence" not in \
        extras.columns(dpo, None)
    assert not cdpo.uses_extras and "label_confidence" not in extras.columns(cdpo, None)  # until the data has ties
    trained, used, key = noising.training_pairs(tied, cdpo)
    assert len(trained) == 200 and key is None and used["n_tied_trained"] == n_tied and cdpo.uses_extras
    assert "label_confidence" in extras.columns(cdpo, None) and "label_confidence" in EXTRA_COLUMNS


def test_cdpo_takes_a_per_pair_eps_from_the_label_confidence():
    from bench import losses

    loss = losses.get("cdpo", eps=0.1, beta=1.0)
    z = torch.linspace(-3, 3, 7, dtype=torch.float64)
    plain = loss.loss_of_margin(z)
    sure = loss.loss_of_margin(z, {"label_confidence": torch.ones(7, dtype=torch.float64)})
    assert torch.allclose(plain, sure)  # confidence 1: plain cDPO
    zz = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    tie = loss.loss_of_margin(zz, {"label_confidence": torch.full((5,), 0.5, dtype=torch.float64)})
    (grad,) = torch.autograd.grad(tie.sum(), zz)
    assert torch.allclose(grad, torch.zeros(5, dtype=torch.float64))  # a tie's optimum is a margin of 0
    c = torch.full((7,), 0.75, dtype=torch.float64)
    eps = (1 - 0.75) + 0.1 * (2 * 0.75 - 1)  # right with prob. 0.75, then flipped at rate 0.1
    expected = -(1 - eps) * torch.nn.functional.logsigmoid(z) - eps * torch.nn.functional.logsigmoid(-z)
    assert torch.allclose(loss.loss_of_margin(z, {"label_confidence": c}), expected)
    loss.read_label_confidence(True)  # as the cell does: the trainer then hands it the batch's extras
    args = (z, torch.zeros(7, dtype=torch.float64), torch.zeros(7, dtype=torch.float64),
            torch.zeros(7, dtype=torch.float64))
    assert torch.allclose(loss(*args, extras={"label_confidence": c}), expected)


# --- experiment=injectors ------------------------------------------------------------------------------------------
def test_experiment_injectors_covers_every_injector_at_two_strengths():
    from omegaconf import OmegaConf

    from bench.cell.parts import build_parts
    from bench.config.compose import CONF_DIR, compose

    raw = OmegaConf.load(CONF_DIR / "experiment" / "injectors.yaml")
    strengths: dict[str, set] = {}
    for condition in raw.hydra.sweeper.conditions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inj = build_parts(compose(["experiment=injectors", *condition.split()])).injector
        scale = inj.rate if inj.rate is not None else getattr(inj, inj.SCALE)
        strengths.setdefault(inj.name, set()).add(scale)
    assert set(strengths) == set(noise.names()) - {"none", "natural"}  # natural needs annotator votes (data=hf)
    assert all(len(v) == 2 for v in strengths.values()), strengths
