"""Building a part (a loss, noise injector, evaluator or method) from its config node, the same way for all four.

A node names a registered part (``name: dpo``) or a user's own class or factory (``_target_: mypkg.losses.Focal``,
imported from wherever Python finds it: ``bench/run.py`` puts the working directory on the import path, as
``python -m`` would). Every other key is a keyword argument. Errors are one-line ``ConfigError``s naming the
field; a part's own contract check (``contract``) runs on whatever was built.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bench.core.registry import Registry
from bench.core.spec import ConfigError

META_KEYS = ("name", "_target_", "_partial_", "_recursive_", "_convert_")


def options(node: Mapping) -> dict[str, Any]:
    """A node's keyword arguments (everything but ``name`` and Hydra's instantiation keys)."""
    return {k: v for k, v in node.items() if k not in META_KEYS}


def build(group: str, node: Mapping, registry: Registry, contract: Callable[[Any, str], Any], **extra: Any) -> Any:
    """The part ``node`` describes, checked by ``contract(obj, source)``; ``extra`` are keyword arguments the
    caller adds (a noise injector's resolved seed, say)."""
    node = dict(node)
    if "_target_" in node:
        obj = instantiate(group, node, **extra)
        return contract(obj, f"{group}._target_={node['_target_']!r}")
    if "name" not in node:
        raise ConfigError(f"{group}: a {registry.kind} config needs 'name' (one of {', '.join(registry.names())}) "
                          f"or '_target_' (your own class); got keys {sorted(node)}.")
    factory = registry.lookup(node["name"])
    return contract(factory(**{**options(node), **extra}), f"{group}.name={node['name']!r}")


def instantiate(group: str, node: Mapping, **extra: Any) -> Any:
    """``hydra.utils.instantiate`` of a user's ``_target_``; our own errors come through unwrapped, Hydra's as one
    line that says what to check."""
    import hydra.errors
    import hydra.utils

    target = node["_target_"]
    kwargs = {k: v for k, v in node.items() if k != "name"}
    try:
        return hydra.utils.instantiate({**kwargs, **extra}, _convert_="all")
    except hydra.errors.InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, TypeError) and "Error locating target" not in str(err):  # wrong keyword arguments
            raise ConfigError(f"{group}._target_={target!r} cannot be built from its config ({cause}); valid: the "
                              "keys of the node are its keyword arguments.") from None
        if isinstance(cause, ValueError):  # the part's own check of its values (ConfigError included)
            raise cause from None
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Error locating target" in first:
            why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
            raise ConfigError(
                f"{group}._target_={target!r} cannot be imported{why}; valid: a class or factory Python can import "
                "(run from the folder that holds its package, or pip install it)."
            ) from None
        raise ConfigError(f"{group}._target_={target!r}: {first}") from None
