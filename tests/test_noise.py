"""Property tests for the label-noise injectors (noise/). Fast: the whole file runs in well under a minute.

The contract tests run on every injector whose parameter is a rate (exact counts); those set by a scale or by the
data (``gaussian_reward``, ``tie``, ``myopic``, ``natural``) and each new injector's defining property are tested
against the embedded world's gold reward in ``tests/test_noise_models.py``."""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, disable_progress_bars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import noise
from bench.config.compose import CONF_DIR
from bench.core.options import ConfigError

disable_progress_bars()
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = noise.names()
RATED = [n for n in ALL if noise.KIND.lookup(n).RATE_IS_PARAMETER]  # the rate is the parameter: exact counts
NOISY = [n for n in RATED if n != "none"]
AT_MOST_HALF = ("bt_confidence", "position_bias")  # their models cannot flip more than half of the pairs
LABEL_COLUMNS = ("is_flipped", "annotator", "keep", "label_confidence")


def make_pairs(n: int, seed: int = 0, **extra) -> Dataset:
    """Synthetic pairs: random word lengths, gold rewards with chosen >= rejected, and extra columns to carry."""
    rng = np.random.default_rng(seed)
    lc, lr = rng.integers(1, 40, n), rng.integers(1, 40, n)
    gc = rng.normal(size=n)
    gr = gc - np.abs(rng.normal(size=n))
    cols = {
        "prompt": [f"prompt {i}" for i in range(n)],
        "chosen": [" ".join(f"c{i}" for _ in range(m)) for i, m in enumerate(lc)],
        "rejected": [" ".join(f"r{i}" for _ in range(m)) for i, m in enumerate(lr)],
        "pair_id": list(range(n)),
        "gold_chosen": gc.tolist(),
        "gold_rejected": gr.tolist(),
        **extra,
    }
    return Dataset.from_dict(cols)


def inject(name: str, ds: Dataset, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # over-eligible / none-with-a-rate warnings are tested separately
        inj = noise.get(name, **kw)
        return inj, inj(ds)


def mask_of(ds: Dataset) -> np.ndarray:
    return np.asarray(ds["is_flipped"][:], dtype=bool)


# --- the contract every injector keeps -------------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 150), rate=st.floats(0, 1), data_seed=st.integers(0, 10**6), seed=st.integers(0, 2**32))
def test_exact_rate_same_rows_and_swaps(n, rate, data_seed, seed):
    ds = make_pairs(n, data_seed)
    for name in RATED:
        r = min(rate, 0.5) if name in AT_MOST_HALF else rate
        inj, out = inject(name, ds, rate=r, seed=seed)
        m = mask_of(out)
        target = 0.0 if name == "none" else r
        # what the rate counts: flips, or (skip) the pairs skipped, which are then never flipped
        counted = ~np.asarray(out["keep"][:], dtype=bool) if name == "skip" else m
        assert abs(counted.mean() - target) <= 0.5 / n + 1e-12, name
        s = inj.summary(out)
        assert s["n_flipped"] == m.sum() and s["n_pairs"] == n and s["target_rate"] == target
        rate_key = "skipped_rate" if name == "skip" else "realized_rate"
        assert abs(s[rate_key] - target) <= 0.5 / n + 1e-12
        if name == "skip":
            assert not m.any() and s["n_skipped"] == counted.sum() and inj.flip_rate == 0.0
        json.dumps(s)  # flat and JSON-able
        # same rows, same order; responses (and their gold scores) swapped exactly on flipped rows
        assert out["prompt"][:] == ds["prompt"][:] and out["pair_id"][:] == ds["pair_id"][:]
        for a, b in (("chosen", "rejected"), ("gold_chosen", "gold_rejected")):
            oa, ob, ia, ib = out[a][:], out[b][:], ds[a][:], ds[b][:]
            assert [x if f else y for x, y, f in zip(ib, ia, m)] == oa
            assert [x if f else y for x, y, f in zip(ia, ib, m)] == ob
        expected_cols = ds.column_names + ["is_flipped"] + (["annotator"] if name == "annotator_biased" else [])
        assert out.column_names == expected_cols + (["keep"] if name == "skip" else []), name


@FAST
@given(n=st.integers(1, 120), rate=st.floats(0, 0.5), seed=st.integers(0, 2**32))
def test_same_seed_same_mask(n, rate, seed):
    ds = make_pairs(n, 1)
    for name in RATED:
        _, a = inject(name, ds, rate=rate, seed=seed)
        _, b = inject(name, ds, rate=rate, seed=seed)  # a fresh injector: nothing carried over
        for col in LABEL_COLUMNS:
            assert (col in a.column_names) == (col in b.column_names)
            if col in a.column_names:
                assert a[col][:] == b[col][:], (name, col)


@settings(max_examples=8, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**32), min_size=2, max_size=2, unique=True))
def test_different_seed_different_mask(seeds):
    ds = make_pairs(200, 2)  # C(200, 60) subsets: a collision would be a bug, not luck
    # skip and targeted rank pairs by gold: the seed only orders equal golds, and these have none (test_noise_models)
    for name in [n for n in NOISY if n not in ("skip", "targeted")]:
        masks = [mask_of(inject(name, ds, rate=0.3, seed=s)[1]) for s in seeds]
        assert not np.array_equal(*masks), name


