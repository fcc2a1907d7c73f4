"""Small typed registries with did-you-mean errors (in the spirit of lm-evaluation-harness).

A registry maps a name to a factory. Its defaults live in the Hydra config group of the same concern
(``conf/<group>/<name>.yaml``), so ``get(name, **overrides)`` and ``python bench/run.py <group>=<name>`` agree.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

T = TypeVar("T")

# keys of a group's YAML that configure Hydra/instantiation rather than the object itself
_META_KEYS = {"name", "_target_", "_partial_", "_recursive_", "_convert_"}


class UnknownNameError(ValueError):
    """Raised for a name that no registry entry has; the message lists the valid choices."""


def did_you_mean(kind: str, name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid choices: {', '.join(sorted(choices))}."


def group_defaults(group: str, name: str) -> dict[str, Any]:
    """Literal defaults from ``conf/<group>/<name>.yaml``.

    Interpolations (``${seed}``) only make sense inside the full Hydra config, so they are left out here: the
    caller passes those values explicitly.
    """
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.exists():
        return {}
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    return {
        k: v
        for k, v in (raw or {}).items()
        if k not in _META_KEYS and not (isinstance(v, str) and v.startswith("${"))
    }


class Registry(Generic[T]):
    """name -> factory, with config-group defaults and did-you-mean lookups."""

    def __init__(self, kind: str, group: str):
        self.kind = kind  # e.g. "loss": used in error messages
        self.group = group  # e.g. "loss": conf/<group>/<name>.yaml holds the defaults
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            return factory

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def lookup(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise UnknownNameError(did_you_mean(self.kind, name, self.names()))
        return self._entries[name]

    def defaults(self, name: str) -> dict[str, Any]:
        self.lookup(name)
        return group_defaults(self.group, name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
