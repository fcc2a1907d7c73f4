"""What tells apart records of the same condition, so that a report never merges two experiments into one curve.

Two records of one (label, noise, rate, seed, data, model) have different ids, so they differ in something that
counts for a cell's identity (``bench.cell.identity``). Either a code version (the embedded world's code, which
the saved configs do not show): the newer record supersedes the older one (the report keeps the most recent
complete one and says so); or a setting
(epochs, training prompts, learning rate, a loss's knob, the checkpoints scored): both are results, of different
experiments, and each keeps its own curve, labelled by the settings that differ (``DPO [epochs=8, lr=5e-05]``;
a setting a record does not have is not shown). What is scored along the way (checkpoints, the margin diagnostics'
pairs) does not make another experiment.
The settings are read from the record's saved config, through the same schema fields as the identity, so a
field that never changes a result (threads, paths, progress) never splits a curve.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping

from bench.config.schema import DATA_KINDS, MODEL_KINDS, EvalConfig, TrainConfig
from bench.core.options import identity_of

# what is scored along the way, not the end's scores: the same training with or without them is one experiment
ALONG_THE_WAY = ("eval.checkpoints", "eval.diagnostic_pairs")
PART_KEYS_LEFT_OUT = ("name", "_target_")  # the parts' names are the cell's own columns (label)
SHORT = {"learning_rate": "lr", "n_train_prompts": "prompts"}


def settings_of(rec: Mapping) -> dict[str, str]:
    """A record's settings as flat ``group.key`` -> JSON text: the identity fields of data, model, train and eval,
    and the options of its loss and method (empty for a record without a saved config). The noise's own settings
    are its condition, not another curve: the noise type and rate are the cell's columns, and an injector with a
    scale instead of a rate (``gaussian_reward``'s sigma, ...) has no rate, which the tables leave out and say."""
    cfg = rec.get("config") or {}
    out: dict[str, str] = {}
    for group in ("data", "model", "train", "eval", "loss", "method"):
        node = cfg.get(group)
        if not isinstance(node, Mapping):
            continue
        _flatten(out, group, _counted(group, node))
    return out


def _counted(group: str, node: Mapping) -> dict:
    if group == "data":
        return identity_of(DATA_KINDS.get(node.get("kind")), node)
    if group == "model":
        return identity_of(MODEL_KINDS.get(node.get("kind")), node)
    if group in ("train", "eval"):
        return identity_of(TrainConfig if group == "train" else EvalConfig, node)
    return {k: v for k, v in node.items() if k not in PART_KEYS_LEFT_OUT}


def _flatten(out: dict, prefix: str, node: Mapping) -> None:
    for key, value in node.items():
        if isinstance(value, Mapping) and value:
            _flatten(out, f"{prefix}.{key}", value)
        else:
            out[f"{prefix}.{key}"] = json.dumps(value, sort_keys=True, default=str)


def distinguishing(records: list[dict], label_of, condition_of) -> dict[str, str]:
    """{cell id: its label with the settings that set it apart} for the labels whose records of one condition
    (``condition_of(rec)``: noise, rate, seed, data, model) differ in a setting; other records are left out. The
    keys shown are those that differ within some condition, and every record of that label shows them, so one
    experiment is one curve at every rate."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_label[label_of(r)].append(r)
    out: dict[str, str] = {}
    for label, recs in by_label.items():
        settings = {r.get("cell_id"): settings_of(r) for r in recs}
        keys = _differing(recs, settings, condition_of)
        if not keys:
            continue
        names = [_short(k) for k in keys]
        names = names if len(set(names)) == len(names) else keys  # a short name that is ambiguous: the full keys
        for r in recs:
            s = settings[r.get("cell_id")]
            shown = ", ".join(f"{n}={_plain(s[k])}" for n, k in zip(names, keys) if k in s)  # unset: not shown
            out[r.get("cell_id")] = f"{label} [{shown}]" if shown else label
    return out


def _differing(recs: list[dict], settings: dict, condition_of) -> list[str]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in recs:
        groups[condition_of(r)].append(settings[r.get("cell_id")])
    keys: set[str] = set()
    for group in groups.values():
        if len(group) < 2:
            continue
        every = set().union(*group)
        keys |= {k for k in every if not k.startswith(ALONG_THE_WAY) and len({s.get(k) for s in group}) > 1}
    return sorted(keys)


def _short(key: str) -> str:
    last = key.split(".")[-1]
    return SHORT.get(last, last)


def _plain(text: str) -> str:
    value = json.loads(text)
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
