"""One sweep cell: check -> data -> label noise -> training (the cell's method) -> evaluation -> one record.

A cell is identified by a hash of what determines its result (``bench.cell.identity``), so a re-run of a sweep
finds the cells already done whatever machine, thread count or results folder it runs with. Phases, each timed:

    config    build and check every part (bench.cell.parts): a bad value fails here, before any data
    data      the preference data (the embedded world is built once and cached)
    scores    (only when the loss or method reads them) the scorer scores every clean response, cached
    noise     the injector flips the training pairs; the mask is saved
    train     the method trains the policy (one TRL run, or ROPO's rounds, or a user's method; LoRA adapters
              under ``train.lora``)
    evaluate  samples on held-out prompts, core metrics, every evaluator; with ``train.save_model`` the trained
              policy (or adapter) and its model card are kept in ``<cell>/model`` (``bench.cell.saved``)

Besides its results, a record says how they were made (``provenance``: batch, processes, device, precision,
LoRA, data fingerprints, evaluator models; ``bench.cell.provenance``) and with which package versions. A cell whose
method would train exactly as ``method=standard`` (a cleaner naming no pair) takes its standard twin's results from
that cell's record after its noise phase (``bench.cell.borrow``).
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig

from bench import data as data_mod
from bench.cell import borrow, distributed, extras, noising, provenance
from bench.cell.checkpoints import CellCheckpoints
from bench.cell.identity import cell_id
from bench.cell.parts import Header, Parts, build_parts
from bench.cell.saved import save_model
from bench.core import progress, records
from bench.core.cache import stable_hash
from bench.core.files import atomic_write_json, atomic_write_text, jsonl_text
from bench.core.metrics import COUNTER, infos
from bench.core.options import ConfigError
from bench.data import text_rows
from bench.evaluation import scorer as scoring
from bench.evaluation.checkpoints import PolicyEvaluation
from bench.evaluation.validation import proxy_reward_model
from bench.methods import TrainContext
from bench.models import load_causal_lm
from bench.models.devices import pick_device, use_bf16
from bench.training import lora
from bench.training.ref_cache import ReferenceLogpCache

log = logging.getLogger("prefnoise")

PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "hydra-core", "numpy", "prefnoise")


def set_threads(n: int) -> None:
    """One torch thread per process by default: 2 threads are several times slower on small CPU machines."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            pass
    commit = provenance.project_commit()
    if commit:
        out["prefnoise_commit"] = commit
    return out


def decide(cfg: DictConfig) -> tuple[str, bool]:
    """(the cell's id, whether its complete record exists and ``resume`` lets it be skipped): decided once."""
    cid = cell_id(cfg)
    stop_after = (cfg.get("eval") or {}).get("checkpoints", {}).get("stop_after")
    return cid, bool(cfg.resume) and records.is_complete(Path(cfg.paths.results), cid, stop_after)


def run_cell(cfg: DictConfig, slot: int = 0, hp_source: dict | None = None, decided: tuple | None = None) -> dict:
    """Run (or skip, if its complete record exists) one cell; always leaves a record. Returns the record.

    ``slot`` is the row of the cell's progress bar (its place among the cells running at once); ``hp_source`` says
    where its training and loss values came from (``bench.tune.apply``: the defaults, or a tuning selection);
    ``decided``: (its id, whether it is complete) as the job decided them (``decide``), so they are decided once.

    The raw config enters here and goes no further: its id and skip, its ``Header`` (what names it, also in the
    record of a cell whose parts fail their checks) and its typed ``Parts``, which every phase and the record read.
    """
    cid, complete = decided or decide(cfg)
    head = Header.of(cfg)
    source = hp_source or {"source": "default"}
    if complete:
        log.info("cell %s already complete: skipped", cid)
        records.note_hp_source(head.results, cid, source)
        return {**records.read_record(head.results, cid), "skipped": True}
    base = {**_named(head, cid), "versions": versions(), "hp_source": source, "hp_sources": [source]}
    phase = {"name": "config", "started": time.time()}
    with _failure_recorded(base, head.results, phase):
        parts = build_parts(cfg, head)  # cheap checks first: a bad value fails before any data or model
    rec = borrow.attempt(parts, cid, phase)  # a cell that trains as its standard twin did: that record's results
    if rec is not None:
        return _written({**base, **rec}, head.results, cid)
    if distributed.needs_launch(parts):  # train.num_gpus > 1: its own `accelerate launch`; rank 0 writes the record
        # the one phase that takes the composed config itself: the launch writes it for its ranks, which run this cell
        return distributed.launch_cell(cfg, cid, head.results, base, parts)
    with _failure_recorded(base, head.results, phase), progress.open_bar(head.name, slot, parts.train.progress):
        rec = _run(parts, cid, phase)
    if rec is None:  # a non-zero rank of a multi-GPU cell: rank 0 evaluates and records
        return {"cell_id": cid, "status": "ok", "rank": os.environ.get("RANK")}
    return _written({**base, **rec}, head.results, cid)


