"""What a record says about how its numbers were made, beyond its config: enough to reproduce the cell elsewhere
and to see when two cells a report compares were not made alike (``bench.report.provenance``).

``provenance`` (one block of the record):

    effective_batch_size   pairs per optimizer step: per-device batch x gradient accumulation x processes
    per_device_batch_size, gradient_accumulation_steps, world_size (processes that trained)
    device, device_name    where it trained (cuda / cpu, and the GPU's or CPU's name)
    dtype, param_dtype     the compute precision (bfloat16 under bf16 autocast, else the weights') and the weights'
    lora                   the LoRA settings (rank, alpha, dropout, target_modules) or None (full fine-tuning)
    parameters             {"trainable", "total"} of the policy as trained (the adapter's and the whole model's)
    data_fingerprint       the clean data the cell loaded (the same for every cell of one data set and model)
    train_fingerprint      the pairs as trained: prompt, chosen, rejected in training order, after the noise (the
                           same for every loss of one data set, noise, rate and seed)
    evaluators             per evaluator, the models behind its numbers: an LLM judge's model id and base-URL host
                           (never its key, never a user:password part or a path), a reward model's path and backbone

``versions`` gains ``peft`` and ``prefnoise_commit`` (the project's git commit, ``+dirty`` when tracked files
differ from it; absent outside a git checkout). The record's ``config`` is ``safe_config``'s: no key that looks
like a secret, no user:password in a URL, nothing shaped like an API key.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from bench.cell.wandb_log import scrub
from bench.rewards.backbones import KIND as BACKBONES
from bench.rewards.load import EMBEDDED
from evaluators.judge.client import redact, safe_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def fingerprint_pairs(rows) -> str:
    """A hash of the preference pairs in order: each row's prompt, chosen and rejected (text or messages)."""
    h = hashlib.sha256()
    for prompt, chosen, rejected in zip(rows["prompt"], rows["chosen"], rows["rejected"]):
        h.update(json.dumps([prompt, chosen, rejected], sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def training_setup(train, device: str, bf16: bool, param_dtype, world_size: int) -> dict:
    """The batch, processes, device and precision a cell trained with (``train``: its typed TrainConfig)."""
    per_device, accumulation = int(train.batch_size), int(train.gradient_accumulation_steps)
    return {"effective_batch_size": per_device * accumulation * int(world_size),
            "per_device_batch_size": per_device, "gradient_accumulation_steps": accumulation,
            "world_size": int(world_size), "device": device, "device_name": device_name(device),
            "dtype": "bfloat16" if bf16 else str(param_dtype).replace("torch.", ""),
            "param_dtype": str(param_dtype).replace("torch.", "")}


def world_size() -> int:
    """Processes of this cell's training (``accelerate launch`` sets WORLD_SIZE; 1 otherwise)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE") or 1))
    except ValueError:
        return 1


def device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return _cpu_name()


@lru_cache(maxsize=1)
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_of(url: str | None) -> str | None:
    """The host (and port) of a URL: no scheme, no user:password, no path or query."""
    if not url:
        return None
    parts = urlsplit(url if "//" in url else f"//{url}")
    if not parts.hostname:
        return None
    return parts.hostname + (f":{parts.port}" if parts.port else "")


def evaluator_ids(evaluators) -> dict[str, dict]:
    """The models behind each evaluator's numbers, by evaluator name."""
    out = {}
    for ev in evaluators or []:
        name = str(getattr(ev, "name", type(ev).__name__))
        if hasattr(ev, "base_url") and hasattr(ev, "model"):  # an LLM judge
            out[name] = {"model": str(ev.model), "base_url_host": host_of(ev.base_url)}
        elif hasattr(ev, "path"):  # a reward model
            out[name] = {"path": str(ev.path), "backbone": _backbone(ev)}
        else:
            out[name] = {"kind": name}
    return out


def _backbone(ev) -> str | None:
    """A reward model's backbone: the embedded model's base (from its training meta), a folder's config, or the
    hub name itself."""
    meta = (getattr(ev, "last_info", None) or {}).get("meta") or {}
    if meta.get("base"):
        return str(meta["base"])
    if str(ev.path) == EMBEDDED:
        backbone = BACKBONES.get(getattr(ev, "backbone", "minilm"))
        return f"{backbone.package} ({backbone.description})"
    config = Path(str(ev.path)) / "config.json"
    if not config.is_file():
        return str(ev.path)  # a hub name names its model
    c = json.loads(config.read_text())
    arch = ",".join(c.get("architectures") or []) or "?"
    return str(c.get("_name_or_path") or f"{arch} ({c.get('model_type', '?')})")


@lru_cache(maxsize=1)
def project_commit() -> str | None:
    """The project's git commit (``+dirty`` when tracked files differ from it), None outside a git checkout."""
    if not (PROJECT_ROOT / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=PROJECT_ROOT, capture_output=True,
                               timeout=30).returncode == 1
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty and sha else (sha or None)


def safe_config(config):
    """The resolved config as a record (or a model card) keeps it: keys that look like secrets dropped (as for
    W&B), and every string with credentials in a URL or anything shaped like an API key redacted."""
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        if isinstance(obj, str):
            return redact(safe_url(obj) if "://" in obj else obj)
        return obj

    return clean(scrub(config))
