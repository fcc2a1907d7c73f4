"""Label-noise injectors: which training pairs get their chosen/rejected labels swapped, and how.

Contract (other code depends on it):

- ``noise.get(name, rate=..., seed=..., **options)`` returns an injector; defaults come from
  ``conf/noise/<name>.yaml``, keyword arguments override them. ``seed`` must be given (the YAML's ``${seed}`` is
  only filled inside the full Hydra config). An unknown name raises ``bench.registry.UnknownNameError`` with a
  did-you-mean; ``noise.names()`` lists the names, ``noise.REGISTRY`` is the registry.
- ``injector(train_dataset)`` takes a ``datasets.Dataset`` with string columns ``prompt``, ``chosen``,
  ``rejected`` and returns the same rows in the same order, with exactly ``round(rate * n)`` pairs swapped (every
  ``<x>_chosen``/``<x>_rejected`` column pair, e.g. ``gold_chosen``/``gold_rejected``, travels with its text),
  plus a bool column ``is_flipped`` and, for annotator pools, a string column ``annotator``. Other columns are
  untouched. Only ever pass the training split: evaluation data is never noised.
- ``injector.summary(noised_dataset)`` gives flat JSON-able stats for the cell record (``target_rate``,
  ``realized_rate``, ``n_pairs``, ``n_flipped`` and injector-specific rates).
- ``noise.save_mask(noised_dataset, path)`` writes the flip mask (and annotators) as JSON, atomically.

The mask depends only on the data, the injector's config and the seed (a private generator seeded from
``(seed, name)``), so every loss in a sweep sees the same noisy data. To add an injector: subclass
``noise.base.Injector``, register it with ``@REGISTRY.register("my_noise")`` and add ``conf/noise/my_noise.yaml``.

Built in: ``none``, ``random_flip``, ``length_biased``, ``annotator_biased``, ``bt_confidence`` (one module each).
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from noise.base import REGISTRY, Injector, column

__all__ = ["REGISTRY", "Injector", "get", "names", "save_mask"]

BUILTINS = ("none", "random_flip", "length_biased", "annotator_biased", "bt_confidence")


def get(name: str, /, **options: Any) -> Injector:
    """The injector ``name`` with its YAML defaults overridden by ``options`` (``rate``, ``seed``, ...).

    A ``name`` among the options (as in a whole ``cfg.noise`` node) is accepted when it agrees.
    """
    if options.get("name", name) != name:
        raise ValueError(f"noise.get({name!r}, ...) was also given name={options['name']!r}")
    options.pop("name", None)
    factory = REGISTRY.lookup(name)
    return factory(**{**REGISTRY.defaults(name), **options})


def names() -> list[str]:
    return REGISTRY.names()


def save_mask(noised_dataset, path: str | os.PathLike) -> None:
    """Write ``{"is_flipped": [...], "annotator": [...]}`` (annotator only if present) to ``path`` atomically."""
    from bench.records import atomic_write_json

    if "is_flipped" not in noised_dataset.column_names:
        raise ValueError("save_mask needs a dataset returned by a noise injector (no 'is_flipped' column)")
    obj: dict[str, list] = {"is_flipped": [bool(x) for x in column(noised_dataset, "is_flipped")]}
    if "annotator" in noised_dataset.column_names:
        obj["annotator"] = [str(a) for a in column(noised_dataset, "annotator")]
    atomic_write_json(path, obj)


for _mod in BUILTINS:  # imported for their registration side effect
    importlib.import_module(f"noise.{_mod}")
