"""Registries of plug-ins: a name -> a lazy ``"package.module:attr"`` entry, imported on first use, so listing the
names costs no import (as lm-evaluation-harness). An unknown name is a ``ConfigError`` with a did-you-mean.

An entry may also name what the plug-in declares apart from how it is implemented: ``"dpo": ("bench.losses.classic:DPO",
"bench.losses.options:LossOptions")``, its class and its options class (``options``), which lives in a light module
(no torch), so a cell's id is computed from a node's options without importing the plug-in's own module.

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
    """name -> ``"module:attr"`` (or ``("module:attr", "module:options")``), imported on first use; an unknown name
    is a ``ConfigError`` with a did-you-mean."""

    def __init__(self, kind: str, entries: dict[str, Any]):
        self.kind = kind  # e.g. "loss": used in error messages
        self._entries: dict[str, Any] = {}
        self._options: dict[str, Any] = {}  # name -> its options class (or its "module:attr"), where named apart
        for name, entry in entries.items():
            if isinstance(entry, tuple):
                entry, self._options[name] = entry
            self._entries[name] = entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def check(self, name: str) -> None:
        """A ``ConfigError`` with a did-you-mean where ``name`` is not registered (nothing is imported)."""
        if name not in self._entries:
            raise ConfigError(did_you_mean(self.kind, name, self.names()))

    def lookup(self, name: str) -> Any:
        self.check(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = import_entry(entry)
        return entry

    def options(self, name: str) -> Any:
        """The options class the entry names apart from its class (imported on first use, not the class's module);
        None where it names none (its class's ``Options`` is then read from the class)."""
        self.check(name)
        entry = self._options.get(name)
        if isinstance(entry, str):
            entry = self._options[name] = import_entry(entry)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries
