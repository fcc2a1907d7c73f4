"""A final sweep on tuned values: ``tuning=<sweep>/<criterion>`` gives each cell its selection row's values.

    python bench/run.py -m experiment=robustness tuning=tune/oracle seed=100,101,102,103,104

The cell's (loss, noise, rate) picks the row of ``results/tuning/<sweep>/selection.csv``; its tuned keys
(``train.learning_rate``, ``loss.beta``, ...) replace the config's values before the cell's identity is taken, so
two rules that pick the same values share one cell. The record says where the values came from (``hp_source``).
A rule's picked checkpoint (a sweep that scored checkpoints) is not a config value: the cell trains the same run,
``hp_source.checkpoint`` says which point of its curve is the rule's result, and the report reads it there. With
``eval.checkpoints.stop_at_pick`` the run ends there (``eval.checkpoints.stop_after``, not part of the cell's id):
at the latest checkpoint any rule picked for the same values, so one run serves every rule that shares it.
Final seeds must be fresh: a seed the sweep tuned on is an error (its test score would be the selection's own).

A condition the sweep did not tune borrows a tuned one's selection with ``tuning_from=<noise>``: that noise's tuned
rate nearest the cell's own, ties to the higher one (length-biased 0.4 from random flips 0.4, random 0.1 from 0.2);
``hp_source.from`` records which. The same rule for every arm, stated, instead of a tuning of its own per condition.
"""
from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from bench.core.options import ConfigError
from bench.tune import criteria as crit
from bench.tune.selection import read, read_plan, tuning_dir

TUNED_PREFIXES = ("train.", "loss.")
DEFAULT_SOURCE = {"source": "default"}


def apply(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any]]:
    """(the config with the selected values, the record's ``hp_source``); the config as it is without tuning."""
    ref = cfg.get("tuning")
    if not ref:
        if cfg.get("tuning_from"):
            raise ConfigError(f"tuning_from={cfg.tuning_from!r} borrows a tuning sweep's selection, and tuning is "
                              "null; valid: tuning=<sweep>/<criterion> beside it (e.g. tuning=verdict_tune/oracle), "
                              "or tuning_from=null.")
        return cfg, dict(DEFAULT_SOURCE)
    sweep, sep, criterion = str(ref).rpartition("/")
    if not sep or not sweep:
        raise ConfigError(f"tuning={ref!r}; valid: <sweep>/<criterion>, e.g. tune/oracle (criteria: "
                          f"{', '.join(crit.names())}).")
    try:
        crit.get(criterion)
    except ValueError as e:
        raise ConfigError(f"tuning={ref!r}: {e}") from None
    folder = tuning_dir(cfg.paths.results, sweep)
    plan = read_plan(folder)
    if int(cfg.seed) in [int(s) for s in plan["seeds"]]:
        raise ConfigError(f"seed={cfg.seed} was a tuning seed of sweep {sweep!r} (seeds {plan['seeds']}); valid: a "
                          "fresh seed, so that no test score is the selection's own.")
    loss, rows = cfg.loss.get("name") or str(cfg.loss.get("_target_")), read(folder)
    noise_name, rate = cfg.noise.get("name"), float(cfg.noise.rate)
    borrowed = cfg.get("tuning_from")
    if borrowed:
        noise_name, rate = nearest_condition(rows, loss, str(borrowed), rate, criterion, ref)
    own = (cfg.noise.get("name"), float(cfg.noise.rate))
    row = find_row(rows, loss, noise_name, rate, criterion)
    if row is None:
        have = sorted({(r["loss"], r["noise"], float(r["rate"])) for r in rows if r["criterion"] == criterion})
        raise ConfigError(f"tuning={ref!r} has no row for loss={loss} noise={noise_name} noise.rate={rate:g}; "
                          f"valid: one of {', '.join(f'{a} {b}@{c:g}' for a, b, c in have[:12])}"
                          f"{' ...' if len(have) > 12 else ''}, or tuning_from=<a tuned noise> to borrow one.")
    if _missing(_plain(row.get("val_score"))):
        raise ConfigError(f"tuning={ref!r}: the selection for loss={loss} noise={noise_name} noise.rate={rate:g} has "
                          f"no validation score ({row.get('note') or 'its tuning cells have none'}): its values are "
                          "the defaults, not a selection; valid: re-run the tuning sweep once its failed cells are "
                          "fixed (their records say why).")
    values = tuned_values(row)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(out):
        for key, value in values.items():
            OmegaConf.update(out, key, value, merge=False)
    source = {"source": "tuning", "tuning": str(ref), "sweep": sweep, "criterion": criterion, "values": values,
              "val_score": _plain(row.get("val_score")), "at_edge": bool(row.get("at_edge")),
              "edge_keys": row.get("edge_keys") if isinstance(row.get("edge_keys"), str) else ""}
    if (noise_name, rate) != own:  # borrowed (tuning_from): the report checks it is still the one to borrow
        source["from"] = {"noise": noise_name, "rate": rate}
    checkpoint = _plain(row.get("checkpoint"))
    if not _missing(checkpoint):  # the rule also picked when to stop: the run is the same, its curve is read there
        if cfg.eval.checkpoints.every is None:
            raise ConfigError(f"tuning={ref!r} picked a checkpoint (epoch {checkpoint:g}) for loss={loss}, and "
                              "eval.checkpoints.every is null here; valid: the tuning sweep's eval.checkpoints "
                              "settings, so the final cell's curve has that checkpoint.")
        source["checkpoint"] = float(checkpoint)
        if cfg.eval.checkpoints.get("stop_at_pick"):
            _stop_at(out, latest_pick(rows, loss, noise_name, rate, values))
    return out, source


