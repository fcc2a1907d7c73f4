"""The composed config from Python: the whole of it, or one group's node, as ``bench/run.py`` would compose it.

Inside a running Hydra app (a cell, a sweep callback) this uses the app's own search path, so a user's
``hydra.searchpath`` config folders are seen; elsewhere it composes ``conf/`` of this checkout. The composed
config is the only source of values: ``bench.losses.get(name)``, ``noise.get(name)`` and ``evaluators.get(name)``
take their defaults from here, never from a Python copy.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.config.schema import TrainConfig
from bench.config.typed import typed

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config ``bench/run.py <overrides>`` would run with (without the ``hydra`` node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` on the search path (``loss`` -> ``["anchored", ..., "udpo"]``)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


@lru_cache(maxsize=256)
def _composed_with(group: str, name: str) -> str:
    override = f"{group}=[{name}]" if group == "evaluator" else f"{group}={name}"
    return OmegaConf.to_yaml(compose([override]), resolve=False)  # text: every caller gets its own copy


def group_node(group: str, name: str) -> dict[str, Any]:
    """The values of option ``name`` of config group ``group`` (``loss``/``dpo``), as composed, interpolations
    resolved now against the config's defaults (``noise.seed`` is the default ``seed``; ``${oc.env:...}`` reads
    the environment as it is at this call)."""
    cfg = OmegaConf.create(_composed_with(group, name))
    node = cfg.evaluator[name] if group == "evaluator" else cfg[group]
    return OmegaConf.to_container(node, resolve=True)


def train_config(**changes: Any):
    """The composed default ``train`` config, typed (``bench.config.schema.TrainConfig``), with ``changes``: for
    scripts and tests that drive the trainer directly."""
    return typed(TrainConfig, {**OmegaConf.to_container(compose().train, resolve=True), **changes}, "train")
