"""Typed configs: the schema of every fixed group, the check that turns a composed node into a typed object, and
composing the config from Python.

- ``schema``: dataclasses for the top level, ``train``, ``eval``, ``data`` (one per ``data.kind``) and ``model``
  (one per ``model.kind``); each field has a type, its valid values (``bench.core.options.Param``), a docstring, and
  whether it determines a cell's result (``identity``)
- ``typed``: a composed node -> its schema's dataclass, or a one-line ``ConfigError``
- ``compose``: the composed config (or one group's node) from Python, honouring the running app's search path

The YAML files under ``conf/`` are the only source of values; the schemas hold types, ranges and docs.
"""
