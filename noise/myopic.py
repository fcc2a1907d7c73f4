"""``myopic``: B-Pref's myopic teacher, for text: it reads only the first part of each response and labels by that.

Source: Lee, Smith, Dragan and Abbeel, "B-Pref: Benchmarking Preference-Based Reinforcement Learning" (NeurIPS 2021
Datasets and Benchmarks; code rll-research/BPref, ``teacher_gamma``: the myopic teacher weights some steps of a
segment more than others). For a response, the natural analogue is a reader who stops early.

Model. The teacher reads the first ``read`` units of each response (``unit: sentences``, split after ``.``, ``!`` or
``?``; or ``unit: words``) and labels the pair by the gold reward of what it read: the pair is flipped where the
rejected response's read part scores higher. Where the two read parts score the same, the teacher cannot tell and
guesses (a seeded fair coin). Responses no longer than ``read`` are read whole. ``read`` is the parameter, not a
rate (``noise.rate`` must be null); the record states the realized flip rate against the gold labels.

Gold of text the data does not hold. The read parts must be scored, so the gold reward is a function:
``gold_reward: world`` (the default) is the embedded world's rule ``bench.world.rules.gold_reward``, which
``gold_chosen``/``gold_rejected`` of the world's pairs hold for whole responses; on other data pass a callable
``(prompt, response) -> float`` from Python.

Summary: ``read``, ``unit``, ``rate_read_disagrees`` (the read parts strictly favour the rejected response: flipped
for sure), ``rate_read_ties`` (guessed), ``share_responses_cut``, ``realized_rate`` and ``realized_rate_vs_gold``,
``rate_near_ties`` / ``rate_clear``, ``gold_source``.
"""
from __future__ import annotations

import re
from typing import Any

from bench.core.options import ConfigError, option
from noise.base import check_number, texts
from noise.gold import GoldTeacher, gold_pair, resolve, score

UNITS = ("sentences", "words")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def units(text: str, unit: str) -> list[str]:
    """``text`` as its sentences or words."""
    return [p for p in (_SENTENCE_END.split(text.strip()) if unit == "sentences" else text.split()) if p]


def first_part(text: str, read: int, unit: str) -> str:
    """The first ``read`` sentences or words of ``text`` (all of it if it is no longer)."""
    return " ".join(units(text, unit)[:read])


class Myopic(GoldTeacher):
    name = "myopic"
    RATE_IS_PARAMETER, SCALE = False, "read"
    ALLOW_WORLD = True

    class Options(GoldTeacher.Options):
        read: Any = option("how many units of each response the teacher reads")
        unit: Any = option("what read counts: sentences or words")

    def _validate_scale(self) -> None:
        self.read = check_number("read", self.read, low=1, integer=True,
                                            why="how many units of each response the teacher reads")
        if self.unit not in UNITS:
            raise ConfigError(f"noise.unit={self.unit!r}; valid: {', '.join(UNITS)}")
        if self.gold_reward is None:
            raise ConfigError("noise.gold_reward=null: myopic scores the first part of each response, which the data "
                              "does not hold; valid: world (the embedded world's rule) or a Python callable")

    def _features(self, ds):
        read, unit, fn = self.read, self.unit, resolve(self.gold_reward)
        prompts = texts(ds, "prompt")
        seen, cut = {}, 0
        for side in ("chosen", "rejected"):
            full = texts(ds, side)
            split = [units(t, unit) for t in full]
            cut += sum(len(u) > read for u in split)
            seen[side] = score(fn, "gold_reward", prompts, [" ".join(u[:read]) for u in split])
        gc, gr, source = gold_pair(ds, self.name, self.gold_reward)
        return {"gap": gc - gr, "source": source, "read_gap": seen["chosen"] - seen["rejected"],
                "share_cut": cut / (2 * len(ds))}

    def _choose(self, feats, k, rng):
        read_gap = feats["read_gap"]
        coin = rng.random(len(read_gap)) < 0.5
        return (read_gap < 0) | ((read_gap == 0) & coin), None, {}

    def _summary(self, mask, annotator, feats, calib):
        read_gap = feats["read_gap"]
        return {
            "read": self.read,
            "unit": self.unit,
            "rate_read_disagrees": float((read_gap < 0).mean()),
            "rate_read_ties": float((read_gap == 0).mean()),
            "share_responses_cut": float(feats["share_cut"]),
            **self._gold_summary(mask, feats),
        }