def _sources(results, cid: str, rec: dict) -> list[dict]:
    """The sources of values a new complete record serves: its own, and those of the complete record it replaces
    that it still serves (``records.serves``): a longer run serves the rules a run that ended early did
    (``eval.checkpoints.stop_after``), a run that ends earlier only the checkpoints it reaches."""
    earlier = records.read_record(results, cid) if results else None
    carried = records.sources_of(earlier) if earlier and earlier.get("status") == "ok" else []
    return records.with_source([s for s in carried if records.serves(rec, s)], rec["hp_source"])


def _written(rec: dict, results, cid: str) -> dict:
    """The cell's complete record, written (with every source of values it serves)."""
    rec = {**rec, "status": "ok", "error": None}
    rec["hp_sources"] = _sources(results, cid, rec)
    records.write_record(results, rec)
    log.info("cell %s done: %s", cid, {k: round(v, 4) for k, v in rec["metrics"].items() if isinstance(v, float)})
    return rec


def _named(head: Header, cid: str) -> dict:
    """What names a cell and the config it ran, as its record and its saved model's card keep them."""
    return {"cell_id": cid, **head.names, "config": provenance.safe_config(head.config)}


@contextmanager
def _failure_recorded(base: dict, results, phase: dict) -> Iterator[None]:
    """A failure in the block is recorded (the cell's header, the error, the phase it failed in) and raised again;
    results of other cells are untouched."""
    try:
        yield
    except Exception as e:
        cid = base["cell_id"]
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{phase['name']}: {tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else phase["name"]
        records.write_record(results, {**base, "status": "failed",
                                       "error": {"type": type(e).__name__, "message": str(e), "where": where}})
        if isinstance(e, ConfigError):  # a bad value or unreadable data: one line (the job's), the traceback in run.log
            log.info("cell %s failed in %s: %s: %s", cid, where, type(e).__name__, e, exc_info=True)
        else:
            log.error("cell %s failed in %s: %s: %s", cid, where, type(e).__name__, e)
            log.info("traceback of cell %s", cid, exc_info=True)
        raise


def _run(parts: Parts, cid: str, phase: dict) -> dict | None:
    """The cell's phases, from its parts alone; ``phase`` names the one running (``started``: when the config phase
    began). None on a non-zero rank of a multi-GPU cell."""
    t: dict[str, float] = {}
    cell_dir = records.cell_dir(Path(parts.header.results), cid)
    _gpu_memory(reset=True)  # several cells in one process (the basic launcher): each its own peak
    set_threads(parts.run.threads)
    progress.quiet_libraries()  # no library bars or chatter: the cell's own bar shows where it is
    t["config"] = time.time() - phase["started"]

    phase["name"] = "data"
    t0 = time.time()
    data = data_mod.load(parts.data, parts.model, parts.cache_root, columns=getattr(parts.injector, "data_columns", ()))
    t["data"] = time.time() - t0

    scorer = None
    if parts.scorer is not None and parts.scorer.name != "none":
        phase["name"] = "scores"  # the scorer's reward model (trained once, cached) scores every clean response
        t0 = time.time()
        data.train, scorer = extras.with_scores(parts, data, parts.noise_node, parts.cache_root)
        t["scores"] = time.time() - t0

    phase["name"] = "noise"
    t0 = time.time()
    noisy, trained, rows_key, noise_stats = noising.inject(parts, data.train, cell_dir)
    t["noise"] = time.time() - t0

    phase["name"] = "train"
    train_fingerprint = provenance.fingerprint_pairs(trained)  # the pairs as trained, after the noise
    policy, result, t_load, checkpoints, ctx = _train(parts, data, (noisy, trained, rows_key), cell_dir, scorer)
    t.update(load_model=t_load, trainer_init=result.timings["trainer_init"],
             train=result.timings["train"] - checkpoints.seconds)
    if checkpoints.points:
        t["checkpoints"] = checkpoints.seconds  # scoring within the run, apart from its training steps
    if not result.is_main_process:  # multi-GPU cell (bench.cell.distributed): rank 0 goes on alone
        return None
    atomic_write_text(cell_dir / "train_log.jsonl", jsonl_text(result.log_history))

    phase["name"] = "evaluate"
    t0 = time.time()
    final, curve = _evaluate(checkpoints, ctx.policy, int(result.global_step), cell_dir)  # under LoRA: the PeftModel
    t["evaluate"] = time.time() - t0
    t["total"] = sum(t.values())
    if result.timings.get("parts"):  # inside train already: named apart (rm_ensemble's cached ensemble, ...)
        t["train_parts"] = dict(result.timings["parts"])
    rec = _record(parts, final, result, curve, t, scorer, (noisy, trained, noise_stats),
                  _provenance(parts, data, ctx.policy, train_fingerprint))
    if checkpoints.stopped:
        rec["stopped"] = checkpoints.stopped
        rec["curve"] = curve  # one point (the end) where it stopped at its first checkpoint: where it was read
    if parts.train.save_model:
        rec["saved_model"] = _save_model(parts, cid, ctx, cell_dir, rec)
    return rec


def _evaluate(checkpoints, policy, global_step: int, cell_dir: Path):
    """(the end's scores, the curve over the checkpoints); the samples behind them and the margins written beside
    the record."""
    final = checkpoints.evaluate(policy, final=True)
    atomic_write_text(cell_dir / "samples.jsonl", jsonl_text(final.samples))
    if final.val_samples:
        atomic_write_text(cell_dir / "val_samples.jsonl", jsonl_text(final.val_samples))
    curve = checkpoints.curve(global_step, final)
    atomic_write_json(cell_dir / "margins.json", checkpoints.margins(curve, final))
    return final, curve


def _record(parts: Parts, final, result, curve: list, timings: dict, scorer, noise: tuple, prov: dict) -> dict:
    """The cell's record (``bench.core.records``) from its phases; ``noise``: (the noisy pairs, the pairs trained
    on, the noise's record)."""
    noisy, trained, noise_stats = noise
    metrics, info = final.metrics, final.info
    gpu = _gpu_memory()
    metrics["train_loss"] = float(result.training_loss)  # each loss's own scale: shown, never compared
    info.update(infos({"train_loss": COUNTER}, "train"))
    metrics.update(result.metrics)
    info.update(infos(result.directions, parts.method.name))
    return {
        "method": parts.method.name,
        "loss_label": parts.label,
        "loss_params": dict(getattr(parts.loss, "params", {}) or {}),
        "eps_source": getattr(parts.loss, "eps_source", None),
        "metrics": metrics,
        "metric_info": info,
        "noise_stats": noise_stats,
        "n_train_pairs": len(trained),
        "train_steps": int(result.global_step),
        "timings": timings,
        **({"gpu": gpu} if gpu else {}),
        **({"curve": curve} if len(curve) > 1 else {}),  # the policy at each checkpoint; the last one is the end
        "scorer": None if scorer is None else {**scorer.info, **scoring.agreement(noisy)},
        "loss_learned": noising.learned_vs_injected(parts.loss, noise_stats) or None,
        "provenance": prov,
        **result.record,  # what the method adds (ropo_full: its per-round filter stats)
    }


def _save_model(parts: Parts, cid: str, ctx, cell_dir: Path, rec: dict) -> dict:
    """``train.save_model``: the trained policy (its adapter under LoRA) and its card (``bench.cell.saved``)."""
    return save_model(ctx.policy, ctx.tokenizer, cell_dir, {**_named(parts.header, cid), **rec})


def _provenance(parts: Parts, data, trained, train_fingerprint: str) -> dict:
    """The record's ``provenance`` block (``bench.cell.provenance``)."""

    device = pick_device(parts.train.device)
    param_dtype = next(trained.parameters()).dtype
    return {**provenance.training_setup(parts.train, device, use_bf16(parts.train.bf16, device), param_dtype,
                                        provenance.world_size()),
            "lora": lora.settings(parts.train.lora), "parameters": lora.parameter_counts(trained),
            "data_fingerprint": data.fingerprint, "train_fingerprint": train_fingerprint,
            "evaluators": provenance.evaluator_ids(parts.evaluators)}


def _train(parts: Parts, data, pairs: tuple, cell_dir: Path, scorer=None):
    """The cell's method trains a fresh copy of the reference policy; returns it, the method's result, the time it
    took to load the model, and the cell's checkpoint scorer (``bench.evaluation.checkpoints``: it scored the
    policy within the run where ``eval.checkpoints.every`` says, and scores the end). ``pairs``: (the noisy pairs,
    the ones it trains on, the key of those rows or None), as ``noising.inject`` gives them."""
    import torch

    t0 = time.time()
    device = pick_device(parts.train.device)
    torch.manual_seed(parts.run.seed)
    policy, tokenizer = load_causal_lm(data.model_path, device)
    t_load = time.time() - t0
    noisy, trained, rows_key = pairs
    # a subset of the pairs (skipped or tied ones left out) is data of its own: its own key, wherever one is used
    data_key = data.fingerprint if rows_key is None else stable_hash([data.fingerprint, rows_key])
    ref_cache = None
    if parts.run.shared_ref_cache:
        key = {"data": data.fingerprint, "model": data.model_path, "max_length": parts.train.max_length,
               **({"path": "packed"} if parts.train.packing else {}),  # the path computes them (float round-off)
               **({"prompts": "shared"} if parts.train.packing and parts.train.share_prompt else {}),
               **({"rows": rows_key} if rows_key is not None else {})}
        ref_cache = ReferenceLogpCache(parts.cache_root, key)
    evaluation = PolicyEvaluation(data, parts, noisy, tokenizer, parts.noise_node, parts.cache_root)
    checkpoints = CellCheckpoints(evaluation, parts.eval.checkpoints, _stop_after(parts))
    ctx = TrainContext(
        policy=policy, tokenizer=tokenizer, train_dataset=trained, loss=parts.loss, train=parts.train,
        out_dir=cell_dir, seed=parts.run.seed, reference_path=data.model_path, ref_cache=ref_cache,
        report_to="wandb" if parts.wandb else "none",
        gold_reward=data.gold_reward, max_new_tokens=int(getattr(parts.data, "max_new_tokens", 0) or
                                                         parts.eval.max_new_tokens),
        log=log.info, scorer=scorer, extra_columns=extras.columns(parts.loss, parts.method),
        cache_root=parts.cache_root, data_key=data_key, heldout_pairs=text_rows(data.eval_pairs) or None,
        callbacks=checkpoints.callbacks, noise_rate=borrow.noise_rate(parts.injector),
        proxy_reward_model=lambda: proxy_reward_model(data, parts.eval.validation.proxy_rm, parts.noise_node,
                                                      parts.run.seed, parts.cache_root),
    )
    return policy, parts.method.train(ctx), t_load, checkpoints, ctx  # ctx.policy: under LoRA, its PeftModel


def _stop_after(parts: Parts) -> float | None:
    """Where the run may end (``eval.checkpoints.stop_after``): None for a method that does not say it can stop
    there (``Method.stops_early``: every built-in one does; a method of your own runs to its end unless it says so)."""
    stop_after = parts.eval.checkpoints.stop_after
    if stop_after is not None and not getattr(parts.method, "stops_early", False):
        log.info("method %s does not say it can end at a checkpoint (Method.stops_early): it runs to its end "
                 "(eval.checkpoints.stop_after=%g)", parts.method.name, stop_after)
        return None
    return stop_after


def _gpu_memory(reset: bool = False) -> dict | None:
    """The GPU this process used and the most memory it allocated on it since the cell began (None on the CPU)."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    return {"name": torch.cuda.get_device_name(), "peak_memory_bytes": int(torch.cuda.max_memory_allocated())}
