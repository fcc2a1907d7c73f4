"""Cell records: one JSON file per sweep cell, written atomically, read back as a pandas table.

Layout (everything a cell writes lives in its own folder, named by the cell id, a hash of what determines the
result, so a re-run of the same cell finds it):

    results/cells/<cell_id>/record.json     the record (schema below)
    results/cells/<cell_id>/flip_mask.json  which training pairs the noise injector flipped (auditable)
    results/cells/<cell_id>/train_log.jsonl per-step training metrics
    results/cells/<cell_id>/samples.jsonl   the policy's and the reference's samples on the evaluation prompts
                                            (``python -m bench.export``: AlpacaEval's model-outputs format)
    results/cells/<cell_id>/model/          (train.save_model) the trained policy or its LoRA adapter, a model card

Record schema: ``Record`` below, field by field (``SCHEMA_VERSION`` 2; 1 lacked ``schema`` on some records and
``method``, ``scorer``, ``train_steps``, ``gpu``, ``curve``, ``loss_learned``: ``upgrade`` fills what a reader
needs, so old records are still read).

A failed run never replaces a complete ("ok") record: results already written are never lost.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

from bench.core.files import atomic_write_json

SCHEMA_VERSION = 2  # 2: the Record contract below (method, scorer, train_steps, gpu, curve, loss_learned, ...)
RECORD_FILE = "record.json"


class Record(TypedDict, total=False):
    """One cell's record (``results/cells/<cell_id>/record.json``), as ``bench.cell.run`` writes it."""

    schema: int  # SCHEMA_VERSION when written
    cell_id: str  # the hash of what determines the result (bench.cell.identity)
    sweep: str
    status: str  # "ok" | "failed"
    loss: str
    noise: str
    rate: float | None  # the injector's target noise rate (None: set by a scale or by the data)
    seed: int
    data: str
    model: str
    method: str  # "standard" unless a method of bench.methods trained the policy
    loss_label: str
    loss_params: dict[str, Any]  # the loss's hyperparameters as bound
    eps_source: str | None  # "oracle" | "fixed" | None
    metrics: dict[str, float]
    metric_info: dict[str, dict]  # {metric: {"higher_is_better", "compare", "evaluator"}} (bench.core.metrics)
    noise_stats: dict[str, Any]  # target_rate, realized_rate, ... the injector's own rates
    n_train_pairs: int  # the pairs trained on (after skips and ties)
    train_steps: int  # optimizer steps
    timings: dict[str, Any]  # {phase: seconds}
    gpu: dict[str, Any]  # peak memory, on a GPU only
    curve: list[dict]  # the policy's metrics at each checkpoint (eval.checkpoints); the last is the end
    stopped: dict  # the run ended at a checkpoint before its schedule's end (eval.checkpoints.stop_after): step,
    #                epoch, stop_after, planned_steps; the curve's last point (the end) is there
    scorer: dict | None  # the per-response scorer, when a loss or method read scores (bench.evaluation.scorer)
    loss_learned: dict | None  # a loss that learns the noise: what it learned vs what was injected
    hp_source: dict  # {"source": "default"} or {"source": "tuning", "tuning": "<sweep>/<criterion>", ...}
    hp_sources: list[dict]  # every source a reused cell served
    config: dict  # the resolved Hydra config, less anything that looks like a secret
    versions: dict[str, str]  # python, torch, transformers, trl, ..., prefnoise and prefnoise_commit
    provenance: dict[str, Any]  # how the numbers were made (bench.cell.provenance): batch, devices, dtypes, LoRA,
    #                             parameters, data and train fingerprints, the evaluators' models (never a key)
    saved_model: dict  # train.save_model only: {"path", "kind", "base_model", "files"}
    borrowed_from: dict  # a cell that trained as its standard twin did (bench.cell.borrow): the twin's cell_id, sweep
    #                      and timings; its results are the twin's, its timings its own
    error: dict | None  # {"type", "message", "where"} on a failed cell
    finished_at: str  # ISO time
    # ... and what a method adds (ropo_full: its per-round filter stats; clean: its detector's figures)


def upgrade(record: dict) -> dict:
    """A record as the current schema reads it: one written before ``SCHEMA_VERSION`` 2 gets the fields it lacked
    where a reader needs them (``method``: "standard", the only one then; ``scorer``: None). Its ``schema`` says
    what was written. A record that ended at its first checkpoint and was written without a ``curve`` (its one
    point, the end, was left out before 2026-12-07) gets that point back from its metrics (``stopped_end``)."""
    if int(record.get("schema") or 1) < SCHEMA_VERSION:
        record = {"method": "standard", "scorer": None, **record, "schema": int(record.get("schema") or 1)}
    if record.get("stopped") and not record.get("curve") and record.get("metrics"):
        record = {**record, "curve": [stopped_end(record)]}
    return record


