"""Whether the cells one table compares were made alike: the report's warning when they were not.

A record states how it was made (``provenance`` and ``versions``, ``bench.cell.provenance``). Within one table
every cell should share the effective batch size, world size, device, precision, LoRA settings, data, evaluator
models, the versions of torch, transformers, trl, datasets and peft, and the project's commit; and the cells of one
(noise, rate, seed) should have trained on the same pairs (the paired tests assume one noise mask per seed). Each
difference is one line: the field, then each value with its number of cells.

Records written before a field existed are compared on what can be told from their config (the batch, processes
and LoRA settings are in it) and otherwise left out of that field's comparison; the warning says how many
predate the provenance block.
"""
from __future__ import annotations

import json
from collections import Counter

# (what the warning calls it, where a record holds it)
FIELDS = (
    ("effective batch size", ("provenance", "effective_batch_size")),
    ("world size", ("provenance", "world_size")),
    ("device", ("provenance", "device")),
    ("device name", ("provenance", "device_name")),
    ("dtype", ("provenance", "dtype")),
    ("LoRA", ("provenance", "lora")),
    ("data fingerprint", ("provenance", "data_fingerprint")),
    ("evaluator models", ("provenance", "evaluators")),
    ("torch", ("versions", "torch")),
    ("transformers", ("versions", "transformers")),
    ("trl", ("versions", "trl")),
    ("datasets", ("versions", "datasets")),
    ("peft", ("versions", "peft")),
    ("prefnoise", ("versions", "prefnoise")),
    ("project commit", ("versions", "prefnoise_commit")),
)
MISSING = object()


def value_of(record: dict, path: tuple[str, str]):
    """A record's value of a field, from its config where an older record did not state it; MISSING if unknown."""
    block, key = path
    held = record.get(block) or {}
    if key in held:
        value = held[key]
        return value.removesuffix("+dirty") if key == "prefnoise_commit" and isinstance(value, str) else value
    train = ((record.get("config") or {}).get("train")) or {}
    if block == "provenance" and train:
        if key == "lora" and "provenance" not in record:
            return train.get("lora")  # absent from an older config: full fine-tuning, the only kind there was
        if key in ("effective_batch_size", "world_size") and "batch_size" in train:
            world = int(train.get("num_gpus") or 1)
            return world if key == "world_size" else (int(train["batch_size"]) * int(
                train.get("gradient_accumulation_steps") or 1) * world)
    return MISSING


def _text(value) -> str:
    return "none" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def mixing_warnings(records: list[dict]) -> list[str]:
    """One line per field the complete cells of ``records`` differ in (empty: they were made alike)."""
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    out = []
    for name, path in FIELDS:
        seen = Counter(_text(v) for v in (value_of(r, path) for r in ok) if v is not MISSING)
        if len(seen) > 1:
            out.append(f"{name} differs: " + "; ".join(f"{v} ({n} cells)" for v, n in sorted(seen.items())))
    out += _pairs_differ(ok)
    old = sum("provenance" not in r for r in ok)
    if out and old:
        out.append(f"{old} of {len(ok)} cells predate the provenance block (device, precision, data fingerprints and "
                   "evaluator models unrecorded): they are compared on their config alone")
    return out


def _pairs_differ(records: list[dict]) -> list[str]:
    """Cells of one (noise, rate, seed) trained on different pairs: the paired tests' one mask per seed is broken."""
    groups: dict[tuple, set] = {}
    for r in records:
        fp = (r.get("provenance") or {}).get("train_fingerprint")
        if fp:
            groups.setdefault((r.get("noise"), r.get("rate"), r.get("seed")), set()).add(fp)
    bad = sorted((k for k, v in groups.items() if len(v) > 1), key=str)
    if not bad:
        return []
    where = ", ".join(f"{n}@{r} seed {s}" for n, r, s in bad[:5]) + (" ..." if len(bad) > 5 else "")
    return [f"training pairs differ within {len(bad)} (noise, rate, seed) group(s) ({where}): the cells compared "
            "there did not train on the same noisy pairs"]
