"""A composed config node -> its schema's dataclass, or one ``ConfigError`` line naming field, value and what is valid.

Order of checks: unknown keys (with a did-you-mean), missing keys, types (OmegaConf's structured merge: ``'abc'``
for an int fails, ``'3'`` becomes 3), then each field's valid values (``Param``), recursing into nested schemas.
A missing key is an error, except for a field with a ``neutral`` value (one added after a cell-identity version):
a config from before it existed means that value.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.core.options import NO_NEUTRAL, ConfigError, did_you_mean, identity_of, meta, nested_options

T = TypeVar("T")

_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def plain(node: Any) -> Any:
    """A DictConfig/ListConfig as plain Python values (interpolations resolved), also where a plain dict or list
    holds one; anything else as it is."""
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def typed(schema: type[T], node: Any, where: str) -> T:
    """``node`` checked against ``schema``; ``where`` is its path in the config (``train``, ``data``, ...)."""
    values = plain(node)
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}={values!r} is not a mapping; valid: a group with keys {', '.join(_names(schema))}.")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in values:
        if key not in fields:
            hint = did_you_mean("key", key, fields).replace(" Valid choices", " Valid keys")
            raise ConfigError(f"{_at(where, key)}: {hint}")
    for name in fields:
        if name not in values and _absent_value(fields[name]) is not NO_NEUTRAL:
            values = {**values, name: _absent_value(fields[name])}  # a config from before the field existed
        elif name not in values or values[name] == "???":
            raise ConfigError(f"{_at(where, name)} is not set; valid: {_valid_text(schema, fields[name])}.")
    try:
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))
    except OmegaConfBaseException as e:
        key = _at(where, str(e.full_key)) if getattr(e, "full_key", None) else where
        at = _field_at(schema, str(getattr(e, "full_key", "") or ""))
        valid = _valid_text(*at) if at is not None else "see the schema"
        raise ConfigError(f"{key}={_value_at(values, str(e.full_key or ''))!r} has the wrong type; valid: {valid}.") from None
    return _check_values(obj, where)


def _absent_value(field: dataclasses.Field) -> Any:
    """What a field left out of a composed config means: its ``neutral`` value (the behaviour from before the field
    existed, ``bench.core.options``) where that is a value; otherwise ``NO_NEUTRAL`` (it must be set)."""
    neutral = meta(field)["neutral"]
    return NO_NEUTRAL if callable(neutral) else neutral


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check_values(obj: Any, where: str) -> Any:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_values(value, _at(where, f.name))
            continue
        m = meta(f)
        if m["options"] is not None:  # a mapping of options of their own (a reward model's recipe)
            setattr(obj, f.name, nested_options(m["options"], value, _at(where, f.name), m["doc"]))
        elif m["param"] is not None:
            param = dataclasses.replace(m["param"], why=m["param"].why or m["doc"])
            setattr(obj, f.name, param.check(_at(where, f.name), value))
    check = getattr(obj, "check", None)
    if callable(check):  # cross-field rules of a schema
        check(where)
    return obj


def _names(schema) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


def _valid_text(owner, field: dataclasses.Field) -> str:
    m = meta(field)
    kind = typing.get_type_hints(owner).get(field.name)
    if m["param"] is not None:
        text = m["param"].range_text()
    elif dataclasses.is_dataclass(kind):
        text = f"a group with keys {', '.join(_names(kind))}"
    else:
        text = _TYPE_WORDS.get(kind, str(kind).replace("typing.", ""))
    return f"{text} ({m['doc']})" if m["doc"] else text


def _field_at(schema, dotted: str) -> tuple[type, dataclasses.Field] | None:
    """(the dataclass that owns it, the field) for a dotted key, or None."""
    cls, found = schema, None
    for part in dotted.split(".") if dotted else []:
        if found is not None:
            cls = typing.get_type_hints(cls)[found.name]
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        found = fields.get(part)
        if found is None:
            return None
    return (cls, found) if found is not None else None


def _value_at(values: Mapping, dotted: str) -> Any:
    v: Any = values
    for part in dotted.split(".") if dotted else []:
        v = v.get(part) if isinstance(v, Mapping) else None
    return v


def identity_values(obj: Any) -> dict:
    """The fields of a typed config that determine a cell's result (``bench.core.options.identity_of``)."""
    return identity_of(type(obj), dataclasses.asdict(obj))
