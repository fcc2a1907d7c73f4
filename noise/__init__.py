"""Label-noise injectors: which training pairs get their chosen/rejected labels swapped (or skipped, or tied), and how.

Contract (other code depends on it):

- ``noise.get(name, rate=..., seed=..., **options)`` returns an injector; its values come from
  ``conf/noise/<name>.yaml`` as composed, keyword arguments override them. ``seed`` must be given (the YAML's ``${seed}`` is
  only filled inside the full Hydra config). An unknown name raises ``bench.core.registry.UnknownNameError`` with a
  did-you-mean; ``noise.names()`` lists the names, ``noise.REGISTRY`` is the registry.
- ``injector(train_dataset)`` takes a ``datasets.Dataset`` with string columns ``prompt``, ``chosen``,
  ``rejected`` and returns the same rows in the same order, with pairs swapped (every ``<x>_chosen``/
  ``<x>_rejected`` column pair, e.g. ``gold_chosen``/``gold_rejected``, travels with its text), plus a bool column
  ``is_flipped`` and, for annotator pools, a string column ``annotator``. Where ``rate`` is the parameter, exactly
  ``round(rate * n)`` pairs are swapped (``skip``: skipped); where a scale or the data is (``gaussian_reward``,
  ``tie``, ``myopic``, ``natural``: ``rate`` is ``None``), the summary states the realized rate. Two more label
  columns extend the contract: ``keep`` (bool, ``skip``: False on a pair the teacher skipped) and
  ``label_confidence`` (float, ``tie`` and ``natural``'s majority vote: 0.5 is a tie); ``training_rows`` says which
  pairs a cell trains on. Other columns are untouched. Only ever pass the training split: evaluation data is never
  noised.
- ``injector.summary(noised_dataset)`` gives flat JSON-able stats for the cell record (``target_rate``,
  ``realized_rate``, ``n_pairs``, ``n_flipped``, ``n_skipped``/``n_tied`` where they apply, and injector-specific
  rates).
- ``noise.save_mask(noised_dataset, path)`` writes the flip mask (and annotators, keep mask and label
  confidences where present) as JSON, atomically.
- ``injector.flip_rate`` is the flip rate the configuration states (0 for ``skip`` and ``tie``, None where only
  the data says); ``injector.data_columns`` the data file's columns it reads (``natural``: the votes).

The mask depends only on the data, the injector's config and the seed (a private generator seeded from
``(seed, name)``), so every loss in a sweep sees the same noisy data. To add an injector: subclass
``noise.base.Injector`` in your own package and point ``conf/noise/my_noise.yaml`` (in a folder on
``hydra.searchpath``) at it with ``_target_``; or register it with ``@REGISTRY.register("my_noise")``.
``noise.from_config(cfg.noise, seed=...)`` builds either kind and checks it against the contract.

Built in (one module each): ``none``, ``random_flip``, ``length_biased``, ``annotator_biased``, ``bt_confidence``;
B-Pref's other teachers ``skip``, ``tie`` (its "equal") and ``myopic``; ``gaussian_reward``, ``targeted``,
``position_bias``; and ``natural`` (real annotators' votes from the data). The gold-reward helpers they share are in
``noise.gold``.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from noise.base import CONFIDENCE, KEEP, REGISTRY, Injector, column, training_rows

__all__ = ["REGISTRY", "Injector", "get", "names", "save_mask", "from_config", "check_contract", "training_rows"]

BUILTINS = ("none", "random_flip", "length_biased", "annotator_biased", "bt_confidence", "skip", "tie", "myopic",
            "gaussian_reward", "targeted", "position_bias", "natural")


def defaults(name: str) -> dict[str, Any]:
    """``conf/noise/<name>.yaml`` as composed, without ``name`` and ``seed`` (the seed is always the caller's)."""
    from bench.config.compose import group_node
    from bench.core.plugins import options

    REGISTRY.lookup(name)
    return {k: v for k, v in options(group_node("noise", name)).items() if k != "seed"}


def get(name: str, /, **options: Any) -> Injector:
    """The injector ``name`` with its YAML values overridden by ``options`` (``rate``, ``seed``, ...).

    A ``name`` among the options (as in a whole ``cfg.noise`` node) is accepted when it agrees.
    """
    if options.get("name", name) != name:
        raise ValueError(f"noise.get({name!r}, ...) was also given name={options['name']!r}")
    options.pop("name", None)
    factory = REGISTRY.lookup(name)
    return factory(**{**defaults(name), **options})


_CONTRACT = ("name", "rate", "target_rate", "summary", "__call__")


def check_contract(obj: Any, source: str = "noise") -> Any:
    """An injector has ``name``, ``rate``, ``target_rate``, is callable on a Dataset and has ``summary(ds)``."""
    missing = [a for a in _CONTRACT if not hasattr(obj, a) or (a in ("summary", "__call__") and not callable(getattr(obj, a)))]
    if missing:
        from bench.core.spec import ConfigError

        raise ConfigError(
            f"{source} ({type(obj).__name__}) does not satisfy the noise-injector contract: missing "
            f"{', '.join(missing)}; valid: a subclass of noise.base.Injector (it gives all of them)."
        )
    return obj


def from_config(node: Mapping, seed: int) -> Injector:
    """The injector a ``cfg.noise`` node describes (registered ``name`` or a user's ``_target_``), checked.

    ``seed`` fills the node's seed when it has none (inside the full config it is ``${seed}``)."""
    from bench.config.typed import plain
    from bench.core.plugins import build

    node = dict(plain(node))
    node["seed"] = int(node.get("seed", seed)) if node.get("seed") is not None else int(seed)
    return build("noise", node, REGISTRY, check_contract)


def names() -> list[str]:
    return REGISTRY.names()


def save_mask(noised_dataset, path: str | os.PathLike) -> None:
    """Write ``{"is_flipped": [...], "annotator": [...], "keep": [...], "label_confidence": [...]}`` (each but the
    first only if present) to ``path`` atomically."""
    from bench.core.files import atomic_write_json

    if "is_flipped" not in noised_dataset.column_names:
        raise ValueError("save_mask needs a dataset returned by a noise injector (no 'is_flipped' column)")
    obj: dict[str, list] = {"is_flipped": [bool(x) for x in column(noised_dataset, "is_flipped")]}
    if "annotator" in noised_dataset.column_names:
        obj["annotator"] = [str(a) for a in column(noised_dataset, "annotator")]
    if KEEP in noised_dataset.column_names:
        obj[KEEP] = [bool(x) for x in column(noised_dataset, KEEP)]
    if CONFIDENCE in noised_dataset.column_names:
        obj[CONFIDENCE] = [float(x) for x in column(noised_dataset, CONFIDENCE)]
    atomic_write_json(path, obj)


for _mod in BUILTINS:  # imported for their registration side effect
    importlib.import_module(f"noise.{_mod}")
