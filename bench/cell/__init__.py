"""One cell of a sweep: its parts checked from the config (``parts``), its identity (``identity``), the run
itself (``run``), a multi-GPU cell's own launch (``distributed``, ``rank``), and its W&B run (``wandb_log``)."""
from bench.cell.identity import IDENTITY_VERSION, cell_id
from bench.cell.run import run_cell

__all__ = ["IDENTITY_VERSION", "cell_id", "run_cell"]
