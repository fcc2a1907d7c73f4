"""Options, declared once: a field's type, valid values, doc and place in a cell's identity, and the one config error.

Every configurable thing declares its options the same way, as a dataclass of ``option(...)`` fields: the fixed
config groups (``bench.config.schema``) and every plug-in (a loss, a noise injector, an evaluator, a method, a
detector, a selection rule: ``bench.config.plugin``). A field carries

- its type (the annotation) and its valid values (``Param``: a numeric range, open or closed at each end, or a set
  of choices; ``None`` where that means "off");
- its doc, which every error about it quotes;
- whether it determines a cell's result (``identity``; paths, batch sizes for scoring, devices, caches and
  concurrency do not), and for a field added after a cell-identity version its ``neutral`` value: the value that
  reproduces the behaviour from before it existed, which stays out of a cell's id so old cells are still found;
- a ``default`` (users' own plug-ins only: built-in parts take every value from ``conf/``, the composed config).

``ConfigError`` is the one error for a bad config: a value missing, unknown, of the wrong type or out of range,
said in one line that names the field, the value and what is valid. Anything else raised at start-up is a bug.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

_MISSING = dataclasses.MISSING
NO_NEUTRAL = object()
META_KEYS = ("name", "_target_", "_partial_", "_recursive_", "_convert_")  # what names a part, not its options


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range. The message is one line that names
    the field, the value and what is valid."""


def did_you_mean(kind: str, name: Any, choices) -> str:
    """``unknown <kind> 'x'. Did you mean 'y'? Valid choices: ...`` (the close matches by difflib)."""
    choices = sorted(map(str, choices))
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid choices: {', '.join(choices)}."