def _stop_at(cfg: DictConfig, epoch: float) -> None:
    """``eval.checkpoints.stop_at_pick``: the run ends at ``epoch`` (``eval.checkpoints.stop_after``)."""
    if cfg.eval.checkpoints.get("stop_after") is not None:
        raise ConfigError(f"eval.checkpoints.stop_after={cfg.eval.checkpoints.stop_after} and "
                          "eval.checkpoints.stop_at_pick=true both say where to stop; valid: one of them "
                          "(stop_at_pick takes the tuning rule's checkpoint).")
    with open_dict(cfg):
        cfg.eval.checkpoints.stop_after = epoch


def latest_pick(rows: list[dict], loss: str, noise: str, rate: float, values: dict) -> float:
    """The latest checkpoint any rule picked for ``values`` at (loss, noise, rate): the run that reaches it serves
    every rule that picked those values (one cell, its curve read at each rule's checkpoint)."""
    picks = [float(_plain(r["checkpoint"])) for r in rows
             if r["loss"] == loss and r["noise"] == noise and math.isclose(float(r["rate"]), rate, abs_tol=1e-9)
             and not _missing(_plain(r.get("checkpoint"))) and not _missing(_plain(r.get("val_score")))
             and _same_values(tuned_values(r), values)]
    return max(picks)


def nearest_condition(rows: list[dict], loss: str, noise: str, rate: float, criterion: str,
                      ref: str) -> tuple[str, float]:
    """(noise, rate) of the tuned condition a cell borrows with ``tuning_from=noise``: that noise's tuned rate
    nearest the cell's, ties to the higher rate (a noisy cell takes a noisy condition's values)."""
    rates = sorted({float(r["rate"]) for r in rows if r["criterion"] == criterion and r["loss"] == loss
                    and r["noise"] == noise})
    if not rates:
        have = sorted({r["noise"] for r in rows if r["criterion"] == criterion and r["loss"] == loss})
        raise ConfigError(f"tuning_from={noise!r}: tuning={ref!r} tuned no {noise} condition for loss={loss}; "
                          f"valid: one of {', '.join(have) or '(none: the sweep has no row for this loss)'}.")
    return noise, min(rates, key=lambda r: (round(abs(r - rate), 9), -r))  # 0.3: 0.2 and 0.4 tie (in floats too)


def find_row(rows: list[dict], loss: str, noise: str, rate: float, criterion: str) -> dict | None:
    """The selection row of (loss, noise, rate) under ``criterion``, or None."""
    for r in rows:
        if r["criterion"] == criterion and r["loss"] == loss and r["noise"] == noise and math.isclose(
                float(r["rate"]), float(rate), abs_tol=1e-9):
            return r
    return None


def tuned_values(row: dict) -> dict[str, Any]:
    """The tuned keys of a selection row with a value (a knob another loss tunes is NaN in this row)."""
    return {k: _plain(v) for k, v in row.items() if k.startswith(TUNED_PREFIXES) and not _missing(v)}


def is_current(source: dict, rows: list[dict] | None, loss: str, noise: str, rate: float) -> bool:
    """Whether a final cell's tuned values are still its rule's selection: False once the tuning sweep was re-run
    (a wider grid, more seeds) and picked other values. ``rows``: the sweep's selection (None: none to check)."""
    if source.get("source") != "tuning" or rows is None or "values" not in source:
        return True
    if source.get("from"):  # a borrowed selection (tuning_from): still the nearest tuned rate, and its row
        took = (source["from"]["noise"], float(source["from"]["rate"]))
        try:
            if nearest_condition(rows, loss, took[0], rate, source.get("criterion"), "") != took:
                return False  # the sweep has since tuned a nearer rate: this cell would borrow another row
        except ConfigError:
            return False
        noise, rate = took
    row = find_row(rows, loss, noise, rate, source.get("criterion"))
    if row is None:
        return False
    now, then = tuned_values(row), source["values"]
    picked = _plain(row.get("checkpoint"))
    same_checkpoint = _missing(picked) == ("checkpoint" not in source) and (
        _missing(picked) or _same(float(picked), float(source["checkpoint"])))
    return _same_values(now, then) and same_checkpoint


def _same_values(a: dict, b: dict) -> bool:
    """The same tuned keys with the same values (floats to round-off)."""
    return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v):
    return v.item() if hasattr(v, "item") else v