def test_mask_depends_on_config_not_on_anything_else():
    ds = make_pairs(300, 3)
    a = mask_of(inject("random_flip", ds, rate=0.2, seed=5)[1])
    np.random.seed(123)  # the global RNG must play no part
    np.random.random(10)
    b = mask_of(inject("random_flip", ds, rate=0.2, seed=5)[1])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", RATED)
def test_rate_zero_changes_nothing(name):
    ds = make_pairs(60, 4)
    _, out = inject(name, ds, rate=0.0, seed=0)
    assert not mask_of(out).any()
    assert all(out["keep"][:]) if "keep" in out.column_names else True
    added = [c for c in LABEL_COLUMNS if c in out.column_names]
    assert out.remove_columns(added).to_dict() == ds.to_dict()


def test_none_ignores_a_rate_with_a_warning():
    ds = make_pairs(50, 5)
    with pytest.warns(UserWarning, match="ignores noise.rate"):
        inj = noise.get("none", rate=0.4, seed=0)
    out = inj(ds)
    s = inj.summary(out)
    assert s["target_rate"] == 0.0 and s["n_flipped"] == 0 and s["requested_rate"] == 0.4


def test_eval_data_untouched():
    train, evald = make_pairs(100, 6), make_pairs(40, 7)
    before, fp = evald.to_dict(), evald._fingerprint
    for name in RATED:
        inject(name, train, rate=0.4, seed=1)
    assert evald.to_dict() == before and evald._fingerprint == fp
    assert "is_flipped" not in train.column_names  # the input itself is never modified either


@pytest.mark.parametrize("name", NOISY)
def test_summary_of_a_reloaded_dataset_matches(name):
    ds = make_pairs(300, 8)
    inj, out = inject(name, ds, rate=0.3, seed=2)
    fresh = out.select(range(len(out)))  # new fingerprint: summary must recompute features from the data
    s1, s2 = inj.summary(out), inj.summary(fresh)
    calibration = {"logit_shift", "pool_natural_rate", "temperature"}
    assert {k for k in s1 if not k.startswith("expected_rate_")} - calibration == set(s2)
    assert all(s1[k] == s2[k] for k in s2)


def test_formatted_input_is_read_as_plain_values():
    ds = make_pairs(50, 8)
    _, plain = inject("length_biased", ds, rate=0.3, seed=2)
    _, formatted = inject("length_biased", ds.with_format("numpy"), rate=0.3, seed=2)
    assert mask_of(plain.with_format(None)).tolist() == mask_of(formatted.with_format(None)).tolist()


def test_save_mask(tmp_path: Path):
    inj, out = inject("annotator_biased", make_pairs(80, 9), rate=0.25, seed=3)
    path = tmp_path / "cell" / "flip_mask.json"
    noise.save_mask(out, path)
    saved = json.loads(path.read_text())
    assert saved["is_flipped"] == out["is_flipped"][:] and saved["annotator"] == out["annotator"][:]
    _, plain = inject("random_flip", make_pairs(10, 9), rate=0.5, seed=3)
    noise.save_mask(plain, path)
    assert set(json.loads(path.read_text())) == {"is_flipped"}


