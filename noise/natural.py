"""``natural``: the labels real annotators gave, from annotator columns of the data file; no simulated noise.

Each column named in ``annotators`` holds one annotator's vote on every pair: which of the file's two responses
that annotator preferred. Votes: ``true``/``1``/``"chosen"`` (the file's chosen response), ``false``/``0``/
``"rejected"``, or ``null`` (the annotator did not label the pair). The file's own ``chosen``/``rejected`` are the
reference the flips are measured against (expert or gold labels, where the data set has them; otherwise any
orientation: the trained labels are the annotators' all the same). ``data=hf`` keeps the named columns
(``bench.cell`` asks the loader for ``data_columns``).

``label`` says how the votes become the training label:

- ``majority``: the side with more votes; ``label_confidence`` is the share of votes for it, so a split vote
  (2 to 2) is a tie (0.5: trained on as a soft label by cDPO, left out by the other losses, as with ``tie``);
- ``one``: the vote of one annotator drawn at random (seeded) among those who labelled the pair, as if each pair had
  been labelled once;
- ``first``: the vote of the first annotator in ``annotators`` who labelled the pair.

A pair nobody labelled is an error naming its row. The data sets the noise, not a rate (``noise.rate`` must be null).
Source: the crowd-label aggregation of the learning-from-crowds literature (majority vote vs a single label per
item; e.g. Snow et al., "Cheap and Fast -- But is it Good?", EMNLP 2008).

Summary: ``label``, ``disagreement_rate`` (the chance that two annotators drawn from those who labelled a pair
disagree, averaged over pairs with two votes or more), ``unanimous_rate``, ``split_vote_rate`` (as many votes for
each side), ``mean_votes_per_pair``, per annotator ``rate_annotator_<a>`` (its votes against the file's labels) and
``coverage_annotator_<a>``, and the base class's ``realized_rate`` (training labels against the file's).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from bench.core.options import ConfigError, option
from noise.base import CONFIDENCE, Injector, column

LABELS = ("majority", "one", "first")
NO_VOTE, FOR_REJECTED, FOR_CHOSEN = -1, 0, 1
_WORDS = {"chosen": FOR_CHOSEN, "rejected": FOR_REJECTED}


def vote(value, col: str, row: int) -> int:
    """One cell of an annotator column as FOR_CHOSEN, FOR_REJECTED or NO_VOTE."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VOTE
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Real) and float(value) in (0.0, 1.0)):
        return FOR_CHOSEN if bool(value) else FOR_REJECTED
    raise ConfigError(f"noise.annotators: column {col!r} row {row} holds {value!r}; valid: true/1/'chosen' (prefers "
                      "the file's chosen response), false/0/'rejected', or null (no vote)")


class Natural(Injector):
    name = "natural"
    RATE_IS_PARAMETER = False

    class Options(Injector.Options):
        annotators: Any = option("the data's columns of annotators' votes, one per annotator")
        label: Any = option("majority (split votes are ties), one (a random annotator's vote) or first")

    @property
    def data_columns(self) -> tuple[str, ...]:
        return tuple(self.annotators)

    def validate(self) -> None:
        super().validate()
        cols = self.annotators
        if isinstance(cols, str) or not isinstance(cols, (list, tuple)) or not cols or \
                not all(isinstance(c, str) and c for c in cols) or len(set(cols)) != len(cols):
            raise ConfigError(f"noise.annotators={cols!r}; valid: a non-empty list of distinct column names of the "
                              "data file, one per annotator, e.g. noise.annotators=[a1,a2,a3]")
        if self.label not in LABELS:
            raise ConfigError(f"noise.label={self.label!r}; valid: {', '.join(LABELS)}")
        self.annotators = list(cols)

    def _features(self, ds):
        cols = self.annotators
        missing = [c for c in cols if c not in ds.column_names]
        if missing:
            raise ConfigError(f"noise.annotators: the pairs have no column {missing[0]!r} (they have "
                              f"{ds.column_names}); valid: columns of the data file (data=hf keeps those named here)")
        votes = np.array([[vote(v, c, i) for i, v in enumerate(column(ds, c))] for c in cols], dtype=int).T
        unlabelled = np.flatnonzero((votes == NO_VOTE).all(axis=1))
        if len(unlabelled):
            raise ConfigError(f"noise.annotators={cols}: nobody labelled the pair at row {unlabelled[0]}; valid: "
                              "data where every pair has at least one vote")
        return {"votes": votes}

    def _choose(self, feats, k, rng):
        votes = feats["votes"]
        voted = votes != NO_VOTE
        label = self.label
        if label == "majority":
            for_c, for_r = (votes == FOR_CHOSEN).sum(1), (votes == FOR_REJECTED).sum(1)
            return for_r > for_c, None, {f"_{CONFIDENCE}": np.maximum(for_c, for_r) / (for_c + for_r)}
        if label == "one":
            pick = np.argmax(np.where(voted, rng.random(votes.shape), -1.0), axis=1)
        else:
            pick = np.argmax(voted, axis=1)  # the first True
        return votes[np.arange(len(votes)), pick] == FOR_REJECTED, None, {}

    def _summary(self, mask, annotator, feats, calib):
        votes = feats["votes"]
        voted = votes != NO_VOTE
        for_c, for_r = (votes == FOR_CHOSEN).sum(1), (votes == FOR_REJECTED).sum(1)
        v = for_c + for_r
        multi = v >= 2
        stats = {
            "label": self.label,
            "disagreement_rate": float((for_c[multi] * for_r[multi] / (v[multi] * (v[multi] - 1) / 2)).mean())
            if multi.any() else None,
            "unanimous_rate": float(((for_c == 0) | (for_r == 0)).mean()),
            "split_vote_rate": float((for_c == for_r).mean()),
            "mean_votes_per_pair": float(v.mean()),
        }
        for j, name in enumerate(self.annotators):
            mine = voted[:, j]
            stats[f"rate_annotator_{name}"] = float((votes[mine, j] == FOR_REJECTED).mean()) if mine.any() else None
            stats[f"coverage_annotator_{name}"] = float(mine.mean())
        return stats
