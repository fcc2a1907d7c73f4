"""Checks of a command line before Hydra runs it, so that bad input ends in one line, not a traceback.

- Every option and key the overrides name must compose: ``loss=dpoo`` or ``train.learnig_rate=1`` is one line
  with a did-you-mean (for a sweep, each swept value is composed once).
- A single run (no ``-m``) also builds and checks all its parts (``bench.cell.parts``): ``train.learning_rate=-1``
  or ``seed=abc`` fails here, in seconds, before any data or model is loaded. In a sweep that check runs in each
  cell, so one bad cell is recorded as failed and the others go on.

Only a ``ConfigError`` (a bad value, unreadable data: ``bench.core.options``) is said in one line; anything else
raised here is a bug and shows its traceback. ``HYDRA_FULL_ERROR=1`` re-raises a config error with its traceback.
"""
from __future__ import annotations

import os
import re
import sys

from bench.cell.parts import build_parts
from bench.config.compose import compose, group_options
from bench.core.options import ConfigError, did_you_mean
from bench.tune.apply import apply

EXIT_CONFIG = 2


def precheck(argv: list[str]) -> int:
    """0 when the command line is fine (or not ours to check: --help, --cfg, ...), else print and return 2."""
    from hydra._internal.utils import get_args_parser

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # argparse already said what is wrong
        return 0
    if any([args.help, args.hydra_help, args.info, args.cfg, args.shell_completion, args.config_path,
            args.config_dir, args.config_name, args.experimental_rerun]):
        return 0
    try:
        jobs = _variants(args.overrides) if args.multirun else [list(args.overrides)]
        for overrides in jobs:
            cfg = _compose(overrides)
        if not args.multirun:
            build_parts(apply(cfg)[0])
    except ConfigError as e:  # anything else at start-up is a bug: its traceback shows
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"prefnoise: config error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _variants(overrides: list[str]) -> list[list[str]]:
    """One override list per swept value (the others at their first value): every value composes once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    first = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
             for o in parsed]
    out = [first]
    for i, o in enumerate(parsed):
        if o.is_sweep_override():
            for value in list(o.sweep_string_iterator())[1:]:
                out.append(first[:i] + [f"{o.get_key_element()}={value}"] + first[i + 1:])
    return out


def _compose(overrides: list[str]):
    """The composed config, or a ``ConfigError`` saying in one line which override is wrong and what is valid."""
    from hydra.errors import HydraException, MissingConfigException

    try:
        return compose(overrides)
    except MissingConfigException as e:
        found = re.search(r"Could not (?:find|load) '([^']+)'", str(e))
        where = found.group(1) if found else "?"
        group, _, option = where.rpartition("/")
        options = e.options or (group_options(group) if group else None)
        if options:
            hint = did_you_mean(f"{group} option", option, options).replace(".", f" (no {where}.yaml on the "
                                                                             "config search path).", 1)
            raise ConfigError(f"{group}={option}: {hint}") from e
        raise ConfigError(f"{where}: no such config (looked in the config search path)") from e
    except HydraException as e:
        cause = e.__cause__
        found = re.search(r"Could not override '([^']+)'", str(e))
        if found and cause is not None and "not in struct" in str(cause):
            raise ConfigError(_unknown_key(found.group(1), overrides)) from e
        raise ConfigError(str(e)) from e


def _unknown_key(dotted: str, overrides: list[str]) -> str:
    from omegaconf import OmegaConf

    parent, _, key = dotted.rpartition(".")
    rest = [o for o in overrides if not o.lstrip("+~").startswith(dotted + "=")]
    try:
        node = OmegaConf.select(compose(rest), parent) if parent else compose(rest)
        keys = list(node.keys()) if node is not None and OmegaConf.is_dict(node) else []
    except Exception:  # noqa: BLE001 - the hint is a convenience
        keys = []
    hint = did_you_mean("key", key, keys).replace(" Valid choices", " Valid keys") if keys else f"unknown key {key!r}."
    return f"{dotted}: {hint} (to add a new key on purpose, write +{dotted}=...)"


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