# --- the biased injectors put their flips where their model says -------------------------------------------------
def test_length_biased_concentrates_on_longer_rejected():
    ds = make_pairs(1000, 10)
    eligible = np.array([len(r.split()) > len(c.split()) for c, r in zip(ds["chosen"][:], ds["rejected"][:])])
    share = {}
    for name, kw in (("random_flip", {}), ("length_biased", {}), ("length_biased", {"strength": 10.0})):
        inj, out = inject(name, ds, rate=0.2, seed=0, **kw)
        m = mask_of(out)
        share[(name, kw.get("strength"))] = eligible[m].mean()
        if name == "length_biased":
            s = inj.summary(out)
            assert s["rate_longer_rejected"] > 3 * s["rate_other"]
            assert math.isclose(s["eligible_fraction"], eligible.mean())
    assert abs(share[("random_flip", None)] - eligible.mean()) < 0.1
    assert share[("length_biased", None)] > share[("random_flip", None)] + 0.3
    assert share[("length_biased", 10.0)] >= share[("length_biased", None)]
    # strength 0 is symmetric noise
    _, out = inject("length_biased", ds, rate=0.2, seed=0, strength=0.0)
    assert abs(eligible[mask_of(out)].mean() - eligible.mean()) < 0.1


def test_length_biased_rate_above_eligible_fraction_warns_and_stays_exact():
    ds = make_pairs(400, 11)
    with pytest.warns(UserWarning, match="longer response rejected"):
        inj = noise.get("length_biased", rate=0.8, seed=0)
        out = inj(ds)
    s = inj.summary(out)
    assert s["n_flipped"] == 320 and s["rate_longer_rejected"] > 0.97
    with pytest.raises(ValueError, match="noise.strength"):
        noise.get("length_biased", rate=0.2, seed=0, strength=-1)


def _natural_rate(pool: dict) -> float:
    total = sum(a["share"] for a in pool.values())
    return sum(a["share"] * a["error_rate"] for a in pool.values()) / total


POOL = {
    "r": {"kind": "reliable", "share": 0.5, "error_rate": 0.05},
    "c": {"kind": "careless", "share": 0.3, "error_rate": 0.3},
    "a": {"kind": "adversarial", "share": 0.2, "error_rate": 0.9},
}


def test_annotator_rates_follow_kinds_and_shares():
    n = 4000
    ds = make_pairs(n, 12)
    natural = _natural_rate(POOL)  # 0.295: at this rate every annotator should flip at its own configured rate
    inj, out = inject("annotator_biased", ds, rate=natural, seed=1, annotators=POOL)
    s = inj.summary(out)
    assert abs(s["logit_shift"]) < 1e-6
    for a, entry in POOL.items():
        assert abs(s[f"share_annotator_{a}"] - entry["share"]) <= 1 / n
        assert abs(s[f"rate_annotator_{a}"] - entry["error_rate"]) < 0.05, a
    # away from the natural rate the order of the kinds is kept
    for rate in (0.1, 0.45, 0.7):
        inj, out = inject("annotator_biased", ds, rate=rate, seed=1, annotators=POOL)
        s = inj.summary(out)
        assert s["rate_annotator_r"] < s["rate_annotator_c"] < s["rate_annotator_a"], rate
        assert s["rate_kind_reliable"] == s["rate_annotator_r"]


def test_biased_annotators_flip_where_their_feature_favours_rejected():
    n = 3000
    rng = np.random.default_rng(0)
    topic = rng.random(n) < 0.3
    ds = make_pairs(n, 13)
    ds = ds.map(lambda row, i: {"rejected": row["rejected"] + (" Python rocks" if topic[i] else "")},
                with_indices=True)
    pool = {
        "lengthy": {"kind": "biased", "share": 0.5, "feature": "length"},
        "pythonista": {"kind": "biased", "share": 0.5, "feature": "topic_word", "topic_word": "python"},
    }
    inj, out = inject("annotator_biased", ds, rate=0.3, seed=0, annotators=pool)
    s = inj.summary(out)
    ann, m = np.asarray(out["annotator"][:]), mask_of(out)
    for a in pool:
        assert s[f"rate_annotator_{a}_targeted"] > 3 * m[ann == a].mean() / 2
    py = ann == "pythonista"
    assert m[py & topic].mean() > 4 * m[py & ~topic].mean()


