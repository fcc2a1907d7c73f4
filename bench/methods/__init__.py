"""Methods: how a cell trains its policy (``bench.methods.base`` has the contract).

Registered: ``standard`` (one TRL run), ``ropo_full`` (ROPO's rounds, loss-based filter and rejection
sampling), ``curriculum`` (Curry-DPO's easy-to-hard stages), ``rm_ensemble`` (a reward-model ensemble on bootstraps
of the noisy pairs drops, relabels or weights them), ``self_play`` (SPPO's rounds on the policy's own samples),
``clean`` (a detector names suspect pairs, an action removes, flips or down-weights them: the oracle and random
cleaners are the controls) and ``subset`` (a random share of the pairs: the clean learning curve); lazy entries, so
listing them imports nothing. Each entry names its class and its options (``bench.methods.options``: light), so
a cell's identity reads a method's options without importing the trainer, TRL or transformers.
``from_config(cfg.method)`` builds a registered method or a user's own (``_target_``) and checks it against the
contract.
"""
from __future__ import annotations

import importlib
from typing import Any

from bench.config.plugin import Kind

__all__ = ["KIND", "Method", "TrainContext", "TrainResult", "from_config", "get", "names"]

_O = "bench.methods.options:"
KIND = Kind("method", "bench.methods.base:Method", {
    "standard": ("bench.methods.standard:Standard", _O + "MethodOptions"),
    "ropo_full": ("bench.methods.ropo_full:RopoFull", _O + "RopoFullOptions"),
    "curriculum": ("bench.methods.curriculum:Curriculum", _O + "CurriculumOptions"),
    "rm_ensemble": ("bench.methods.rm_ensemble:RMEnsemble", _O + "RMEnsembleOptions"),
    "self_play": ("bench.methods.self_play:SelfPlay", _O + "SelfPlayOptions"),
    "clean": ("bench.methods.clean:Clean", _O + "CleanOptions"),
    "subset": ("bench.methods.clean:Subset", _O + "SubsetOptions"),
}, required=("name", "train(ctx)"))

get, names, from_config = KIND.get, KIND.names, KIND.from_config


def __getattr__(name: str) -> Any:
    """``Method``, ``TrainContext`` and ``TrainResult`` from ``bench.methods.base`` (the trainer) on first use, so
    listing the methods or hashing a cell's id imports no model code; a submodule otherwise."""
    if name in ("Method", "TrainContext", "TrainResult"):
        return getattr(importlib.import_module("bench.methods.base"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