def stopped_end(record: dict) -> dict:
    """The curve's one point of a record that ended at its first checkpoint: where it stopped, and the end's
    evaluation metrics (every metric but the training loss and the method's own, as a curve point has them)."""
    info, own = record.get("metric_info") or {}, ("train", record.get("method"))
    return {"step": int(record["stopped"].get("step") or record.get("train_steps") or 0),
            "epoch": record["stopped"]["epoch"],
            **{k: v for k, v in record["metrics"].items() if (info.get(k) or {}).get("evaluator") not in own}}


def cell_dir(results_dir: str | os.PathLike, cell_id: str) -> Path:
    return Path(results_dir) / "cells" / cell_id


def read_record(results_dir: str | os.PathLike, cell_id: str) -> dict | None:
    path = cell_dir(results_dir, cell_id) / RECORD_FILE
    if not path.exists():
        return None
    return upgrade(json.loads(path.read_text()))


def is_complete(results_dir: str | os.PathLike, cell_id: str, stop_after: float | None = None) -> bool:
    """Whether the cell's complete record exists and serves a run asked to train to ``stop_after`` (epochs; None:
    to the end of its schedule): see ``reaches``."""
    rec = read_record(results_dir, cell_id)
    return rec is not None and rec.get("status") == "ok" and reaches(rec, stop_after)


def reaches(record: dict, stop_after: float | None) -> bool:
    """Whether a complete record serves a run asked to train to ``stop_after`` (``eval.checkpoints.stop_after``,
    not part of a cell's id): a whole run serves any; one that ended early (``stopped``) only a run asked to stop at
    or before where it did (its curve holds every checkpoint up to there, the whole run's, bit for bit)."""
    stopped = record.get("stopped")
    if not stopped:
        return True
    return stop_after is not None and round(float(stopped["epoch"]), 4) >= round(float(stop_after), 4)


def write_record(results_dir: str | os.PathLike, record: dict) -> Path:
    """Write a cell's record atomically. A failed record never overwrites a complete one (one that ended early
    included: a longer run of it that fails leaves it as it was)."""
    record = {"schema": SCHEMA_VERSION, "finished_at": datetime.now(timezone.utc).isoformat(), **record}
    path = cell_dir(results_dir, record["cell_id"]) / RECORD_FILE
    if record.get("status") != "ok" and (read_record(results_dir, record["cell_id"]) or {}).get("status") == "ok":
        return path
    atomic_write_json(path, record)
    return path


def sources_of(record: dict) -> list[dict]:
    """Every source of values a record serves (``hp_sources``; a record before them: its ``hp_source``)."""
    return record.get("hp_sources") or [record.get("hp_source") or {"source": "default"}]


def rule_of(source: dict) -> str:
    """The rule a source of values stands for: a tuning rule's criterion, else ``default`` (the report's unit)."""
    return str(source.get("criterion") or "default") if source.get("source") == "tuning" else "default"


def with_source(sources: list[dict], source: dict) -> list[dict]:
    """``sources`` with ``source`` as its rule's one entry (an earlier entry of that rule, from before its tuning
    sweep was re-run, gives way)."""
    return [s for s in sources if rule_of(s) != rule_of(source)] + [source]


def serves(record: dict, source: dict) -> bool:
    """Whether a complete record can be read for ``source``: a picked checkpoint the run reached, or (no pick) a
    run that went to its end."""
    pick = source.get("checkpoint")
    return reaches(record, pick) if pick is not None else not record.get("stopped")


def note_hp_source(results_dir: str | os.PathLike, cell_id: str, hp_source: dict) -> None:
    """A complete cell reused under another source of its values (a tuning rule that picked the very values of a
    cell already run): the record lists that source too, so the report counts the cell for both. Results untouched."""
    rec = read_record(results_dir, cell_id)
    if rec is None or rec.get("status") != "ok":
        return
    sources = sources_of(rec)
    if with_source(sources, hp_source) != sources:
        atomic_write_json(cell_dir(results_dir, cell_id) / RECORD_FILE,
                          {**rec, "hp_sources": with_source(sources, hp_source)})


def iter_records(results_dir: str | os.PathLike):
    """Every record under ``results_dir/cells`` (unreadable files are skipped with a warning, never fatal)."""
    root = Path(results_dir) / "cells"
    for path in sorted(root.glob(f"*/{RECORD_FILE}")):
        try:
            yield upgrade(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as e:  # a record being written by another job, or corrupt
            import warnings

            warnings.warn(f"skipping unreadable record {path}: {e}", stacklevel=2)


def rows_of(recs):
    """Tidy long table of records already read (the report reads each record file once): one row per (cell,
    metric), with the cell's identifying columns."""
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
