"""Preference data for one cell, whatever the source: ``load(data, model, cache_root) -> PreferenceData``.

``data=world`` (``bench.data.world``): the embedded world with its gold reward. ``data=hf`` (``bench.data.hf``):
any dataset by hub name or local path, plain or conversational, columns mapped in config.
"""
from __future__ import annotations

from bench.core.options import ConfigError
from bench.core.text import prompt_text
from bench.data.base import REQUIRED, DataError, PreferenceData, text_rows, validate
from bench.data.hf import load_hf, to_preference_form
from bench.data.world import load_world

__all__ = ["DataError", "PreferenceData", "REQUIRED", "load", "prompt_text", "text_rows", "validate", "to_preference_form"]


def load(data, model, cache_root: str, columns: tuple[str, ...] = ()) -> PreferenceData:
    """``data``/``model`` are typed configs (``bench.config.schema``); the world is built once under cache_root.
    ``columns``: columns of a data file to keep beside the pairs (``noise=natural``: the annotators' votes)."""
    if data.kind == "world":
        return load_world(data, model, cache_root)
    if data.kind == "hf":
        return load_hf(data, model, columns)
    raise ConfigError(f"data.kind={data.kind!r}; valid choices: world, hf")

