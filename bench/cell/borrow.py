"""A cell that would train exactly as its standard twin did takes the twin's results instead of training again.

A cleaner that names no pair (``method=clean`` with ``fraction`` 0, or taking the noise rate at flip rate 0, and
``action=remove``) trains on every pair as labelled for the standard cell's steps: the same run as ``method=standard``
on the same data, loss, training and seed, step for step (``Method.trains_as_standard``; the controls' records and
``tests/test_borrow.py`` show every metric equal). Such a cell's **twin** is the cell with the same config and
``method: standard``. When ``reuse_standard`` is on (the default) and the twin's complete record exists, the cell

1. loads its data and injects its noise as any cell does (seconds, from the cache), and checks that its data and
   the pairs it would train on have the fingerprints the twin's record gives (else it trains, and says why);
2. writes its own record: the twin's results (metrics, curve, steps, provenance, ...), its own names, config,
   method, label and noise figures, what its method adds when it names nothing (``standard_result``: the cleaner's
   block, ``clean_named`` 0), its own timings, and ``borrowed_from``: the twin's id, sweep and timings;
3. copies the twin's samples, margins and training log beside its record (the report and ``bench.export`` read them).

A study that crosses cleaners with flip rates then trains each rate-0 cell once (a cleaner arm's tuning and finals
at rate 0 are its DPO twin's), and its tables are what training every cell would give. ``reuse_standard=false``
trains the cell anyway; so does ``resume=false`` (fresh results asked for), a cell that saves its model
(``train.save_model``), a multi-GPU cell, and any cell whose attempt fails on the way (it is logged).
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from bench import data as data_mod
from bench.cell import distributed, noising, provenance
from bench.cell.identity import NEUTRAL_PARTS, cell_id
from bench.core import progress, records
from bench.core.metrics import infos

log = logging.getLogger("prefnoise")

# what a cell's record takes from its twin's (bench.cell.run._record writes these from a run)
RESULTS = ("loss_params", "eps_source", "metrics", "metric_info", "n_train_pairs", "train_steps", "gpu", "curve",
           "stopped", "scorer", "loss_learned", "provenance")
FILES = ("samples.jsonl", "val_samples.jsonl", "margins.json", "train_log.jsonl")  # copied beside the record


def noise_rate(injector) -> float | None:
    """The rate the cell's injector states (a cleaner's default fraction), None if it states none."""
    return getattr(injector, "flip_rate", injector.target_rate)


def attempt(parts, cid: str, phase: dict) -> dict | None:
    """The cell's record from its twin's where it may take it (``twin_of``, ``borrowed``), else None: the cell
    trains. A failure on the way (an unreadable twin record, a file that will not copy) is logged, and the cell
    trains; ``phase["started"]`` moves past the attempt, so the cell's config time stays its own."""
    t0 = time.time()
    try:
        twin = twin_of(parts)
        return borrowed(parts, cid, twin, phase) if twin is not None else None
    except Exception as e:  # noqa: BLE001  (training the cell is always a valid answer)
        log.warning("cell %s: taking its standard twin's results failed (%s: %s): the cell trains", cid,
                    type(e).__name__, e)
        return None
    finally:
        phase["name"] = "config"
        phase["started"] += time.time() - t0


def twin_of(parts) -> str | None:
    """The id of the cell's standard twin when the cell may take its results (``reuse_standard`` and ``resume``: a
    run that asks for fresh results trains; a method that trains as the standard one here; one process, no saved
    model) and the twin's complete record exists; else None."""
    if not (parts.run.reuse_standard and parts.run.resume and not parts.train.save_model
            and distributed.num_gpus(parts) == 1 and not distributed.in_child()
            and parts.method.trains_as_standard(noise_rate(parts.injector))):
        return None
    twin = cell_id({**parts.header.config, "method": dict(NEUTRAL_PARTS["method"])})
    if not records.is_complete(Path(parts.header.results), twin, parts.eval.checkpoints.stop_after):
        log.info("no complete record of its standard twin %s (or it ended short of this cell's "
                 "eval.checkpoints.stop_after): the cell trains", twin)
        return None
    return twin


def borrowed(parts, cid: str, twin: str, phase: dict) -> dict | None:
    """The cell's record (without the names ``run_cell`` adds) from its twin's, its files copied beside it; None
    when its data or training pairs differ from the twin's (then it trains). ``phase`` names the running phase."""
    results = Path(parts.header.results)
    src, cell_dir = records.read_record(results, twin), records.cell_dir(results, cid)
    t = {"config": time.time() - phase["started"]}
    progress.quiet_libraries()
    phase["name"] = "data"
    t0 = time.time()
    data = data_mod.load(parts.data, parts.model, parts.cache_root, columns=getattr(parts.injector, "data_columns", ()))
    t["data"] = time.time() - t0
    phase["name"] = "noise"
    t0 = time.time()
    _, trained, _, noise_stats = noising.inject(parts, data.train, cell_dir)
    t["noise"] = time.time() - t0
    ours = {"data_fingerprint": data.fingerprint, "train_fingerprint": provenance.fingerprint_pairs(trained)}
    theirs = {k: (src.get("provenance") or {}).get(k) for k in ours}
    if ours != theirs:
        log.warning("cell %s: its standard twin %s trained on other pairs (%s vs %s): the cell trains", cid, twin,
                    ours, theirs)
        return None
    phase["name"] = "borrow"
    t0 = time.time()
    record, metrics, directions = parts.method.standard_result(trained)
    for name in FILES:
        if (records.cell_dir(results, twin) / name).exists():
            shutil.copyfile(records.cell_dir(results, twin) / name, cell_dir / name)
    t["borrow"] = time.time() - t0
    t["total"] = sum(t.values())
    log.info("cell %s would train as its standard twin %s did: its results taken from that record", cid, twin)
    return {
        **{k: src[k] for k in RESULTS if k in src},
        "method": parts.method.name,
        "loss_label": parts.label,
        "metrics": {**src["metrics"], **metrics},
        "metric_info": {**src["metric_info"], **infos(directions, parts.method.name)},
        "noise_stats": noise_stats,
        "timings": t,
        "borrowed_from": {"cell_id": twin, "sweep": src.get("sweep"), "timings": src.get("timings"),
                          "versions": src.get("versions"), "finished_at": src.get("finished_at")},
        **record,
    }
