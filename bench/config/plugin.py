"""The one plug-in contract: losses, noise injectors, evaluators, methods, detectors and selection rules alike.

A plug-in is a subclass of its kind's base class (``bench.losses.PairLoss``, ``noise.Injector``,
``evaluators.Evaluator``, ``bench.methods.Method``, ``bench.methods.detectors.Detector``,
``bench.tune.criteria.Criterion``), each a ``Plugin``. Whatever its kind, it is written the same way::

    class Margin(Detector):                     # mypkg/detectors.py
        name = "margin"

        class Options(Detector.Options):        # a keyword-only dataclass of option() fields
            scale: float = option("how far to trust the margin", POSITIVE, default=1.0)

        def scores(self, ctx, cfg): ...         # what its kind asks of it

- ``name`` names it in records and tables; ``Options`` declares its options once: type, valid values, doc and
  whether each one determines a cell's result (``bench.core.options.option``). Each option is an attribute of the
  built plug-in (``self.scale``) and ``self.options`` holds them all, typed.
- Its kind (``Kind``: ``bench.losses.KIND``, ``noise.KIND``, ...) builds it from a config node, the one builder:
  ``KIND.from_config({"name": "dpo", ...})`` for a registered one (lazy ``module:attr`` entries, a did-you-mean for
  an unknown name), ``KIND.from_config({"_target_": "mypkg.detectors.Margin", ...})`` for a user's own class,
  imported from wherever Python finds it. ``KIND.get(name, **options)`` takes the values it is not given from the
  composed config (``conf/<group>/<name>.yaml``).
- Every problem with a config is a ``ConfigError`` (one line naming the field); anything else raised while building
  is a bug, and shows its traceback.
- A registered plug-in whose module is heavy (torch, TRL) names its options apart, in a light module of its package
  that imports only ``bench.core`` and ``bench.config`` (``bench/losses/options.py``): its registry entry is
  ``(class, options class)``, ``"simpo": ("bench.losses.classic:SimPO", "bench.losses.options:SimPOOptions")``, and
  the class says ``Options = SimPOOptions``, so the options are still declared once.
  What a cell's identity needs of such a part (``Kind.identity``, ``Kind.checked_options``) is then read from its
  options alone, and hashing a cell's id imports no model code. A user's ``_target_`` class is imported as it is.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from bench.config.compose import group_node
from bench.config.typed import plain
from bench.core.options import META_KEYS, ConfigError, Options, check_options, hints, identity_of
from bench.core.registry import Registry, import_entry


def options_of(node: Mapping) -> dict[str, Any]:
    """A node's options (everything but ``name`` and Hydra's instantiation keys)."""
    return {k: v for k, v in node.items() if k not in META_KEYS}


class Plugin:
    """Base of every plug-in (see the module docstring)."""

    kind: ClassVar[str] = "plug-in"  # its config group: loss, noise, evaluator, method, detector, criterion
    name: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        clash = [f.name for f in dataclasses.fields(cls.Options)
                 if any(f.name in vars(k) for k in cls.__mro__ if k is not object)]
        if clash:
            raise TypeError(f"{cls.__qualname__}: option {clash[0]!r} shadows an attribute of the class")

    def __init__(self, **options: Any):
        cls = type(self)
        self.options = check_options(cls.Options, options, cls.option_head(), cls.option_prefix(),
                                     f"its value lives in conf/{cls.kind}/{cls.name}.yaml (the composed config)")
        for f in dataclasses.fields(self.options):
            setattr(self, f.name, getattr(self.options, f.name))
        self.validate()

    @classmethod
    def option_head(cls) -> str:
        """How errors name this plug-in's options node (``noise``, ``method``, ``loss 'dpo'``)."""
        return cls.kind

    @classmethod
    def option_prefix(cls) -> str:
        """What comes before an option's name in an error about its value (``noise.``, ``loss 'dpo': ``)."""
        return f"{cls.option_head()}."

    @classmethod
    def from_options(cls, options: dict, **context: Any):
        """Build from a node's options; ``context`` is what the cell knows that a node may refer to (the noise
        rate, the seed). The base ignores it."""
        return cls(**options)

    @classmethod
    def identity(cls, node: Mapping) -> dict:
        """The keys of a node of this plug-in that determine a cell's result (by its options' identity rules)."""
        return identity_of(cls.Options, node)

    def validate(self) -> None:
        """Cross-option checks and set-up after the options are bound (override when needed)."""

    def option_values(self) -> dict[str, Any]:
        return self.options.values()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.option_values().items())})"


