"""Small typed registries with did-you-mean errors and lazy ``module:attr`` entries (as lm-evaluation-harness).

A registry maps a name to an entry: the entry itself, or the text ``"package.module:attr"`` imported on first
use, so listing the names costs no import. Values (defaults) never live here: they live in the Hydra config
group of the same concern, and the composed config is their only source (``bench.config.compose``).
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """Raised for a name that no registry entry has; the message lists the valid choices."""


def did_you_mean(kind: str, name: Any, choices) -> str:
    """``unknown <kind> 'x'. Did you mean 'y'? Valid choices: ...`` (the close matches by difflib)."""
    choices = sorted(map(str, choices))
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid choices: {', '.join(choices)}."


def import_entry(path: str) -> Any:
    """``"package.module:attr"`` (or ``"package.module.attr"``) -> the object."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """name -> entry, with lazy ``module:attr`` entries and did-you-mean lookups."""

    def __init__(self, kind: str, entries: dict[str, Any] | None = None):
        self.kind = kind  # e.g. "loss": used in error messages
        self._entries: dict[str, Any] = dict(entries or {})

    def register(self, name: str, entry: Any = None) -> Callable[[T], T]:
        """``@registry.register("x")`` as a decorator, or ``registry.register("x", "pkg.mod:Cls")``."""

        def deco(obj: T) -> T:
            current = self._entries.get(name)
            if current is not None and current is not obj and not _is_lazy_of(current, obj):
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco if entry is None else deco(entry)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def lookup(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(did_you_mean(self.kind, name, self.names()))
        entry = self._entries[name]
        if isinstance(entry, str):  # lazy: import on first use
            entry = self._entries[name] = import_entry(entry)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _is_lazy_of(entry: Any, obj: Any) -> bool:
    """A lazy entry ``"mod:Cls"`` being filled by the registration of ``mod.Cls`` itself."""
    if not isinstance(entry, str):
        return False
    module, _, attr = entry.partition(":")
    return getattr(obj, "__module__", None) == module and getattr(obj, "__qualname__", None) == attr
