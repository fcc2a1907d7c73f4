"""Preference-optimization losses (see ``bench.losses.base`` for the contract and conventions).

    from bench.losses import KIND, get, names, from_config, PairLoss, BETA

Built in: ``classic`` (DPO, IPO, hinge, SimPO), ``robust`` (cDPO, rDPO, ROPO, Dr. DPO, SymPO, UDPO), ``seed``
(f-DPO, anchored DPO, ASFT, NC-DPO) and ``scored`` (SPPO, MADPO, smoothed DPO, DA-DPO: they read a scorer); lazy
entries, so listing them imports nothing. Each entry names its class and its options (``bench.losses.options``:
light), so a cell's identity reads a loss's options without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

from bench.config.plugin import Kind
from bench.losses.options import BETA, Hyperparameters, with_oracle_eps

__all__ = ["BETA", "KIND", "Hyperparameters", "PairLoss", "defaults", "from_config", "get", "names"]

_O = "bench.losses.options:"
KIND = Kind("loss", "bench.losses.base:PairLoss", {
    "dpo": ("bench.losses.classic:DPO", _O + "LossOptions"),
    "ipo": ("bench.losses.classic:IPO", _O + "IPOOptions"),
    "simpo": ("bench.losses.classic:SimPO", _O + "SimPOOptions"),
    "hinge": ("bench.losses.classic:Hinge", _O + "LossOptions"),
    "cdpo": ("bench.losses.robust:CDPO", _O + "CDPOOptions"),
    "rdpo": ("bench.losses.robust:RDPO", _O + "RDPOOptions"),
    "ropo": ("bench.losses.robust:ROPO", _O + "ROPOOptions"),
    "drdpo": ("bench.losses.robust:DrDPO", _O + "DrDPOOptions"),
    "sympo": ("bench.losses.robust:SymPO", _O + "SymPOOptions"),
    "udpo": ("bench.losses.robust:UDPO", _O + "UDPOOptions"),
    "fdpo": ("bench.losses.seed:FDPO", _O + "FDPOOptions"),
    "anchored": ("bench.losses.seed:Anchored", _O + "AnchoredOptions"),
    "asft": ("bench.losses.seed:ASFT", _O + "ASFTOptions"),
    "ncdpo": ("bench.losses.seed:NCDPO", _O + "NCDPOOptions"),
    "sppo": ("bench.losses.scored:SPPO", _O + "SPPOOptions"),
    "madpo": ("bench.losses.scored:MADPO", _O + "MADPOOptions"),
    "smdpo": ("bench.losses.scored:SmDPO", _O + "SmDPOOptions"),
    "dadpo": ("bench.losses.scored:DADPO", _O + "DADPOOptions"),
}, required=("name", "needs_reference_model", "length_normalized", "params", "__call__()", "rewards()",
             "diagnostics()"), in_context=with_oracle_eps)

get, names, defaults, from_config = KIND.get, KIND.names, KIND.defaults, KIND.from_config


def __getattr__(name: str) -> Any:
    """``PairLoss`` from ``bench.losses.base`` (torch) on first use, so listing the losses or hashing a cell's id
    imports no model code; a submodule otherwise."""
    if name == "PairLoss":
        return importlib.import_module("bench.losses.base").PairLoss
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
