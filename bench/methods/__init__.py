"""Methods: how a cell trains its policy (``bench.methods.base`` has the contract).

Registered: ``standard`` (one TRL run), ``ropo_full`` (ROPO's rounds, loss-based filter and rejection
sampling), ``curriculum`` (Curry-DPO's easy-to-hard stages), ``rm_ensemble`` (a reward-model ensemble on bootstraps
of the noisy pairs drops, relabels or weights them), ``self_play`` (SPPO's rounds on the policy's own samples),
``clean`` (a detector names suspect pairs, an action removes, flips or down-weights them: the oracle and random
cleaners are the controls) and ``subset`` (a random share of the pairs: the clean learning curve); lazy entries, so
listing them imports nothing. ``from_config(cfg.method)`` builds a registered method
or a user's own (``_target_``) and checks it against the contract.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.core.registry import Registry
from bench.methods.base import Method, MethodConfigError, TrainContext, TrainResult, check_contract

__all__ = ["REGISTRY", "Method", "MethodConfigError", "TrainContext", "TrainResult", "check_contract",
           "from_config", "names"]

REGISTRY: Registry = Registry("method", {
    "standard": "bench.methods.standard:Standard",
    "ropo_full": "bench.methods.ropo_full:RopoFull",
    "curriculum": "bench.methods.curriculum:Curriculum",
    "rm_ensemble": "bench.methods.rm_ensemble:RMEnsemble",
    "self_play": "bench.methods.self_play:SelfPlay",
    "clean": "bench.methods.clean:Clean",
    "subset": "bench.methods.clean:Subset",
})


def names() -> list[str]:
    return REGISTRY.names()


def from_config(node: Mapping | Any) -> Method:
    """The method a ``cfg.method`` node describes: ``{name: ropo_full, rounds: 3, ...}`` or ``{_target_: ...}``."""
    from bench.config.typed import plain
    from bench.core.plugins import build

    return build("method", dict(plain(node)), REGISTRY, check_contract)
