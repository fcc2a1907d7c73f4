"""The selection rules: each names one validation metric (``bench.evaluation.validation``) to maximize.

``oracle`` reads the gold reward, which only the embedded world knows: an upper bound no practitioner has. The
others use no clean label: the noisy validation pairs, a proxy reward model trained on noisy labels, or that
proxy with a KL penalty. None of them ever reads the test split.

A rule is a plug-in like every other (``bench.config.plugin``): a subclass of ``Criterion`` with a ``name``, the
``metric`` it maximizes and whether it is ``realistic`` (uses no clean label); a tuning sweep names registered ones
or classes of yours (``hydra.sweeper.criteria=[oracle,mypkg.rules.Longest]``).
"""
from __future__ import annotations

from typing import Any, ClassVar

from bench.config.plugin import Kind, Plugin


class Criterion(Plugin):
    kind = "criterion"
    metric: ClassVar[str] = ""  # the validation metric it maximizes
    realistic: ClassVar[bool] = True  # uses no clean label (False: an oracle, for comparison only)


class Oracle(Criterion):
    """gold reward of policy samples on the validation prompts"""

    name, metric, realistic = "oracle", "val_gold_reward", False


class ValAcc(Criterion):
    """implicit-reward accuracy on the noisy validation pairs (labels as a practitioner has them)"""

    name, metric = "val_acc", "val_implicit_acc"


class ValRM(Criterion):
    """mean score of policy samples under a proxy reward model trained on noisy labels"""

    name, metric = "val_rm", "val_rm_reward"


class ValRMKL(Criterion):
    """the proxy reward minus kl_weight x KL to the reference, on the validation samples"""

    name, metric = "val_rm_kl", "val_rm_kl"


KIND = Kind("criterion", Criterion, {
    "oracle": "bench.tune.criteria:Oracle",
    "val_acc": "bench.tune.criteria:ValAcc",
    "val_rm": "bench.tune.criteria:ValRM",
    "val_rm_kl": "bench.tune.criteria:ValRMKL",
}, noun="selection criterion", required=("name", "metric"), configs=False)

names = KIND.names


def get(ref: Any) -> Criterion:
    """A rule by its registered name, its class path or a node."""
    return KIND.from_ref(ref, where="criterion")
