"""Preference-optimization losses (see ``bench.losses.base`` for the contract and conventions).

    from bench.losses import KIND, get, names, from_config, PairLoss, BETA

Built in: ``classic`` (DPO, IPO, hinge, SimPO), ``robust`` (cDPO, rDPO, ROPO, Dr. DPO, SymPO, UDPO), ``seed``
(f-DPO, anchored DPO, ASFT, NC-DPO) and ``scored`` (SPPO, MADPO, smoothed DPO, DA-DPO: they read a scorer); lazy
entries, so listing them imports nothing.
"""
from __future__ import annotations

import importlib
from typing import Any

from bench.config.plugin import Kind

__all__ = ["BETA", "KIND", "Hyperparameters", "PairLoss", "defaults", "from_config", "get", "names"]

KIND = Kind("loss", "bench.losses.base:PairLoss", {
    "dpo": "bench.losses.classic:DPO",
    "ipo": "bench.losses.classic:IPO",
    "simpo": "bench.losses.classic:SimPO",
    "hinge": "bench.losses.classic:Hinge",
    "cdpo": "bench.losses.robust:CDPO",
    "rdpo": "bench.losses.robust:RDPO",
    "ropo": "bench.losses.robust:ROPO",
    "drdpo": "bench.losses.robust:DrDPO",
    "sympo": "bench.losses.robust:SymPO",
    "udpo": "bench.losses.robust:UDPO",
    "fdpo": "bench.losses.seed:FDPO",
    "anchored": "bench.losses.seed:Anchored",
    "asft": "bench.losses.seed:ASFT",
    "ncdpo": "bench.losses.seed:NCDPO",
    "sppo": "bench.losses.scored:SPPO",
    "madpo": "bench.losses.scored:MADPO",
    "smdpo": "bench.losses.scored:SmDPO",
    "dadpo": "bench.losses.scored:DADPO",
}, required=("name", "needs_reference_model", "length_normalized", "params", "__call__()", "rewards()",
             "diagnostics()"))

get, names, defaults, from_config = KIND.get, KIND.names, KIND.defaults, KIND.from_config


def __getattr__(name: str) -> Any:
    """``BETA``, ``Hyperparameters`` and ``PairLoss`` from ``bench.losses.base`` (torch) on first use, so listing the
    losses or hashing a cell's id imports no model code; a submodule otherwise."""
    if name in ("BETA", "Hyperparameters", "PairLoss"):
        return getattr(importlib.import_module("bench.losses.base"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
