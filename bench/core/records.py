"""Cell records: one JSON file per sweep cell, written atomically, read back as a pandas table.

Layout (everything a cell writes lives in its own folder, named by the cell id, a hash of what determines the
result, so a re-run of the same cell finds it):

    results/cells/<cell_id>/record.json     the record (schema below)
    results/cells/<cell_id>/flip_mask.json  which training pairs the noise injector flipped (auditable)
    results/cells/<cell_id>/train_log.jsonl per-step training metrics
    results/cells/<cell_id>/samples.jsonl   the policy's and the reference's samples on the evaluation prompts
                                            (``python -m bench.export``: AlpacaEval's model-outputs format)
    results/cells/<cell_id>/model/          (train.save_model) the trained policy or its LoRA adapter, a model card

Record schema (``SCHEMA_VERSION`` 1)::

    cell_id, sweep, status ("ok" | "failed"), loss, noise, rate (target noise rate), seed, data, model,
    metrics      {metric name: float}
    metric_info  {metric name: {"higher_is_better": bool, "evaluator": str}}
    noise_stats  {"target_rate", "realized_rate", ... injector-specific rates}
    loss_params  {hyperparameters as bound}, eps_source ("oracle" | "fixed" | None)
    hp_source    where train/loss values came from: {"source": "default"} or {"source": "tuning", "tuning":
                 "<sweep>/<criterion>", "values": {...}, ...}; hp_sources: every source the cell served (a reused cell)
    config (full resolved Hydra config, less anything that looks like a secret), timings {phase: seconds},
    versions     {package: version} of python, torch, transformers, trl, datasets, accelerate, peft, hydra-core,
                 numpy, prefnoise, and prefnoise_commit (the project's git commit, "+dirty" when tracked files differ;
                 absent outside a git checkout)
    provenance   how the numbers were made (bench.cell.provenance): effective_batch_size (per-device batch x
                 gradient accumulation x processes), per_device_batch_size, gradient_accumulation_steps, world_size,
                 device, device_name, dtype (compute precision), param_dtype, lora (rank, alpha, dropout,
                 target_modules; None: full fine-tuning), parameters {trainable, total}, data_fingerprint (the clean
                 data), train_fingerprint (the pairs as trained, after noise), evaluators {name: the models behind its
                 numbers: a judge's model id and base-URL host, a reward model's path and backbone; never a key}
    saved_model  (train.save_model only) {"path": "model", "kind": "adapter" | "full model", "base_model", "files"}
    error (None or {"type", "message", "where"}), finished_at (ISO time)

A failed run never replaces a complete ("ok") record: results already written are never lost.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from bench.core.files import atomic_write_json

SCHEMA_VERSION = 1
RECORD_FILE = "record.json"


def cell_dir(results_dir: str | os.PathLike, cell_id: str) -> Path:
    return Path(results_dir) / "cells" / cell_id


def read_record(results_dir: str | os.PathLike, cell_id: str) -> dict | None:
    path = cell_dir(results_dir, cell_id) / RECORD_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def is_complete(results_dir: str | os.PathLike, cell_id: str) -> bool:
    rec = read_record(results_dir, cell_id)
    return rec is not None and rec.get("status") == "ok"


def write_record(results_dir: str | os.PathLike, record: dict) -> Path:
    """Write a cell's record atomically. A failed record never overwrites a complete one."""
    record = {"schema": SCHEMA_VERSION, "finished_at": datetime.now(timezone.utc).isoformat(), **record}
    path = cell_dir(results_dir, record["cell_id"]) / RECORD_FILE
    if record.get("status") != "ok" and is_complete(results_dir, record["cell_id"]):
        return path
    atomic_write_json(path, record)
    return path


def note_hp_source(results_dir: str | os.PathLike, cell_id: str, hp_source: dict) -> None:
    """A complete cell reused under another source of its values (a tuning rule that picked the very values of a
    cell already run): the record lists that source too, so the report counts the cell for both. Results untouched."""
    rec = read_record(results_dir, cell_id)
    if rec is None or rec.get("status") != "ok":
        return
    sources = rec.get("hp_sources") or [rec.get("hp_source") or {"source": "default"}]
    if hp_source not in sources:
        atomic_write_json(cell_dir(results_dir, cell_id) / RECORD_FILE, {**rec, "hp_sources": sources + [hp_source]})


def iter_records(results_dir: str | os.PathLike):
    """Every record under ``results_dir/cells`` (unreadable files are skipped with a warning, never fatal)."""
    root = Path(results_dir) / "cells"
    for path in sorted(root.glob(f"*/{RECORD_FILE}")):
        try:
            yield json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:  # a record being written by another job, or corrupt
            import warnings

            warnings.warn(f"skipping unreadable record {path}: {e}", stacklevel=2)


def load_rows(results_dir: str | os.PathLike):
    """Tidy long table: one row per (cell, metric), with the cell's identifying columns."""
    return rows_of(iter_records(results_dir))


def rows_of(recs):
    """``load_rows`` for records already read (the report reads each record file once)."""
    import pandas as pd

    rows = []
    for rec in recs:
        base = {k: rec.get(k) for k in ("cell_id", "sweep", "status", "loss", "noise", "rate", "seed", "data", "model")}
        info = rec.get("metric_info") or {}
        metrics = rec.get("metrics") or {}
        if not metrics:
            rows.append({**base, "metric": None, "value": None, "higher_is_better": None})
        for name, value in metrics.items():
            rows.append(
                {**base, "metric": name, "value": value, "higher_is_better": (info.get(name) or {}).get("higher_is_better")}
            )
    return pd.DataFrame(rows)
