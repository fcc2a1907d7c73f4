"""Weights & Biases logging (`logger=wandb`): one W&B run per cell, finished at the end of its job.

    python bench/run.py -m logger=wandb loss=ropo,dpo noise.rate=0,0.2,0.4     # offline runs under results/wandb/
    wandb sync results/wandb/offline-run-*                                      # upload them later, if you want
    WANDB_MODE=online python bench/run.py -m logger=wandb ...                   # or logger.mode=online (`wandb login` first)

Each run: group = the `sweep` config value, job_type = the loss, tags = noise type and rate (plus logger.tags),
the resolved config minus anything that looks like a secret (W&B shows it flattened: loss.name, noise.rate),
per-step training curves (TRL's `report_to="wandb"` reuses this run: train/loss, train/rewards/*, ...), and the
cell's metrics in the run summary.
The run is finished when its job ends, failed or not (a Hydra multirun in one process would otherwise keep logging
into one run). Offline unless `logger.mode` or $WANDB_MODE says otherwise. The API key is never read here: W&B
takes it from its own login (~/.netrc or $WANDB_API_KEY), and it never enters the config or the records.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.core.options import ConfigError

log = logging.getLogger("prefnoise")

SECRET = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|password|passwd|credentials?)$", re.I)  # max_new_tokens is not
SAFE_SECRET_NAMES = re.compile(r"_env$")  # e.g. evaluator.llm_judge.api_key_env holds a variable NAME, not a key


def enabled(cfg: DictConfig) -> bool:
    return (cfg.get("logger") or {}).get("name") == "wandb"


def scrub(obj: Any) -> Any:
    """The config without keys that look like secrets (api_key, token, password, ...), at any depth."""
    if isinstance(obj, dict):
        return {
            k: scrub(v) for k, v in obj.items() if not (SECRET.search(str(k)) and not SAFE_SECRET_NAMES.search(str(k)))
        }
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: the keys as W&B shows them (and as the tests read them back)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def mode(cfg: DictConfig) -> str:
    m = (cfg.get("logger") or {}).get("mode") or os.environ.get("WANDB_MODE") or "offline"
    if m not in ("online", "offline", "disabled", "shared"):
        raise ConfigError(f"logger.mode={m!r}; valid choices: online, offline, disabled")
    return m


def run_settings(cfg: DictConfig, cid: str) -> dict:
    """The arguments of wandb.init for one cell (pure: tested without W&B)."""
    lc = cfg.logger
    container = OmegaConf.to_container(cfg, resolve=True)
    # nested, which W&B shows flattened (loss.name, noise.rate) and the dashboard's Config("noise.rate") expects
    config = scrub({k: v for k, v in container.items() if k != "hydra"})
    config["cell_id"] = cid
    rate = "none" if cfg.noise.get("rate") is None else f"{float(cfg.noise.rate):g}"  # none: a scale sets the noise
    tags = [f"noise={cfg.noise.name}", f"rate={rate}", f"data={cfg.data.name}", f"model={cfg.model.name}"]
    tags += [str(t) for t in (lc.get("tags") or [])]
    return dict(
        project=lc.get("project") or "prefnoise",
        entity=lc.get("entity") or None,
        group=str(cfg.sweep),
        job_type=str(cfg.loss.name),
        name=f"{cfg.loss.name}-{cfg.noise.name}-{rate}-s{cfg.seed}-{cid[:6]}",
        tags=[t[:64] for t in tags],
        config=config,
        dir=str(lc.get("dir") or cfg.paths.results),
        mode=mode(cfg),
        reinit="finish_previous",  # a run left open in this process (a killed job's) never absorbs this cell
    )


def start(cfg: DictConfig, cid: str):
    """Open the cell's W&B run (None when logger is not wandb). TRL's WandbCallback then logs into it."""
    if not enabled(cfg):
        return None
    import wandb

    kwargs = run_settings(cfg, cid)
    os.makedirs(kwargs["dir"], exist_ok=True)
    run = wandb.init(**kwargs)
    log.info("W&B run %s (%s, group %s) in %s", run.id, kwargs["mode"], kwargs["group"], run.dir)
    return run


def summary_of(record: dict | None) -> dict[str, Any]:
    if not record:
        return {}
    out: dict[str, Any] = {"status": record.get("status"), "cell_id": record.get("cell_id")}
    for k, v in (record.get("metrics") or {}).items():
        if isinstance(v, (int, float)):
            out[k] = v
    for k, v in (record.get("noise_stats") or {}).items():
        if isinstance(v, (int, float)):
            out[f"noise/{k}"] = v
    for k, v in (record.get("timings") or {}).items():
        out[f"time/{k}"] = v
    if record.get("error"):
        out.update({f"error/{k}": str(v) for k, v in record["error"].items()})
    if record.get("borrowed_from"):  # its results are its standard twin's (bench.cell.borrow): no training curves
        out["borrowed_from"] = record["borrowed_from"].get("cell_id")
    return out


def finish(run, record: dict | None = None, error: BaseException | None = None) -> None:
    """Write the cell's summary metrics and finish the run (exit code 1 if the cell failed). Never raises."""
    if run is None:
        return
    try:
        summary = summary_of(record)
        if error is not None and "error/type" not in summary:
            summary.update({"status": "failed", "error/type": type(error).__name__, "error/message": str(error)})
        run.summary.update(summary)
    except Exception as e:  # logging must never lose a cell's result
        log.warning("W&B summary not written: %s", e)
    failed = error is not None or (record or {}).get("status") == "failed"
    try:
        run.finish(exit_code=1 if failed else 0)
    except Exception as e:
        log.warning("W&B run not finished cleanly: %s", e)
