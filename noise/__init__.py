"""Label-noise injectors: which training pairs get their chosen/rejected labels swapped (or skipped, or tied), and how.

Contract (other code depends on it):

- ``noise.get(name, rate=..., seed=..., **options)`` returns an injector; its values come from
  ``conf/noise/<name>.yaml`` as composed, keyword arguments override them. ``seed`` must be given (the YAML's ``${seed}`` is
  only filled inside the full Hydra config). An unknown name is a ``ConfigError`` with a did-you-mean;
  ``noise.names()`` lists the names, ``noise.KIND`` is the kind (its registry, its builder).
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
``(seed, name)``), so every loss in a sweep sees the same noisy data. An injector is a plug-in like every other
(``bench.config.plugin``): subclass ``noise.base.Injector`` in your own package and point
``conf/noise/my_noise.yaml`` (in a folder on ``hydra.searchpath``) at it with ``_target_``.
``noise.from_config(cfg.noise, seed=...)`` builds a registered one or yours and checks it against the contract.

Built in (one module each): ``none``, ``random_flip``, ``length_biased``, ``annotator_biased``, ``bt_confidence``;
B-Pref's other teachers ``skip``, ``tie`` (its "equal") and ``myopic``; ``gaussian_reward``, ``targeted``,
``position_bias``; and ``natural`` (real annotators' votes from the data). The gold-reward helpers they share are in
``noise.gold``.
"""
from __future__ import annotations

import os

from bench.config.plugin import Kind
from bench.core.files import atomic_write_json
from noise.base import CONFIDENCE, KEEP, Injector, column, training_rows

__all__ = ["KIND", "Injector", "from_config", "get", "names", "save_mask", "training_rows"]

KIND = Kind("noise", Injector, {
    "none": "noise.none:NoNoise",
    "random_flip": "noise.random_flip:RandomFlip",
    "length_biased": "noise.length_biased:LengthBiased",
    "annotator_biased": "noise.annotator_biased:AnnotatorBiased",
    "bt_confidence": "noise.bt_confidence:BTConfidence",
    "skip": "noise.skip:Skip",
    "tie": "noise.tie:Tie",
    "myopic": "noise.myopic:Myopic",
    "gaussian_reward": "noise.gaussian_reward:GaussianReward",
    "targeted": "noise.targeted:Targeted",
    "position_bias": "noise.position_bias:PositionBias",
    "natural": "noise.natural:Natural",
}, noun="noise injector", contract="noise-injector", required=("name", "rate", "target_rate", "summary", "__call__"),
    context_args=("seed",), caller_only=("seed",))

get, names, from_config = KIND.get, KIND.names, KIND.from_config


def save_mask(noised_dataset, path: str | os.PathLike) -> None:
    """Write ``{"is_flipped": [...], "annotator": [...], "keep": [...], "label_confidence": [...]}`` (each but the
    first only if present) to ``path`` atomically."""
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
