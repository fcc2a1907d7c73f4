"""The selection rules: each names one validation metric (``bench.evaluation.validation``) to maximize.

``oracle`` reads the gold reward, which only the embedded world knows: an upper bound no practitioner has. The
others use no clean label: the noisy validation pairs, a proxy reward model trained on noisy labels, or that
proxy with a KL penalty. None of them ever reads the test split.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.registry import Registry


@dataclass(frozen=True)
class Criterion:
    name: str
    metric: str  # the validation metric it maximizes
    realistic: bool  # uses no clean label (False: an oracle, for comparison only)
    doc: str


CRITERIA: Registry[Criterion] = Registry("selection criterion")
for _c in (
    Criterion("oracle", "val_gold_reward", False, "gold reward of policy samples on the validation prompts"),
    Criterion("val_acc", "val_implicit_acc", True,
              "implicit-reward accuracy on the noisy validation pairs (labels as a practitioner has them)"),
    Criterion("val_rm", "val_rm_reward", True,
              "mean score of policy samples under a proxy reward model trained on noisy labels"),
    Criterion("val_rm_kl", "val_rm_kl", True,
              "the proxy reward minus kl_weight x KL to the reference, on the validation samples"),
):
    CRITERIA.register(_c.name, _c)


def get(name: str) -> Criterion:
    return CRITERIA.lookup(name)


def names() -> list[str]:
    return CRITERIA.names()
