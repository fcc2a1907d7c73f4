"""A schema field: its type (the dataclass annotation), its valid values, its doc, and its place in a cell's id.

Values never live here (no defaults): the composed config is their only source. ``identity`` says whether the
field determines a cell's result (paths, threads, logging, progress and concurrency do not). ``neutral`` is for
fields added after a cell-identity version: while a field holds the value that reproduces the behaviour from
before it existed, it stays out of the id, so adding it never re-keys old cells; any other value (a later change
of its default included) is in the id, so a changed default never finds a stale cell.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from bench.core.spec import Param

NO_NEUTRAL = object()


def spec(doc: str, param: Param | None = None, *, identity: bool = True, neutral: Any = NO_NEUTRAL,
         not_in_identity: tuple[str, ...] = ()):
    """A dataclass field without a default, carrying its doc, valid values and identity rule in metadata.

    ``neutral`` is a value, or a predicate of the node's value (``lambda v: not v["enabled"]``: a switched-off
    block leaves no trace). ``not_in_identity`` names keys of a mapping-valued field that never change results.
    """
    return dataclasses.field(metadata={"doc": doc, "param": param, "identity": identity, "neutral": neutral,
                                       "not_in_identity": not_in_identity})


def meta(f: dataclasses.Field) -> dict:
    return {"doc": "", "param": None, "identity": True, "neutral": NO_NEUTRAL, "not_in_identity": (), **f.metadata}


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


def not_in_identity(schema) -> tuple[str, ...]:
    """The option names of a plug-in's config dataclass that never change its result: fields declared
    ``spec(identity=False)``, and ``<field>.<key>`` for a mapping field's ``not_in_identity`` keys. A plug-in class
    derives its ``not_in_identity`` from its schema with this, so the rule is written once, beside the field."""
    out: list[str] = []
    for f in dataclasses.fields(schema):
        m = meta(f)
        if not m["identity"]:
            out.append(f.name)
        out += [f"{f.name}.{key}" for key in m["not_in_identity"]]
    return tuple(out)
