"""A cell's identity: the hash of what determines its result, and nothing else.

What counts is listed explicitly, per group:

- the fixed groups (top level, ``data``, ``model``, ``train``, ``eval``): their schema's fields marked
  ``identity`` (``bench.config.schema``); paths, threads, logging, progress and device choices are not; for the
  embedded world also its code version (``bench.world.rules.WORLD_CODE_VERSION``: what the code makes of them);
- the part groups (``loss``, ``noise``, ``method``, each ``evaluator``, ``scorer``): every key of the node (which
  part, and all its settings) except the options its class declares ``identity=False`` (a judge's cache folder and
  concurrency, a reward model's scoring batch and device: ``bench.core.options``); ``method: standard`` with no
  settings and ``scorer: none`` are neutral and leave no trace;
- ``paths``, ``logger``, ``hydra``, ``cluster`` (site settings) and ``tuning``, ``tuning_from`` (where values came
  from, not what they are: the values themselves are in ``train``/``loss``) are never part of it.

A field added after ``IDENTITY_VERSION`` carries a ``neutral`` value (``bench.core.options``): at that value it is
left out, so adding it never re-keys old cells; at any other value it is in, so a changed default never finds a
stale cell. Bump ``IDENTITY_VERSION`` only for an intended break (every cell is then new). Computing the id never
raises for a bad value: the value is hashed as it is, and the cell's own start-up check records the error.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import evaluators
import noise
from bench import losses, methods
from bench.config.schema import DATA_KINDS, MODEL_KINDS, EvalConfig, RunConfig, TrainConfig
from bench.config.typed import plain
from bench.core.cache import stable_hash
from bench.core.options import identity_of
from bench.evaluation.scorer_config import ScorerConfig, reads_scores
from bench.world.rules import WORLD_CODE_VERSION

IDENTITY_VERSION = 2  # 2: explicit per-group identity (1: the whole config minus six keys, with patches)

NOT_RESULTS = ("paths", "logger", "hydra", "cluster", "tuning", "tuning_from")
# parts whose neutral choice leaves no trace (groups added after IDENTITY_VERSION 2 must have one)
NEUTRAL_PARTS = {"method": {"name": "standard"}, "scorer": {"name": "none"}}
KINDS = {"loss": losses.KIND, "noise": noise.KIND, "method": methods.KIND}


def cell_id(cfg) -> str:
    return stable_hash(identity(cfg))


def identity(cfg) -> dict[str, Any]:
    """The JSON-able identity of a composed config (what ``cell_id`` hashes)."""
    c = {k: v for k, v in dict(plain(cfg)).items() if k not in NOT_RESULTS}
    groups = {k: c.pop(k) for k in list(c) if isinstance(c.get(k), Mapping) or k == "evaluator"}
    out: dict[str, Any] = {"v": IDENTITY_VERSION, **identity_of(RunConfig, c)}
    for name, node in groups.items():
        if name == "data":
            out[name] = identity_of(DATA_KINDS.get(node.get("kind")), node)
            if node.get("kind") == "world":  # what the world's code makes of those settings
                out[name]["world_code"] = WORLD_CODE_VERSION
        elif name == "model":
            out[name] = identity_of(MODEL_KINDS.get(node.get("kind")), node)
        elif name in ("train", "eval"):
            out[name] = identity_of(TrainConfig if name == "train" else EvalConfig, node)
        elif name in NEUTRAL_PARTS:
            if dict(node) != NEUTRAL_PARTS[name] and (name != "scorer" or _scores_read(groups)):
                out[name] = identity_of(ScorerConfig, node) if name == "scorer" else methods.KIND.identity(node)
        elif name == "evaluator":
            out[name] = {key: evaluators.KIND.identity(ev) for key, ev in (node or {}).items()}
        else:  # loss, noise, and any group a user adds
            out[name] = KINDS[name].identity(node) if name in KINDS else dict(node)
    return out


def _scores_read(groups: Mapping) -> bool:
    """Whether the cell's loss or method reads per-response scores (a scorer nothing reads is not used, and not
    part of the identity); True when that cannot be told (a bad value: the cell's own check reports it)."""
    try:
        loss = _declared(losses.KIND, groups["loss"], noise_rate=(groups.get("noise") or {}).get("rate"))
        return reads_scores(loss, _declared(methods.KIND, groups.get("method") or NEUTRAL_PARTS["method"]))
    except Exception:  # noqa: BLE001
        return True


def _declared(kind, node, **context) -> Any:
    """What says whether a part reads scores (its ``needs_scores``): a registered part's options, checked, from
    its registry's light declaration (no torch, no TRL); a user's own part (``_target_``) built."""
    options = kind.checked_options(node, **context)
    return options if options is not None else kind.from_config(node, **context)
