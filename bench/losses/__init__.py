"""Preference-optimization losses (see ``bench.losses.base`` for the contract and conventions).

    from bench.losses import get, names, from_config, PairLoss, Param, BETA, register

Built in: ``classic`` (DPO, IPO, hinge, SimPO), ``robust`` (cDPO, rDPO, ROPO, Dr. DPO, SymPO, UDPO), ``seed``
(f-DPO, anchored DPO, ASFT, NC-DPO) and ``scored`` (SPPO, MADPO, smoothed DPO, DA-DPO: they read a scorer).
"""
from bench.losses import classic, robust, scored, seed  # noqa: F401  (registered on import)
from bench.losses.base import (
    BETA,
    REGISTRY,
    HyperparameterError,
    LossContractError,
    PairLoss,
    Param,
    UnknownNameError,
    check_contract,
    defaults,
    from_config,
    get,
    names,
    register,
)
from bench.losses.classic import DPO, IPO, Hinge, SimPO
from bench.losses.robust import CDPO, RDPO, ROPO, UDPO, DrDPO, SymPO
from bench.losses.scored import DADPO, MADPO, SPPO, SmDPO
from bench.losses.seed import ASFT, FDPO, NCDPO, Anchored

__all__ = [
    "BETA", "REGISTRY", "HyperparameterError", "LossContractError", "PairLoss", "Param", "UnknownNameError",
    "check_contract", "defaults", "from_config", "get", "names", "register",
    "DPO", "IPO", "Hinge", "SimPO", "CDPO", "RDPO", "ROPO", "DrDPO", "SymPO", "UDPO",
    "FDPO", "Anchored", "ASFT", "NCDPO", "SPPO", "MADPO", "SmDPO", "DADPO",
]
