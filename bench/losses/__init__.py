"""Preference-optimization losses (see ``bench.losses.base`` for the contract and conventions).

    from bench.losses import KIND, get, names, from_config, PairLoss, BETA

Built in: ``classic`` (DPO, IPO, hinge, SimPO), ``robust`` (cDPO, rDPO, ROPO, Dr. DPO, SymPO, UDPO), ``seed``
(f-DPO, anchored DPO, ASFT, NC-DPO) and ``scored`` (SPPO, MADPO, smoothed DPO, DA-DPO: they read a scorer); lazy
entries, so listing them imports nothing.
"""
from bench.config.plugin import Kind
from bench.losses.base import BETA, Hyperparameters, PairLoss

__all__ = ["BETA", "KIND", "Hyperparameters", "PairLoss", "defaults", "from_config", "get", "names"]

KIND = Kind("loss", PairLoss, {
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