class Kind:
    """One plug-in kind: its config group, base class, registry and contract, and the one builder."""

    def __init__(self, group: str, base: type[Plugin] | str, entries: dict[str, Any], *, noun: str | None = None,
                 required: tuple[str, ...] = ("name",), contract: str | None = None,
                 context_args: tuple[str, ...] = (), caller_only: tuple[str, ...] = (), configs: bool = True,
                 in_context: Callable[..., dict] | None = None):
        self.group, self._base = group, base  # the base class, or its ``module:attr`` (imported on first use)
        self.registry = Registry(noun or group, entries)  # name -> "module:attr" or ("module:attr", "module:options")
        self.required = required  # attributes (``"x"``) and methods (``"x()"``) every plug-in of the kind has
        self.contract = contract or noun or group
        self.context_args = context_args  # context a plain factory takes as keyword arguments (noise: the seed)
        self.caller_only = caller_only  # YAML keys get() never fills (noise: the seed is always the caller's)
        self.configs = configs  # whether conf/<group>/<name>.yaml holds each registered one's values
        # (options, head, **context) -> options: what the cell's context makes of a node's options before they are
        # checked (a loss's ``eps: oracle``), as its class's from_options does; for checked_options
        self.in_context = in_context

    @property
    def base(self) -> type[Plugin]:
        if isinstance(self._base, str):
            self._base = import_entry(self._base)
        return self._base

    def names(self) -> list[str]:
        return self.registry.names()

    def lookup(self, name: str) -> type[Plugin]:
        return self.registry.lookup(name)

    def defaults(self, name: str) -> dict[str, Any]:
        """``conf/<group>/<name>.yaml`` as composed (the registry checks the name first); nothing for a kind whose
        plug-ins have no YAML of their own (a reward model's backbone: its options' defaults are its values)."""
        self.registry.check(name)
        if not self.configs:
            return {}
        return {k: v for k, v in options_of(group_node(self.group, name)).items() if k not in self.caller_only}

    def get(self, name: str, /, **options: Any) -> Any:
        """The registered plug-in ``name`` with its YAML values overridden by ``options`` (nested options, such as
        a reward model's ``train``, key by key)."""
        if options.pop("name", name) != name:
            raise ConfigError(f"{self.group}: get({name!r}) was also given another name")
        values = self.defaults(name)
        nested = nested_options(self.lookup(name).Options)
        for key, value in options.items():
            merge = key in nested and isinstance(value, Mapping) and isinstance(values.get(key), Mapping)
            values[key] = {**values[key], **value} if merge else value
        return self.from_config({"name": name, **values})

    def from_config(self, node: Mapping | Any, where: str | None = None, **context: Any) -> Any:
        """The plug-in a config node describes (registered ``name`` or a user's ``_target_``), checked against
        the contract; ``where`` names the node in errors (default: the group)."""
        node, where = dict(plain(node)), where or self.group
        if "_target_" in node:
            source = f"{where}._target_={node['_target_']!r}"
            obj = self._build_target(node, source, context)
        elif "name" in node:
            source = f"{where}.name={node['name']!r}"
            obj = self._build_registered(node, context)
        else:
            raise ConfigError(f"{where}: a {self.registry.kind} config needs 'name' (one of "
                              f"{', '.join(self.names())}) or '_target_' (your own class); got keys {sorted(node)}.")
        return self.check(obj, source)

    def from_ref(self, ref: Any, where: str | None = None, **context: Any) -> Any:
        """The plug-in a setting names: a registered name (``oracle``), a class path (``mypkg.rules.Longest``) or a
        node (``{_target_: ..., options}``); for settings that name a plug-in inside another's options."""
        if isinstance(ref, Mapping):
            node = dict(ref)
        else:
            node = {"_target_": ref} if "." in str(ref) or ":" in str(ref) else {"name": ref}
        return self.from_config(node, where=where, **context)

    def class_of(self, node: Mapping) -> type | None:
        """The class a node names, or None where it names none that can be found (its check says why)."""
        try:
            if "_target_" in node:
                return import_entry(str(node["_target_"]))
            return self.lookup(node.get("name"))
        except Exception:  # noqa: BLE001 - an unknown part is hashed whole; the cell's check reports it
            return None

    def declared_options(self, node: Mapping) -> type[Options] | None:
        """The options class a registered node's entry names apart from its class (read without importing the
        class's module); None for a user's ``_target_``, an unknown name or an entry that names none."""
        if "_target_" in node or node.get("name") not in self.registry:
            return None
        try:
            return self.registry.options(node["name"])
        except Exception:  # noqa: BLE001 - then the class is asked, as for an entry with no options of its own
            return None

    def checked_options(self, node: Mapping | Any, **context: Any) -> Options | None:
        """A registered node's options, checked as building it checks them (its YAML filling what the node leaves
        out, ``in_context`` applied), from its declared options alone: what a cell's identity asks of a part
        (whether it reads scores) without importing its module. None where its entry declares none (build it); a
        ``ConfigError`` for a bad value (the built part would raise it too, or in its own checks)."""
        node = dict(plain(node))
        schema = self.declared_options(node)
        if schema is None:
            return None
        head = f"{self.registry.kind} {node['name']!r}"
        options = self._filled(node["name"], schema, options_of(node))
        if self.in_context is not None:
            options = self.in_context(options, head, **context)
        return check_options(schema, options, head)

    def identity(self, node: Mapping) -> dict[str, Any]:
        """What of a node determines a cell's result: by its options' identity rules, its declared options for a
        registered entry that names them apart, else its class's (the whole node where the class is not a
        ``Plugin``, or cannot be found)."""
        node = dict(node or {})
        schema = self.declared_options(node)
        if schema is not None:
            return identity_of(schema, node)
        cls = self.class_of(node)
        if isinstance(cls, type) and issubclass(cls, Plugin):
            return cls.identity(node)
        return node

    def _filled(self, name: str, schema: type[Options], options: dict) -> dict:
        """Options the node leaves out take the values of its YAML (a composed node has them all: nothing is
        composed then)."""
        needed = [f.name for f in dataclasses.fields(schema) if f.name not in options
                  and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if self.configs and any(k not in self.caller_only for k in needed):
            options = {**self.defaults(name), **options}
        return options

    def _build_registered(self, node: dict, context: dict) -> Any:
        """A registered plug-in, its options filled from its YAML where the node leaves them out."""
        cls = self.lookup(node["name"])
        return cls.from_options(self._filled(node["name"], cls.Options, options_of(node)), **context)

    def _build_target(self, node: dict, source: str, context: dict) -> Any:
        try:
            target = import_entry(str(node["_target_"]))
        except (ImportError, AttributeError, ValueError) as e:
            raise ConfigError(f"{source} cannot be imported ({type(e).__name__}: {e}); valid: a class Python can "
                              "import (run from the folder that holds its package, or pip install it).") from None
        options = options_of(node)
        if isinstance(target, type) and issubclass(target, Plugin):
            return target.from_options(options, **context)
        kwargs = {**{k: context[k] for k in self.context_args if k in context}, **options}
        try:
            inspect.signature(target).bind(**kwargs)
        except TypeError as e:
            raise ConfigError(f"{source} cannot be built from its config ({e}); valid: the keys of the node are its "
                              "keyword arguments.") from None
        except ValueError:  # no signature to check (a builtin): call it
            pass
        return target(**kwargs)

    def check(self, obj: Any, source: str) -> Any:
        """``obj`` has every attribute and method of the kind's contract, or a ``ConfigError`` listing the rest."""
        missing = [r for r in self.required  # "x": an attribute; "x()" or "x(ctx)": a method
                   if (not callable(getattr(obj, r.split("(")[0], None)) if "(" in r else not hasattr(obj, r))]
        if missing:
            base = f"{self.base.__module__}.{self.base.__qualname__}"
            raise ConfigError(f"{source} ({type(obj).__name__}) does not satisfy the {self.contract} contract: "
                              f"missing {', '.join(missing)}; valid: a subclass of {base} (it gives all of them).")
        return obj


def nested_options(schema) -> set[str]:
    """The fields of an options class that are options themselves (a reward model's ``train``)."""
    types = hints(schema)
    return {f.name for f in dataclasses.fields(schema)
            if isinstance(types.get(f.name), type) and issubclass(types[f.name], Options)}
