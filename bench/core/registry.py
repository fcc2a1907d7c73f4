"""Registries of plug-ins: a name -> a lazy ``"package.module:attr"`` entry, imported on first use, so listing the
names costs no import (as lm-evaluation-harness). An unknown name is a ``ConfigError`` with a did-you-mean.

Values (defaults) never live here: they live in the Hydra config group of the same concern, and the composed
config is their only source (``bench.config.compose``).
"""
from __future__ import annotations

import importlib
from typing import Any

from bench.core.options import ConfigError, did_you_mean


def import_entry(path: str) -> Any:
    """``"package.module:attr"`` (or ``"package.module.attr"``) -> the object."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry:
    """name -> ``"module:attr"``, imported on first use; an unknown name is a ``ConfigError`` with a did-you-mean."""

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind  # e.g. "loss": used in error messages
        self._entries: dict[str, Any] = dict(entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def lookup(self, name: str) -> Any:
        if name not in self._entries:
            raise ConfigError(did_you_mean(self.kind, name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = import_entry(entry)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries
