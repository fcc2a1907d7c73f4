"""Evaluators: score a trained policy's responses on held-out prompts.

Contract: an evaluator has
- ``name``: str
- ``metrics``: ``{metric name: direction}`` for every metric it reports, direction one of ``True`` (higher is
  better), ``False`` (lower), ``None`` (no direction) or ``"counter"`` (bookkeeping, never compared); see
  ``bench.core.metrics``
- ``evaluate(batch: EvalBatch) -> dict[str, float]``
- optionally ``not_in_identity``: option names that never change its metrics (caches, concurrency, timeouts).

``evaluators.get(name, **options)`` builds a registered one with its values from ``conf/evaluator/<name>.yaml``
(as composed) overridden by ``options``; ``evaluators.from_config(node)`` builds a registered one or a user's own
(``_target_``) from a config node and checks it against the contract.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.core.registry import Registry

REGISTRY: Registry = Registry("evaluator", {
    "gold": "evaluators.gold:make_gold",
    "llm_judge": "evaluators.llm_judge:make_llm_judge",
    "reward_model": "evaluators.reward_model:make_reward_model",
})


@dataclass
class EvalBatch:
    """Everything an evaluator may look at for one cell. Lists are aligned: one entry per evaluation sample."""

    prompts: list[str]
    policy: list[str]  # the trained policy's response to prompts[i]
    reference: list[str]  # the reference (SFT) policy's response to the same prompt
    task: str = "general"  # "world" for the embedded world, "general" otherwise (picks judge templates)
    gold_reward: Callable[[str, str], float] | None = None  # the embedded world's r*(prompt, response), if known
    extra: dict = field(default_factory=dict)


class Evaluator(Protocol):
    name: str
    metrics: dict[str, Any]

    def evaluate(self, batch: EvalBatch) -> dict[str, float]: ...


def defaults(name: str) -> dict[str, Any]:
    """``conf/evaluator/<name>.yaml`` as composed (the registry checks the name first)."""
    from bench.config.compose import group_node
    from bench.core.plugins import options

    REGISTRY.lookup(name)
    return options(group_node("evaluator", name))


def get(name: str, **options: Any) -> Evaluator:
    """A registered evaluator with its YAML values, nested ones merged key by key, overridden by ``options``."""
    from omegaconf import OmegaConf

    factory = REGISTRY.lookup(name)
    merged = OmegaConf.to_container(OmegaConf.merge(defaults(name), options), resolve=True)
    return check_contract(factory(**merged), f"evaluator.{name}")


def factory(cls, name: str, options: tuple[str, ...]):
    """The registry's builder of ``cls``: all its ``options`` given, none unknown, then ``cls(**options)``.
    It carries the class's ``not_in_identity`` (cell ids read it from the registry's entry)."""
    from bench.core.spec import check_option_names

    def make(**given):
        check_option_names(f"evaluator.{name}", given, options,
                           f"conf/evaluator/{name}.yaml (evaluators.get({name!r}) fills it)")
        return cls(**given)

    make.not_in_identity = getattr(cls, "not_in_identity", ())
    make.__doc__ = f"Build ``{cls.__name__}`` from its options (all of them: ``evaluators.get`` fills them)."
    return make


def check_contract(obj: Any, source: str = "evaluator") -> Any:
    from bench.core.metrics import DIRECTIONS
    from bench.core.spec import ConfigError

    missing = [a for a in ("name", "metrics") if not hasattr(obj, a)]
    missing += [] if callable(getattr(obj, "evaluate", None)) else ["evaluate()"]
    if missing:
        raise ConfigError(f"{source} ({type(obj).__name__}) does not satisfy the evaluator contract: missing "
                          f"{', '.join(missing)}; valid: an object with name, metrics {{name: direction}} and "
                          "evaluate(batch) -> {name: float}.")
    bad = {m: d for m, d in dict(obj.metrics).items() if not any(d is x or d == x for x in DIRECTIONS)}
    if bad:
        raise ConfigError(f"{source}: metric direction(s) {bad}; valid: True, False, None or 'counter'.")
    return obj


def from_config(node: Mapping, key: str = "") -> Evaluator:
    """The evaluator a config node describes (``cfg.evaluator.<key>``): registered ``name`` or ``_target_``."""
    from bench.config.typed import plain
    from bench.core.plugins import build

    node = dict(plain(node))
    where = f"evaluator.{key or node.get('name', '?')}"
    return build(where, node, REGISTRY, check_contract)