def test_real_annotator_ids_are_used():
    n = 600
    ids = [f"worker{i % 6}" for i in range(n)]
    ds = make_pairs(n, 14, annotator=ids)
    profiles = {"worker0": "a", "worker1": "a", "worker2": "r"}
    inj, out = inject("annotator_biased", ds, rate=0.3, seed=0, annotators=POOL,
                      annotator_column="annotator", annotator_profiles=profiles)
    assert out["annotator"][:] == ids
    s = inj.summary(out)
    assert {f"rate_annotator_worker{i}" for i in range(6)} <= set(s)
    assert s["rate_annotator_worker0"] > s["rate_annotator_worker2"]
    with pytest.raises(ValueError, match="annotator_column=annotator"):
        inject("annotator_biased", ds, rate=0.3, seed=0)
    with pytest.raises(ValueError, match="pool annotator"):
        noise.get("annotator_biased", rate=0.3, seed=0, annotators=POOL, annotator_profiles={"w": "carless"})
    with pytest.raises(ValueError, match="noise.annotators.x.kind.*careless"):
        noise.get("annotator_biased", rate=0.3, seed=0, annotators={"x": {"kind": "carless", "share": 1}})


def test_bt_confidence_flips_near_ties_more():
    ds = make_pairs(2000, 15)
    gap = np.asarray(ds["gold_chosen"][:]) - np.asarray(ds["gold_rejected"][:])
    temps = []
    for rate in (0.1, 0.3, 0.45):
        inj, out = inject("bt_confidence", ds, rate=rate, seed=0)
        m, s = mask_of(out), inj.summary(out)
        near, clear = gap <= np.quantile(gap, 0.25), gap >= np.quantile(gap, 0.75)
        assert m[near].mean() > m[clear].mean() + 0.05, rate
        assert s["rate_near_ties"] > s["rate_clear"] and s["mean_abs_gap_flipped"] < s["mean_abs_gap_kept"]
        temps.append(s["temperature"])
    assert temps == sorted(temps)  # a noisier teacher is a hotter one


def test_bt_confidence_gold_sources_and_limits():
    ds = make_pairs(300, 16)
    d = ds.to_dict()
    table = {(p, c): g for p, c, g in zip(d["prompt"], d["chosen"], d["gold_chosen"])}
    table |= {(p, r): g for p, r, g in zip(d["prompt"], d["rejected"], d["gold_rejected"])}
    text_only = ds.remove_columns(["gold_chosen", "gold_rejected"])
    with pytest.raises(ValueError, match="gold_chosen.*reward_model"):
        inject("bt_confidence", text_only, rate=0.2, seed=0)
    # a gold_reward callable giving the same scores gives the same mask as the columns
    by_cols = mask_of(inject("bt_confidence", ds, rate=0.2, seed=0)[1])
    inj, out = inject("bt_confidence", text_only, rate=0.2, seed=0, gold_reward=lambda p, r: table[(p, r)])
    assert np.array_equal(by_cols, mask_of(out)) and inj.summary(out)["gold_source"] == "gold_reward"
    inj, out = inject("bt_confidence", text_only, rate=0.2, seed=0, reward_model=lambda p, r: float(len(r)))
    assert inj.summary(out)["gold_source"] == "reward_model" and mask_of(out).sum() == 60
    with pytest.raises(ConfigError, match="callable"):
        noise.get("bt_confidence", rate=0.2, seed=0, reward_model="some/hub-model")
    with pytest.raises(ValueError, match=r"noise.rate=0.6 is not reachable"):
        noise.get("bt_confidence", rate=0.6, seed=0)
    _, out = inject("bt_confidence", ds, rate=0.5, seed=0)  # the T = inf coin: still exact
    assert mask_of(out).sum() == 150


