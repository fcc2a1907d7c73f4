"""A cell's identity: the hash of what determines its result, and nothing else.

What counts is listed explicitly, per group:

- the fixed groups (top level, ``data``, ``model``, ``train``, ``eval``): their schema's fields marked
  ``identity`` (``bench.config.schema``); paths, threads, logging, progress and device choices are not; for the
  embedded world also its code version (``bench.world.build.WORLD_CODE_VERSION``: what the code makes of them);
- the part groups (``loss``, ``noise``, ``method``, each ``evaluator``): every key of the node (which part, and all
  its settings) except the names the part lists in ``not_in_identity`` (a judge's cache folder and concurrency,
  a scorer's batch size); ``method: standard`` with no settings and ``scorer: none`` are neutral and leave no trace;
- ``paths``, ``logger``, ``hydra``, ``cluster`` (site settings) and ``tuning`` (where values came from, not what
  they are: the values themselves are in ``train``/``loss``) are never part of it.

A field added after ``IDENTITY_VERSION`` carries a ``neutral`` value (``bench.config.fields``): at that value it is
left out, so adding it never re-keys old cells; at any other value it is in, so a changed default never finds a
stale cell. Bump ``IDENTITY_VERSION`` only for an intended break (every cell is then new). Computing the id never
raises for a bad value: the value is hashed as it is, and the cell's own start-up check records the error.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from bench.config.fields import is_neutral, meta
from bench.config.schema import DATA_KINDS, MODEL_KINDS, EvalConfig, RunConfig, TrainConfig
from bench.config.typed import plain
from bench.core.cache import stable_hash

IDENTITY_VERSION = 2  # 2: explicit per-group identity (1: the whole config minus six keys, with patches)

NOT_RESULTS = ("paths", "logger", "hydra", "cluster", "tuning")
# parts whose neutral choice leaves no trace (groups added after IDENTITY_VERSION 2 must have one)
NEUTRAL_PARTS = {"method": {"name": "standard"}, "scorer": {"name": "none"}}


def cell_id(cfg) -> str:
    return stable_hash(identity(cfg))


def identity(cfg) -> dict[str, Any]:
    """The JSON-able identity of a composed config (what ``cell_id`` hashes)."""
    c = {k: v for k, v in dict(plain(cfg)).items() if k not in NOT_RESULTS}
    groups = {k: c.pop(k) for k in list(c) if isinstance(c.get(k), Mapping) or k == "evaluator"}
    out: dict[str, Any] = {"v": IDENTITY_VERSION, **of_schema(RunConfig, c)}
    for name, node in groups.items():
        if name == "data":
            out[name] = of_schema(DATA_KINDS.get(node.get("kind")), node)
            if node.get("kind") == "world":  # what the world's code makes of those settings
                from bench.world.build import WORLD_CODE_VERSION

                out[name]["world_code"] = WORLD_CODE_VERSION
        elif name == "model":
            out[name] = of_schema(MODEL_KINDS.get(node.get("kind")), node)
        elif name in ("train", "eval"):
            out[name] = of_schema(TrainConfig if name == "train" else EvalConfig, node)
        elif name in NEUTRAL_PARTS:
            if dict(node) != NEUTRAL_PARTS[name] and (name != "scorer" or _scores_read(groups)):
                out[name] = of_part(name, node)
        elif name == "evaluator":
            out[name] = {key: of_part("evaluator", ev) for key, ev in (node or {}).items()}
        else:  # loss, noise, and any group a user adds
            out[name] = of_part(name, node)
    return out


def of_schema(schema, node: Mapping | None) -> dict[str, Any]:
    """The result-determining keys of a node of a fixed group; unknown keys count (the check reports them)."""
    node = dict(node or {})
    if schema is None:
        return node
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    out = {}
    for key, value in node.items():
        f = fields.get(key)
        if f is None:
            out[key] = value
            continue
        m = meta(f)
        if not m["identity"] or is_neutral(m, value):
            continue
        nested = hints.get(key)
        if dataclasses.is_dataclass(nested) and isinstance(value, Mapping):
            value = of_schema(nested, value)
        elif m["not_in_identity"] and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in m["not_in_identity"]}
        out[key] = value
    return out


def of_part(group: str, node: Mapping) -> dict[str, Any]:
    """Every key of a part's node except those its class declares ``not_in_identity`` (``rm.device``: a nested
    key)."""
    node = dict(node or {})
    skip = set(getattr(_part_class(group, node), "not_in_identity", ()) or ())
    out = {k: v for k, v in node.items() if k not in skip}
    for dotted in (s for s in skip if "." in s):
        head, rest = dotted.split(".", 1)
        if isinstance(out.get(head), Mapping):
            out[head] = {k: v for k, v in out[head].items() if k != rest}
    return out


def _scores_read(groups: Mapping) -> bool:
    """Whether the cell's loss or method reads per-response scores (a scorer nothing reads is not used, and not
    part of the identity); True when that cannot be told (a bad value: the cell's own check reports it)."""
    try:
        from bench import losses, methods
        from bench.evaluation.scorer import reads_scores

        loss = losses.from_config(groups["loss"], noise_rate=(groups.get("noise") or {}).get("rate"))
        return reads_scores(loss, methods.from_config(groups.get("method") or NEUTRAL_PARTS["method"]))
    except Exception:  # noqa: BLE001
        return True


def _part_class(group: str, node: Mapping):
    from bench.core.registry import import_entry

    if group == "scorer":
        from bench.evaluation.scorer import Scorer

        return Scorer
    if group not in ("evaluator", "method", "noise"):
        return None  # a loss: every hyperparameter determines the result
    try:
        if "_target_" in node:
            return import_entry(str(node["_target_"]))
        return _registry(group).lookup(node.get("name"))
    except Exception:  # noqa: BLE001 - an unknown part is hashed whole; the cell's check reports it
        return None


def _registry(group: str):
    if group == "evaluator":
        import evaluators

        return evaluators.REGISTRY
    if group == "method":
        from bench import methods

        return methods.REGISTRY
    import noise

    return noise.REGISTRY
