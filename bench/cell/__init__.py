"""One cell of a sweep: its parts checked from the config (``parts``), its identity (``identity``), the run
itself (``run``), a multi-GPU cell's own launch (``distributed``, ``rank``), and its W&B run (``wandb_log``).

Slim on purpose: ``import bench.cell.identity`` (hashing a cell's id) imports no model code; ``cell_id`` and
``run_cell`` are still importable from here, each on first use."""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["IDENTITY_VERSION", "cell_id", "run_cell"]
_LAZY = {"IDENTITY_VERSION": "bench.cell.identity", "cell_id": "bench.cell.identity", "run_cell": "bench.cell.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    try:  # a submodule (``from bench.cell import run``)
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