# ------------------------------------------------------------------------------------------------ one value
@dataclasses.dataclass(frozen=True)
class Param:
    """What one field accepts, and why."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is invalid
    high_open: bool = False
    choices: tuple | None = None
    nullable: bool = False  # None is allowed (meaning "off")
    integer: bool = False
    why: str = ""

    def range_text(self) -> str:
        if self.choices is not None:
            text = " or ".join(repr(c) for c in self.choices)
        elif self.low is None and self.high is None:
            text = "an integer" if self.integer else "a number"
        else:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            left = "(" if self.low_open or self.low is None else "["
            right = ")" if self.high_open or self.high is None else "]"
            text = ("an integer in " if self.integer else "") + f"{left}{lo}, {hi}{right}"
        return text + (" or null" if self.nullable else "")

    def check(self, key: str, value: Any, where: str = "") -> Any:
        """The value, normalized (numbers as float, or int for integer fields); a ``ConfigError`` if invalid."""
        raw = value

        def fail(problem: str) -> ConfigError:
            why = f" ({self.why})" if self.why else ""
            return ConfigError(f"{where}{key}={raw!r} {problem}; valid: {self.range_text()}{why}.")

        if value is None:
            if self.nullable:
                return None
            raise fail("is not set")
        if self.choices is not None:
            if value not in self.choices:
                raise fail("is not a valid choice")
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise fail("is not a number")
        if self.integer and float(value) != int(value):
            raise fail("is not an integer")
        value = int(value) if self.integer else float(value)
        if not math.isfinite(value):
            raise fail("is out of range")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise fail("is out of range")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise fail("is out of range")
        return value


POSITIVE = Param(low=0.0, low_open=True)
NONNEGATIVE = Param(low=0.0)
PROBABILITY = Param(low=0.0, high=1.0)
COUNT = Param(low=1, integer=True)


# ------------------------------------------------------------------------------------------------ one field
def option(doc: str, param: Param | None = None, *, identity: bool = True, neutral: Any = NO_NEUTRAL,
           options: type | None = None, default: Any = _MISSING):
    """A dataclass field carrying its doc, valid values and identity rule in metadata.

    ``neutral`` is a value, or a predicate of the node's value (``lambda v: not v["enabled"]``: a switched-off
    block leaves no trace). ``options``: a mapping field (of a schema OmegaConf types) that holds these options
    (an ``Options`` class), checked and counted for a cell's identity by their own rules. ``default``: users' own
    plug-ins only (mutable defaults are copied for every instance).
    """
    metadata = {"doc": doc, "param": param, "identity": identity, "neutral": neutral, "options": options}
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (dict, list, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def meta(f: dataclasses.Field) -> dict:
    return {"doc": "", "param": None, "identity": True, "neutral": NO_NEUTRAL, "options": None, **f.metadata}


def is_neutral(m: dict, value: Any) -> bool:
    """Whether ``value`` is the field's neutral value (so it stays out of a cell's identity)."""
    neutral = m["neutral"]
    if neutral is NO_NEUTRAL:
        return False
    if callable(neutral):
        try:
            return bool(neutral(value))
        except Exception:  # noqa: BLE001 - a value the predicate cannot read is not neutral
            return False
    return value == neutral


def hints(schema) -> dict[str, Any]:
    """The field types of a dataclass, resolved (``from __future__ import annotations`` leaves them text), an
    optional one (``X | None``) as ``X``."""
    return {k: _unwrap(v) for k, v in typing.get_type_hints(schema).items()}


def _unwrap(kind: Any) -> Any:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return kind


# ------------------------------------------------------------------------------------------------ identity
def identity_of(schema, node: Mapping | None) -> dict[str, Any]:
    """The keys of ``node`` that determine a cell's result, by ``schema``'s fields: a field marked
    ``identity=False`` or at its neutral value is left out, a nested schema (or a mapping field's ``options``)
    recursed into; keys the schema does not know count (a part's ``name``; the start-up check reports the rest)."""
    node = dict(node or {})
    if schema is None:
        return node
    fields = {f.name: f for f in dataclasses.fields(schema)}
    types = hints(schema)
    out = {}
    for key, value in node.items():
        f = fields.get(key)
        if f is None:
            out[key] = value
            continue
        m = meta(f)
        if not m["identity"] or is_neutral(m, value):
            continue
        nested = m["options"] or types.get(key)
        if dataclasses.is_dataclass(nested) and isinstance(value, Mapping):
            value = identity_of(nested, value)
        out[key] = value
    return out


def not_in_identity(schema) -> tuple[str, ...]:
    """The option names a schema's fields mark as never changing a result (``<field>.<key>`` for nested ones)."""
    out: list[str] = []
    types = hints(schema)
    for f in dataclasses.fields(schema):
        m = meta(f)
        if not m["identity"]:
            out.append(f.name)
            continue
        nested = m["options"] or types.get(f.name)
        if dataclasses.is_dataclass(nested):
            out += [f"{f.name}.{key}" for key in not_in_identity(nested)]
    return tuple(out)


# ------------------------------------------------------------------------------------------------ a plug-in's options
class Options:
    """Base of a plug-in's options: every subclass is made a keyword-only dataclass of ``option()`` fields, so a
    plug-in's options extend its base's (``class Options(PairLoss.Options): g: float = option(...)``)."""

    word: ClassVar[str] = "option"  # what the errors call one of them (a loss's are "hyperparameters")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True)(cls)

    def check(self, where: str) -> None:
        """Cross-field rules (override); ``where`` names the options' node in messages."""

    def values(self) -> dict[str, Any]:
        """The options as plain values, nested options as dicts (for records and hashing)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


dataclasses.dataclass(kw_only=True)(Options)


def _plain(value: Any) -> Any:
    return value.values() if isinstance(value, Options) else value


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               list: "a list"}


def check_options(schema: type[Options], given: Mapping, head: str, prefix: str = "",
                  values_in: str = "") -> Options:
    """``given`` checked against ``schema``: unknown names (with a did-you-mean), missing ones (no default), each
    value's type and range, nested options, then ``check``; one ``ConfigError`` line on the first problem.

    ``head`` names the node (``loss 'dpo'``, ``method``, ``evaluator.reward_model.train``); ``prefix`` comes before
    a field's name in value errors (``loss 'dpo': `` or ``method.``); ``values_in`` says where built-in values
    live, for the error on a missing one."""
    prefix = prefix or f"{head}."
    word = schema.word
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in given:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{head}: unknown {word} {key!r}.{hint} Valid {word}s: "
                              f"{', '.join(fields) or '(none)'}.")
    types, raw = hints(schema), typing.get_type_hints(schema)
    out = {}
    for name, f in fields.items():
        m = meta(f)
        if name not in given:
            if m["neutral"] is not NO_NEUTRAL and not callable(m["neutral"]):
                out[name] = m["neutral"]  # a node from before the option existed means its neutral value
            elif f.default is _MISSING and f.default_factory is _MISSING:
                valid = m["param"].range_text() if m["param"] is not None else _type_text(types.get(name))
                where = f"; {values_in}" if values_in else ""
                raise ConfigError(f"{head}: missing {word} {name!r} (valid: {valid}; {m['doc']}){where}.")
            continue
        optional = _unwrap(raw.get(name)) is not raw.get(name)
        out[name] = _check_value(name, given[name], m, types.get(name), prefix, optional)
    obj = schema(**out)
    obj.check(head)
    return obj


def _check_value(name: str, value: Any, m: dict, kind: Any, prefix: str, optional: bool) -> Any:
    if m["param"] is not None:
        param = dataclasses.replace(m["param"], why=m["param"].why or m["doc"])
        return param.check(name, value, where=prefix)
    if value is None and optional:
        return None
    if isinstance(kind, type) and issubclass(kind, Options):
        return nested_options(kind, value, f"{prefix}{name}", m["doc"])
    base = typing.get_origin(kind) or kind
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
          float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          dict: lambda v: isinstance(v, Mapping),
          list: lambda v: isinstance(v, (list, tuple))}.get(base)
    if ok is not None and not ok(value):
        raise ConfigError(f"{prefix}{name}={value!r} has the wrong type; valid: {_type_text(kind)} ({m['doc']}).")
    if base is float:
        return float(value)
    if base is dict:
        return dict(value)
    if base is list:
        return list(value)
    return value


def nested_options(schema: type[Options], value: Any, where: str, doc: str = "") -> Options:
    """A mapping holding ``schema``'s options (the keys that name it, such as ``name``, left aside), checked."""
    if isinstance(value, Options):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}={value!r} has the wrong type; valid: a mapping{f' ({doc})' if doc else ''}.")
    return check_options(schema, {k: v for k, v in value.items() if k not in META_KEYS}, where)


def _type_text(kind: Any) -> str:
    base = typing.get_origin(kind) or kind
    if isinstance(base, type) and issubclass(base, Options):
        return "a mapping"
    return _TYPE_WORDS.get(base, "any value")
