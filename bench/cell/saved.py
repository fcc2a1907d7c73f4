"""``train.save_model``: the trained policy kept in the cell's folder, with a model card that says what it is.

    results/cells/<cell id>/model/   the adapter alone under LoRA (adapter_config.json, adapter_model.safetensors:
                                     load it over its base model, named in adapter_config.json), else the whole
                                     model; the tokenizer; README.md, the model card: the cell's loss, noise, rate,
                                     seed, metrics, noise statistics, record id and resolved config

Off by default (a 135M-parameter policy is 0.5 GB per cell); saving changes no result, so it is not part of the
cell's identity.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.core.files import atomic_write_text
from bench.training import lora

FOLDER = "model"


def save_model(policy, tokenizer, cell_dir: Path, record: dict) -> dict:
    """Save ``policy`` (a ``PeftModel`` saves its adapter) and its card; returns what the record says of it."""

    folder = Path(cell_dir) / FOLDER
    adapter = lora.is_peft(policy)
    lora.save_policy(policy, tokenizer, folder)
    base = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path") if adapter else None
    atomic_write_text(folder / "README.md", model_card(record, adapter=adapter, base_model=base))
    return {"path": FOLDER, "kind": "adapter" if adapter else "full model", "base_model": base,
            "files": sorted(p.name for p in folder.iterdir())}


def model_card(record: dict, adapter: bool, base_model: str | None = None) -> str:
    """A Hugging Face model card (YAML front matter, then Markdown) for a cell's trained policy."""
    cfg = record.get("config") or {}
    metrics = record.get("metrics") or {}
    rows = "\n".join(f"| `{k}` | {v:.6g} |" if isinstance(v, float) else f"| `{k}` | {v} |"
                     for k, v in sorted(metrics.items()) if isinstance(v, (int, float)))
    what = ("a LoRA adapter (load it over the base model named in `adapter_config.json`)" if adapter
            else "the whole trained model")
    front = ["---", f"library_name: {'peft' if adapter else 'transformers'}", "tags: [prefnoise, preference-optimization, "
             f"label-noise, {record.get('loss')}]"] + ([f"base_model: {base_model}"] if base_model else []) + ["---"]
    body = [
        f"# prefnoise cell `{record.get('cell_id')}`",
        "",
        f"The policy trained by one prefnoise cell: {what}. Record: `results/cells/{record.get('cell_id')}/record.json`.",
        "",
        "| | |", "|---|---|",
        f"| loss | {record.get('loss_label') or record.get('loss')} |",
        f"| method | {record.get('method')} |",
        f"| noise | {record.get('noise')} at rate {record.get('rate')} (seed {record.get('seed')}) |",
        f"| data / model | {record.get('data')} / {record.get('model')} |",
        f"| training steps | {record.get('train_steps')} |",
        f"| LoRA | {json.dumps((record.get('provenance') or {}).get('lora'))} |",
        "",
        "## Metrics (held-out prompts)", "", "| metric | value |", "|---|---|", rows or "| (none) | |",
        "", "## Noise", "", "```json", json.dumps(record.get("noise_stats") or {}, indent=1, default=str), "```",
        "", "## Config (resolved)", "", "```json", json.dumps(cfg, indent=1, sort_keys=True, default=str), "```", "",
    ]
    return "\n".join(front + body)

