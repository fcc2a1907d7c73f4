"""One rank of a multi-GPU cell (``python -m bench.cell.rank``, started by ``bench.cell.distributed.launch_cell``):
every rank trains; rank 0 also evaluates, writes the record and owns the W&B run."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from bench.cell import wandb_log
from bench.cell.distributed import CHILD_ENV, is_main_process
from bench.cell.identity import cell_id
from bench.cell.run import run_cell
from bench.core import records


def child_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cell.rank", description="one rank of a multi-GPU cell")
    p.add_argument("--config", required=True)
    p.add_argument("--cell-id", required=True)
    p.add_argument("--hp-source", help="JSON file: where the cell's train/loss values came from (bench.tune.apply)")
    args = p.parse_args(argv)
    os.environ[CHILD_ENV] = "1"
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][rank " + os.environ.get("RANK", "0") + "] %(message)s")

    cfg = OmegaConf.load(args.config)
    cid = cell_id(cfg)
    if cid != args.cell_id:
        raise RuntimeError(f"cell id changed through the launch config: {cid} != {args.cell_id}")
    run = wandb_log.start(cfg, cid) if is_main_process() else None
    try:
        rec = run_cell(cfg, hp_source=json.loads(Path(args.hp_source).read_text()) if args.hp_source else None)
    except BaseException as e:
        wandb_log.finish(run, error=e, record=records.read_record(cfg.paths.results, cid))
        raise
    wandb_log.finish(run, record=rec)
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
