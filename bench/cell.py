"""One sweep cell: data -> label noise -> training through TRL -> evaluation -> one record under results/.

A cell is identified by a hash of what determines its result (data, model, loss, noise, training, evaluation,
seed), not of where it runs or how it is logged, so a re-run of a sweep finds the cells already done.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import distributed, records
from bench.cache import stable_hash

log = logging.getLogger("prefnoise")

# config keys that do not change a cell's result: where it writes, how it logs, what it is called
NON_DETERMINING = ("paths", "logger", "hydra", "sweep", "resume", "cluster")
PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "hydra-core", "numpy", "prefnoise")


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
    return out


def cell_id(cfg: DictConfig) -> str:
    c = OmegaConf.to_container(cfg, resolve=True)
    if (c.get("method") or {}).get("name", "standard") == "standard":
        c.pop("method", None)  # the default method: ids of cells recorded before methods existed stay valid
    train = c.get("train") or {}
    if int(train.get("num_gpus", 1) or 1) == 1:
        train.pop("num_gpus", None)  # one device, as before the option existed: those cells keep their ids
    if "progress" in train:
        train["progress"] = True  # progress bars do not change a result; True keeps the ids recorded with them on
    return stable_hash({k: v for k, v in c.items() if k not in NON_DETERMINING})


def _identity(cfg: DictConfig) -> dict:
    return {
        "sweep": cfg.get("sweep", "default"),
        "loss": cfg.loss.name,
        "noise": cfg.noise.name,
        "rate": float(cfg.noise.rate),
        "seed": int(cfg.seed),
        "data": cfg.data.name,
        "model": cfg.model.name,
    }


def run_cell(cfg: DictConfig) -> dict:
    """Run (or skip, if its complete record exists) one cell; always leaves a record. Returns the record."""
    results = Path(cfg.paths.results)
    cid = cell_id(cfg)
    if cfg.get("resume", True) and records.is_complete(results, cid):
        log.info("cell %s already complete: skipped", cid)
        return {**records.read_record(results, cid), "skipped": True}
    set_threads(int(cfg.get("threads", 1)))
    base = {"cell_id": cid, **_identity(cfg), "config": OmegaConf.to_container(cfg, resolve=True), "versions": versions()}
    if distributed.needs_launch(cfg):  # train.num_gpus > 1: its own `accelerate launch`; rank 0 writes the record
        return distributed.launch_cell(cfg, cid, results, base)
    phase = {"name": "setup"}
    try:
        rec = _run(cfg, cid, results, phase)
        if rec is None:  # a non-zero rank of a multi-GPU cell: rank 0 evaluates and records
            return {"cell_id": cid, "status": "ok", "rank": os.environ.get("RANK")}
        rec = {**base, **rec, "status": "ok", "error": None}
    except Exception as e:  # the failure is recorded; results of other cells are untouched
        tb = traceback.extract_tb(e.__traceback__)
        where = f"{phase['name']}: {tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else phase["name"]
        rec = {**base, "status": "failed", "error": {"type": type(e).__name__, "message": str(e), "where": where}}
        records.write_record(results, rec)
        log.error("cell %s failed in %s: %s: %s", cid, where, type(e).__name__, e)
        raise
    records.write_record(results, rec)
    log.info("cell %s done: %s", cid, {k: round(v, 4) for k, v in rec["metrics"].items() if isinstance(v, float)})
    return rec


def _run(cfg: DictConfig, cid: str, results: Path, phase: dict) -> dict:
    import torch

    import noise as noise_pkg
    from bench import data as data_mod
    from bench import losses, ropo_full, trainer as tr
    from bench.evaluate import evaluate_policy
    from bench.models import load_causal_lm
    from bench.ref_cache import ReferenceLogpCache

    t = {}
    cell_dir = records.cell_dir(results, cid)
    c = lambda node: OmegaConf.to_container(node, resolve=True)  # noqa: E731

    # cheap checks first: a bad loss, noise name or rate fails before any data is built or model trained
    phase["name"] = "config"
    ncfg = c(cfg.noise)
    name, rate, nseed = ncfg.pop("name"), float(ncfg.pop("rate")), int(ncfg.pop("seed", cfg.seed))
    injector = noise_pkg.get(name, rate=rate, seed=nseed, **ncfg)
    loss = losses.from_config(c(cfg.loss), noise_rate=rate)
    method = c(cfg.method) if "method" in cfg else {"name": "standard"}
    ropo = None
    if ropo_full.method_name(method) == "ropo_full":  # ROPO's full method: bench/ropo_full.py
        ropo = ropo_full.RopoFullConfig.from_dict(method)
        ropo_full.check_loss(loss, ropo)

    phase["name"] = "data"
    t0 = time.time()
    data = data_mod.load(c(cfg.data), c(cfg.model), cfg.paths.cache)
    t["data"] = time.time() - t0

    phase["name"] = "noise"
    t0 = time.time()
    noisy = injector(data.train)
    noise_stats = injector.summary(noisy)
    noise_pkg.save_mask(noisy, cell_dir / "flip_mask.json")
    t["noise"] = time.time() - t0

    phase["name"] = "train"
    t0 = time.time()
    device = tr.pick_device(cfg.train.device)
    torch.manual_seed(int(cfg.seed))
    policy, tokenizer = load_causal_lm(data.model_path, device)
    t["load_model"] = time.time() - t0
    ref_cache = None
    if cfg.get("shared_ref_cache", True):
        key = {"data": data.fingerprint, "model": data.model_path, "max_length": cfg.train.get("max_length")}
        ref_cache = ReferenceLogpCache(cfg.paths.cache, key)
    extra = {"record": {}, "metrics": {}, "metric_info": {}}  # what a method adds to the record
    if ropo is not None:  # rounds of the same trainer path, loss-based filtering, rejection sampling
        t0 = time.time()
        run = ropo_full.train_ropo_full(
            policy=policy, tokenizer=tokenizer, train_dataset=noisy, loss=loss, method_cfg=method,
            train_cfg=c(cfg.train), out_dir=cell_dir, seed=int(cfg.seed), reference_path=data.model_path,
            ref_cache=ref_cache, report_to=_report_to(cfg), gold_reward=data.gold_reward,
            max_new_tokens=int(cfg.data.get("max_new_tokens") or cfg.eval.max_new_tokens), log=log.info,
        )
        t["trainer_init"] = run.timings["trainer_init"]
        t["train"] = time.time() - t0 - t["trainer_init"]  # includes filtering and candidate sampling
        train_loss, train_steps, history = run.training_loss, run.global_step, run.log_history
        extra = {"record": {**run.record, "ropo_full_timings": run.timings}, "metrics": run.metrics,
                 "metric_info": run.metric_info}
    else:
        t0 = time.time()
        args = tr.dpo_config(c(cfg.train), cell_dir / "trainer", int(cfg.seed), report_to=_report_to(cfg))
        trainer = tr.PreferenceTrainer(
            model=policy, args=args, train_dataset=noisy, processing_class=tokenizer, pref_loss=loss, ref_cache=ref_cache
        )
        t["trainer_init"] = time.time() - t0  # includes the reference pass, unless the shared cache had it
        t0 = time.time()
        train_out = trainer.train()
        policy.eval()
        t["train"] = time.time() - t0
        if not trainer.accelerator.is_main_process:  # multi-GPU cell (bench/distributed.py): rank 0 goes on alone
            return None
        history = [h for h in trainer.state.log_history if "loss" in h]
        train_loss, train_steps = float(train_out.training_loss), int(trainer.state.global_step)
    records.atomic_write_text(cell_dir / "train_log.jsonl", "".join(_jsonl(h) for h in history))

    phase["name"] = "evaluate"
    t0 = time.time()
    ref_model, _ = load_causal_lm(data.model_path, device)
    metrics, info, samples = evaluate_policy(
        policy, ref_model, tokenizer, data, loss, c(cfg.eval),
        list((c(cfg.evaluator) if "evaluator" in cfg else {}).values()),  # evaluator=[] leaves no node
        int(cfg.seed),
        cache_root=cfg.paths.cache,
    )
    records.atomic_write_text(cell_dir / "samples.jsonl", "".join(_jsonl(s) for s in samples))
    t["evaluate"] = time.time() - t0
    t["total"] = sum(t.values())
    metrics["train_loss"] = float(train_loss)
    info["train_loss"] = {"higher_is_better": False, "evaluator": "train"}
    metrics.update(extra["metrics"])
    info.update(extra["metric_info"])
    return {
        "method": method.get("name", "standard"),
        "loss_label": getattr(loss, "label", loss.name),
        "loss_params": dict(loss.params),
        "eps_source": getattr(loss, "eps_source", None),
        "metrics": metrics,
        "metric_info": info,
        "noise_stats": noise_stats,
        "n_train_pairs": len(noisy),
        "train_steps": int(train_steps),
        "timings": t,
        **extra["record"],  # ropo_full: its label, per-round filter stats
    }


def _report_to(cfg: DictConfig) -> str:
    return "wandb" if cfg.get("logger", {}).get("name") == "wandb" else "none"


def _jsonl(obj: dict) -> str:
    import json

    return json.dumps(obj, default=str) + "\n"
