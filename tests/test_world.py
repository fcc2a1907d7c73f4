"""The embedded world: determinism, disjoint splits, and the gold reward's documented properties."""
import numpy as np
import pytest

from bench.world import rules as world


def test_corpus_is_determined_by_seed():
    assert world.sft_corpus(50, seed=3) == world.sft_corpus(50, seed=3)
    assert world.sft_corpus(50, seed=3) != world.sft_corpus(50, seed=4)


def test_prompt_splits_are_disjoint_and_cover_everything():
    splits = {s: {p.text for p in world.prompts_for(s)} for s in ("train", "rm", "val", "eval")}
    for a in splits:
        for b in splits:
            assert a == b or not splits[a] & splits[b], (a, b)
    assert sum(map(len, splits.values())) == len(world.all_prompts())
    # held-out goals: no (item, aspect) combination of an eval or val prompt is seen in training, nor shared
    combos = lambda s: {(p.item, p.aspect) for p in world.prompts_for(s)}  # noqa: E731
    assert not combos("train") & combos("eval") and not combos("train") & combos("val")
    assert not combos("val") & combos("eval") and not combos("val") & combos("rm")
    assert {len(combos(s)) for s in ("rm", "val")} == {18} and len(combos("eval")) == 36  # 7.5%, 7.5%, 15% of 240


def test_gold_reward_is_bounded_and_deterministic():
    rng = np.random.default_rng(0)
    prompts = world.all_prompts()
    words = "the price is great awful I love hate . this kettle".split()
    for _ in range(300):
        p = prompts[rng.integers(len(prompts))]
        good = world.sample_response(p, rng)
        junk = " ".join(rng.choice(words, size=rng.integers(0, 30)))
        for r in (good, junk, good + " " + junk):
            v = world.gold_reward(p.text, r)
            assert -1.0 <= v <= 1.0
            assert v == world.gold_reward(p.text, r)
    assert world.gold_reward(prompts[0].text, "") == -1.0


def test_gold_reward_depends_on_the_prompt():
    pos = "Write a positive review of the kettle that mentions the price."
    neg = "Write a negative review of the kettle that mentions the price."
    other_aspect = "Write a positive review of the kettle that mentions the design."
    r = "The price is great. This kettle is lovely."
    assert world.gold_reward(pos, r) == pytest.approx(1.0)
    assert world.gold_reward(neg, r) < 0
    assert world.gold_reward(other_aspect, r) < world.gold_reward(pos, r)
    # naming another item is off topic
    assert world.gold_reward(pos, "The price is great. This toaster is lovely.") < world.gold_reward(pos, r)


def test_gold_reward_does_not_reward_length():
    p = "Write a positive review of the kettle that mentions the price."
    base = "The price is great."
    assert world.gold_reward(p, base + " I bought it last month.") < world.gold_reward(p, base)
    assert world.gold_reward(p, base + " " + base) < world.gold_reward(p, base)  # repetition
    long_good = "The price is great. I love the price. This kettle is superb. Overall it is lovely. I would recommend it."
    assert world.gold_reward(p, long_good) < world.gold_reward(p, base)  # beyond three sentences costs
    # across the SFT corpus, longer responses are not better on average
    corpus = world.sft_corpus(3000, seed=0)
    gold = [world.gold_reward(q, r) for q, r in corpus]
    length = [world.n_words(r) for _, r in corpus]
    assert np.corrcoef(gold, length)[0, 1] <= 0.0


def test_gold_reward_rejects_foreign_prompts():
    with pytest.raises(ValueError, match="not a prompt of the embedded world"):
        world.gold_reward("Tell me a joke.", "Why not.")
