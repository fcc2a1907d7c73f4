"""The embedded world: product-review instructions whose gold reward is known exactly.

A prompt asks for a review of an item with a required sentiment and a required aspect, for example
"Write a positive review of the kettle that mentions the price." A response is a few short sentences. The world
draws responses of varying quality (right or wrong sentiment, aspect mentioned or not, filler, repetition) to
train the tiny reference policy; preference pairs are then sampled from that policy and labelled by the gold
reward below. Everything is generated from a seed, offline, in well under a second.

Gold reward r*(prompt, response), bounded in [-1, 1], deterministic, prompt-dependent, not rewarding length:

    per sentence s_i (split on ".", "!"):
        q_i = -1  if the sentence is not a well-formed world sentence (disfluent), repeats an earlier one, or
                  names an item other than the one asked about (off topic)
        q_i = +1  if its sentiment matches the requested one, -1 if it opposes it, 0 if neutral (filler)
    sentiment = mean_i q_i                               (a mean, so adding sentences never earns more)
    aspect    = 1 if a fluent sentence names the requested aspect with the requested sentiment, else 0
    r*        = clip(0.6 * sentiment + 0.4 * aspect - 0.1 * max(0, n_sentences - 3), -1, 1)
    an empty response scores -1.

Length can only cost: filler sentences pull the mean towards 0 and every sentence beyond three is penalised.
So a policy that learns "longer is better" from length-biased labels loses gold reward.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# bump when these rules or the builder (``bench.world.build``) change what they produce (4: the validation split);
# here, with the rules, so a cell's identity reads it without importing the builder (and its model code)
WORLD_CODE_VERSION = 4

ITEMS = (
    "phone laptop blender backpack camera kettle watch keyboard jacket speaker vacuum printer chair tablet "
    "toaster monitor mouse lamp tent bicycle heater router drill mattress"
).split()
ASPECTS = "price design battery comfort speed noise weight warranty screen size".split()
POS_ADJ = "great excellent superb lovely solid impressive".split()
NEG_ADJ = "awful poor terrible flimsy disappointing weak".split()
SENTIMENTS = ("positive", "negative")

PROMPT_TEMPLATES = (
    "Write a {sentiment} review of the {item} that mentions the {aspect}.",
    "Give a {sentiment} opinion on the {item}, focusing on its {aspect}.",
    "Review the {item}. Be {sentiment} and talk about the {aspect}.",
    "Describe the {item} in a {sentiment} way and comment on the {aspect}.",
)

# Sentence templates by polarity. {adj} is drawn from the matching adjective list.
ASPECT_SENTENCES = {
    +1: ("The {aspect} is {adj}.", "I love the {aspect}.", "The {aspect} of this {item} is {adj}."),
    -1: ("The {aspect} is {adj}.", "I hate the {aspect}.", "The {aspect} of this {item} is {adj}."),
}
GENERAL_SENTENCES = {
    +1: ("I really like it.", "Overall it is {adj}.", "I would recommend it.", "This {item} is {adj}."),
    -1: ("I regret buying it.", "Overall it is {adj}.", "I would avoid it.", "This {item} is {adj}."),
}
FILLER_SENTENCES = (
    "I bought it last month.",
    "It arrived on a Tuesday.",
    "My friend has one too.",
    "I use it every day.",
    "The box was blue.",
    "I got it as a gift.",
)
POS_WORDS = frozenset(POS_ADJ) | {"love", "like", "recommend"}
NEG_WORDS = frozenset(NEG_ADJ) | {"hate", "regret", "avoid"}

_SENT_SPLIT = re.compile(r"(?<=[.!])\s+|(?<=[.!])$")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Prompt:
    text: str
    item: str
    aspect: str
    sentiment: str  # "positive" | "negative"

    @property
    def polarity(self) -> int:
        return 1 if self.sentiment == "positive" else -1


def all_prompts() -> list[Prompt]:
    out = []
    for tpl, s, item, aspect in itertools.product(PROMPT_TEMPLATES, SENTIMENTS, ITEMS, ASPECTS):
        out.append(Prompt(tpl.format(sentiment=s, item=item, aspect=aspect), item, aspect, s))
    return out


@lru_cache(maxsize=1)
def _prompt_index() -> dict[str, Prompt]:
    return {p.text: p for p in all_prompts()}


def parse_prompt(text: str) -> Prompt:
    """Recover the goal of a world prompt (the text may carry surrounding whitespace)."""
    p = _prompt_index().get(text.strip())
    if p is None:
        raise ValueError(f"not a prompt of the embedded world: {text!r}")
    return p


SPLITS = ("train", "rm", "val", "eval")


def split_of(item: str, aspect: str, seed: int = 0) -> str:
    """Disjoint prompt splits by (item, aspect) combination: 'train' 70%, 'rm' 7.5%, 'val' 7.5%, 'eval' 15%.

    Splitting on the combination (not the prompt string) keeps every phrasing of a held-out goal out of training.
    'train' feeds the reference policy's SFT and the preference pairs; 'rm' a proxy reward model; 'val' model
    selection (tuning); 'eval' the test metrics, never used by any selection. ('val' was carved out of the second
    half of what was 'rm'; 'train' and 'eval' are the combinations they always were.)
    """
    combos = sorted(itertools.product(ITEMS, ASPECTS))
    order = np.random.default_rng(seed).permutation(len(combos))
    rank = {combos[i]: r for r, i in enumerate(order)}[(item, aspect)]
    n = len(combos)
    if rank < 0.7 * n:
        return "train"
    if rank < 0.775 * n:
        return "rm"
    return "val" if rank < 0.85 * n else "eval"


def prompts_for(split: str, seed: int = 0) -> list[Prompt]:
    return [p for p in all_prompts() if split_of(p.item, p.aspect, seed) == split]


# ---------------------------------------------------------------- fluency: the finite set of world sentences
@lru_cache(maxsize=1)
def _fluent_sentences() -> frozenset[str]:
    out = set(FILLER_SENTENCES)
    for pol, adjs in ((+1, POS_ADJ), (-1, NEG_ADJ)):
        for tpl in ASPECT_SENTENCES[pol] + GENERAL_SENTENCES[pol]:
            for item, aspect, adj in itertools.product(ITEMS, ASPECTS, adjs):
                out.add(tpl.format(item=item, aspect=aspect, adj=adj))
    return frozenset(out)


def sentences(response: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(response.strip()) if s and s.strip()]


def sentence_polarity(sentence: str) -> int:
    words = _WORD.findall(sentence.lower())
    score = sum(w in POS_WORDS for w in words) - sum(w in NEG_WORDS for w in words)
    return int(np.sign(score))


def _other_item(sentence: str, item: str) -> bool:
    return any(w in _ITEM_SET and w != item for w in _WORD.findall(sentence.lower()))


_ITEM_SET = frozenset(ITEMS)


def gold_reward(prompt: str | Prompt, response: str) -> float:
    """r*(prompt, response) in [-1, 1]; see the module docstring for the definition."""
    p = prompt if isinstance(prompt, Prompt) else parse_prompt(prompt)
    sents = sentences(response)
    if not sents:
        return -1.0
    fluent = _fluent_sentences()
    seen: set[str] = set()
    q, aspect_hit = [], 0.0
    for s in sents:
        if s not in fluent or s in seen or _other_item(s, p.item):
            q.append(-1.0)
        else:
            pol = sentence_polarity(s) * p.polarity
            q.append(float(pol))
            if pol > 0 and re.search(rf"\b{re.escape(p.aspect)}\b", s):
                aspect_hit = 1.0
        seen.add(s)
    r = 0.6 * float(np.mean(q)) + 0.4 * aspect_hit - 0.1 * max(0, len(sents) - 3)
    return float(np.clip(r, -1.0, 1.0))


def n_words(response: str) -> int:
    return len(response.split())


# ---------------------------------------------------------------- responses for the SFT corpus
def sample_response(p: Prompt, rng: np.random.Generator) -> str:
    """A response of random quality: the reference policy learns this spread, DPO must learn to do better.

    The mix is only loosely tied to the prompt (matching sentiment 50%, opposite 20%, filler 30%; the requested
    aspect named 60% of the time), so the reference policy often misses the goal and preference learning has room.
    """
    n = int(rng.integers(1, 6))
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.30:
            out.append(FILLER_SENTENCES[rng.integers(len(FILLER_SENTENCES))])
            continue
        pol = p.polarity if u < 0.80 else -p.polarity
        adj = (POS_ADJ if pol > 0 else NEG_ADJ)[rng.integers(6)]
        about_aspect = rng.random() < 0.5
        pool = ASPECT_SENTENCES[pol] if about_aspect else GENERAL_SENTENCES[pol]
        # the aspect named is the requested one 60% of the time, another one otherwise
        aspect = p.aspect if rng.random() < 0.6 else ASPECTS[rng.integers(len(ASPECTS))]
        out.append(pool[rng.integers(len(pool))].format(item=p.item, aspect=aspect, adj=adj))
    return " ".join(out)


def sft_corpus(n: int, seed: int, split: str = "train") -> list[tuple[str, str]]:
    """(prompt text, response) pairs for supervised training of the reference policy."""
    rng = np.random.default_rng([seed, 1])
    prompts = prompts_for(split, seed)
    idx = rng.integers(len(prompts), size=n)
    return [(prompts[i].text, sample_response(prompts[i], rng)) for i in idx]