# --- errors say what is wrong and where --------------------------------------------------------------------------
def test_unknown_name_did_you_mean():
    with pytest.raises(ConfigError, match="random_flip"):
        noise.get("random_flp", rate=0.2, seed=0)
    with pytest.raises(ConfigError, match="Did you mean 'strength'"):
        noise.get("length_biased", rate=0.2, seed=0, strenght=2.0)


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.2", True, None])
def test_bad_rate_names_noise_rate(rate):
    with pytest.raises(ValueError, match=r"noise\.rate"):
        noise.get("random_flip", rate=rate, seed=0)


def test_missing_seed_and_bad_seed():
    with pytest.raises(ValueError, match=r"noise\.seed is required"):
        noise.get("random_flip", rate=0.2)
    with pytest.raises(ValueError, match=r"noise\.seed"):
        noise.get("random_flip", rate=0.2, seed=-3)


def test_missing_column_is_named():
    ds = make_pairs(10).remove_columns(["rejected"])
    with pytest.raises(ValueError, match="missing column.*'rejected'"):
        noise.get("random_flip", rate=0.2, seed=0)(ds)


@pytest.mark.parametrize("field,value", [("chosen", ""), ("rejected", "   ")])
def test_empty_response_names_field_and_row(field, value):
    ds = make_pairs(10).map(lambda row, i: {field: value} if i == 3 else {}, with_indices=True)
    with pytest.raises(ValueError, match=rf"empty '{field}' response at row 3"):
        noise.get("random_flip", rate=0.2, seed=0)(ds)


def test_noising_twice_is_refused():
    _, out = inject("random_flip", make_pairs(10), rate=0.2, seed=0)
    with pytest.raises(ValueError, match="already"):
        noise.get("random_flip", rate=0.2, seed=0)(out)


# --- configs -----------------------------------------------------------------------------------------------------
def test_every_yaml_is_registered_and_every_name_has_a_yaml():
    files = {p.stem: p for p in (CONF_DIR / "noise").glob("*.yaml")}
    assert set(files) == set(noise.names())
    for name, path in files.items():
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        factory = noise.KIND.lookup(name)
        # a rate where the rate is the parameter; null where a scale or the data sets the noise
        rate_ok = 0 <= raw["rate"] <= 1 if factory.RATE_IS_PARAMETER else raw["rate"] is None
        assert raw["name"] == name and raw["seed"] == "${seed}" and rate_ok, name
        assert set(raw) - {"name", "rate", "seed"} == {f.name for f in dataclasses.fields(factory.Options)} - {
            "rate", "seed"}, name
        # composes inside a bigger config with a top-level seed, and the composed values build the injector
        full = OmegaConf.create({"seed": 7, "noise": OmegaConf.load(path)})
        node = dict(full.noise)  # DictConfig values (e.g. the annotator pool) as Hydra would hand them over
        if name == "natural":  # the one value no YAML can know: the data file's annotator columns
            node["annotators"] = ["a1", "a2"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inj = noise.get(name, **node)
        assert inj.seed == 7


# --- the sampler under every biased injector ----------------------------------------------------------------------
def test_sample_exact_draws_k_with_the_given_inclusion_probabilities():
    from noise.base import calibrate_shift, sample_exact, sigmoid

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=30)
    k = 9
    probs = sigmoid(logits + calibrate_shift(logits, k))
    assert math.isclose(probs.sum(), k, rel_tol=1e-9)
    draws = np.array([sample_exact(rng, probs, k) for _ in range(4000)])
    assert (draws.sum(axis=1) == k).all()
    assert np.abs(draws.mean(axis=0) - probs).max() < 0.035  # 4000 draws: SE <= 0.008


def test_conversational_rows_are_flipped_whole_and_measured_by_their_text():
    from datasets import Dataset

    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": [{"role": "assistant", "content": "short"}],
            "rejected": [{"role": "assistant", "content": "a much longer answer " * (i + 1)}],
        }
        for i in range(10)
    ]
    ds = Dataset.from_list(rows)
    for name in ("random_flip", "length_biased"):
        out = noise.get(name, rate=0.3, seed=0)(ds)
        assert sum(out["is_flipped"]) == 3
        for before, after, flipped in zip(rows, out, out["is_flipped"]):
            assert after["chosen"] == (before["rejected"] if flipped else before["chosen"])
