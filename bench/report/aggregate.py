"""From cell records to tidy pandas tables: cells, per-seed metric values, the robustness table, missing cells.

Everything here reads ``results/`` through :mod:`bench.core.records` (``iter_records`` / ``rows_of``) and never
trains or evaluates. Losses are keyed by their display ``label`` (a record's ``loss_label``, else ``loss``), so two
variants of one loss (``ROPO`` and ``ROPO (loss only)``) stay separate curves.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from bench.core.options import ConfigError
from bench.core.records import iter_records, rows_of, rule_of
from bench.report.settings import distinguishing
from bench.tune.apply import is_current
from bench.tune.selection import checkpoint_key, read, tuning_dir

# noise names that mean "no noise": their rate-0 cells serve as the rate-0 point of every noise type's curve
CLEAN_NOISE = {"none", "clean", "null", ""}
CELL_KEYS = ["label", "noise", "rate", "seed"]
GROUP_KEYS = ["label", "noise", "rate", "metric"]
RATE_DECIMALS = 10  # rates come from configs as floats; round so 0.2 and 0.2000000001 group together


def conditions_in(df: pd.DataFrame) -> list[tuple[str, float]]:
    """The distinct (noise, rate) pairs of ``df``; a noise model without a rate (NaN) is one condition, not one per
    row (NaN is not equal to itself, so a set of pairs would keep every row's)."""
    pairs = df[["noise", "rate"]].astype({"noise": str, "rate": float}).drop_duplicates()
    return list(pairs.itertuples(index=False, name=None))


def in_condition(df: pd.DataFrame, noise, rate) -> pd.Series:
    """Rows of ``df`` in condition (``noise``, ``rate``); a NaN rate matches the rows without one."""
    r = df["rate"].astype(float)
    return (df["noise"].astype(str) == str(noise)) & (r.isna() if pd.isna(rate) else r == rate)


@dataclass
class Results:
    """Everything the report needs, loaded once.

    cells:  one row per record kept (after de-duplication), with status and error fields.
    values: one row per (ok cell, metric) with the seed's value: the unit every statistic is computed from.
    failed: the failed cells; missing: cells of a sweep's cross product without any record.
    notes:  human-readable caveats (duplicates replaced, mixed models, ...) that the report must show.
    """

    cells: pd.DataFrame
    values: pd.DataFrame
    failed: pd.DataFrame
    missing: pd.DataFrame
    metric_info: dict[str, dict]
    records: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.cells.empty

    @property
    def hp_sources(self) -> list[str]:
        """The sources of values present (``default`` first, then the tuning rules)."""
        hps = set(self.cells["hp"].dropna()) if "hp" in self.cells else {"default"}
        return sorted(hps, key=lambda h: (h != "default", h))

    def subset(self, hp: str) -> Results:
        """The cells whose values came from one source: one curve per loss, one baseline (the report's unit)."""
        keep = set(self.cells.loc[self.cells["hp"] == hp, "cell_id"])
        pick = lambda df: df[df["cell_id"].isin(keep)].reset_index(drop=True) if "cell_id" in df else df  # noqa: E731
        missing = self.missing[self.missing["label"].isin(set(self.cells.loc[self.cells["hp"] == hp, "label"]))]
        return Results(pick(self.cells), pick(self.values), pick(self.failed), missing.reset_index(drop=True),
                       self.metric_info, [r for r in self.records if r.get("cell_id") in keep], list(self.notes))


def _norm_rate(rate, noise) -> float:
    if rate is None or (isinstance(rate, float) and np.isnan(rate)):
        return 0.0 if str(noise).lower() in CLEAN_NOISE else np.nan
    return round(float(rate), RATE_DECIMALS)


def is_tuning_cell(rec: dict) -> bool:
    """A cell of a tuning sweep: it scored the validation split (``eval.validation.enabled``)."""
    return bool((((rec.get("config") or {}).get("eval") or {}).get("validation") or {}).get("enabled"))


def hp_of(rec: dict) -> str:
    """Where a cell's training and loss values came from: ``default``, or the selection rule of a tuning sweep."""
    return rule_of(rec.get("hp_source") or {})


def per_hp_source(records: list[dict]) -> list[dict]:
    """One record per (cell, source of its values), each with ``hp`` set: the unit the report groups. A cell
    counted for a tuning rule is ``<cell id>@<rule>`` in the report's tables."""
    out = []
    for r in records:
        for s in _unique(r.get("hp_sources") or [r.get("hp_source") or {"source": "default"}]):
            hp = hp_of({"hp_source": s})
            out.append({**r, "hp_source": s, "hp": hp, **at_checkpoint(r, s.get("checkpoint")),
                        "cell_id": r.get("cell_id") if hp == "default" else f"{r.get('cell_id')}@{hp}"})
    return out


def at_checkpoint(rec: dict, epoch) -> dict:
    """A record's ``metrics`` at the checkpoint a tuning rule picked (``{}``: none picked, the end's stand). A pick
    that is not on the cell's own checkpoint grid is read at the first checkpoint at or past it, where a run asked
    to stop at the pick ends (``bench.evaluation.checkpoints``; ``checkpoint_pick`` keeps the pick): a selection
    borrowed from another rate (``tuning_from``) by a cleaner, whose cleaned data, so its epoch, has another length
    there. Checkpoints are every so many steps: the same steps are other epochs."""
    if epoch is None or not rec.get("curve"):
        return {}
    past = [p for p in rec["curve"] if checkpoint_key(p["epoch"]) >= checkpoint_key(epoch)]
    if not past:
        return {"metrics": {}, "checkpoint_missing": float(epoch)}
    p = min(past, key=lambda q: float(q["epoch"]))  # the pick itself where it is on the grid
    on = checkpoint_key(p["epoch"]) == checkpoint_key(epoch)
    info = rec.get("metric_info") or {}
    keep = {k: v for k, v in rec.get("metrics", {}).items()  # the method's own figures (about its data)
            if k not in p and (info.get(k) or {}).get("evaluator") == rec.get("method")}
    return {"metrics": {**keep, **{k: v for k, v in p.items() if k not in ("step", "epoch")}},
            "checkpoint": float(p["epoch"]), **({} if on else {"checkpoint_pick": float(epoch)})}


def current_only(records: list[dict], results_dir) -> tuple[list[dict], list[str]]:
    """(the per-hp-source records whose tuned values are still their rule's selection, the ids of those that are
    not): a final cell run on an earlier selection of a tuning sweep that has been re-run since is stale."""
    selections: dict[str, list[dict] | None] = {}

    def selection_of(sweep):
        if sweep not in selections:
            try:
                selections[sweep] = read(tuning_dir(results_dir, sweep))
            except ConfigError:  # no selection yet (``bench.tune.selection.read``)
                selections[sweep] = None  # nothing to check against
        return selections[sweep]

    keep, stale = [], []
    for r in records:
        s = r.get("hp_source") or {}
        rows = selection_of(s["sweep"]) if s.get("sweep") else None  # is_current: no selection, nothing to check
        noise = r.get("clean_of", r.get("noise"))  # a clean cell of another sweep (clean_cells_of): its own noise
        if is_current(s, rows, r.get("loss"), noise, _norm_rate(r.get("rate"), noise)):
            keep.append(r)
        else:
            stale.append(str(r.get("cell_id")))
    return keep, stale


def _unique(sources: list[dict]) -> list[dict]:
    """One source per rule: the latest a record lists (an earlier one is from before its tuning sweep was re-run)."""
    out: dict[str, dict] = {}
    for s in sources:
        out[rule_of(s)] = s
    return list(out.values())


def curve_of(rec: dict) -> str:
    """A cell's loss (or method) as a curve, whatever the source of its values: its display label, less a variant
    a tuning rule picked (f-DPO's divergence may differ between conditions: it names no curve of its own)."""
    label = rec.get("loss_label") or rec.get("loss")
    if hp_of(rec) != "default":
        for v in ((rec.get("hp_source") or {}).get("values") or {}).values():
            label = label.replace(f" ({v})", "") if isinstance(v, str) else label
    return label


def label_of(rec: dict) -> str:
    """A cell's curve and its tuning rule when not at the defaults (``DPO [oracle]``)."""
    hp, curve = hp_of(rec), curve_of(rec)
    return curve if hp == "default" else f"{curve} [{hp}]"


def _cell_row(rec: dict) -> dict:
    err = rec.get("error") or {}
    return {
        "cell_id": rec.get("cell_id"),
        "sweep": rec.get("sweep"),
        "status": rec.get("status"),
        "loss": rec.get("loss"),
        "label": label_of(rec),
        "curve": curve_of(rec),
        "hp": hp_of(rec),
        "noise": rec.get("noise"),
        "rate": _norm_rate(rec.get("rate"), rec.get("noise")),
        "seed": rec.get("seed"),
        "data": rec.get("data"),
        "model": rec.get("model"),
        "finished_at": rec.get("finished_at") or "",
        "error_type": err.get("type"),
        "error_message": err.get("message"),
        "error_where": err.get("where"),
    }


FIELD_DEFAULTS = {"method": "standard"}  # records written before a field existed carry its default
def tunings_of(rec: dict) -> list[str]:
    """Every ``<tuning sweep>/<rule>`` (or ``default``) that gave a cell its values for its source: a cell two tuning
    sweeps picked for the same rule (DPO's cells, reused by ``tune_seed``) answers to both."""
    hp = rec.get("hp") or hp_of(rec)
    sources = [s for s in (rec.get("hp_sources") or [rec.get("hp_source") or {}]) if hp_of({"hp_source": s}) == hp]
    return ["default"] if hp == "default" else [str(s.get("tuning") or f"{s.get('sweep')}/{hp}") for s in sources]


DERIVED = {"hp": lambda r: r.get("hp") or hp_of(r), "tuning": tunings_of}  # fields computed from a record


def parse_where(items: list[str], error) -> dict[str, list[str]]:
    """``--where FIELD=V1,V2`` options (repeatable) as ``matches`` reads them; ``error(message)`` for a bad one."""
    where = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            error(f"--where {item!r}: expected FIELD=V1,V2 (e.g. --where loss=dpo,ropo)")
        where[key] = values.split(",")
    return where


def matches(record: dict, where: dict[str, list[str]] | None) -> bool:
    """``where`` maps a record field (loss, noise, rate, seed, method, hp, tuning, ...) to the values to keep; a
    derived field with several values (``tuning``) matches when any of them is kept."""
    for key, allowed in (where or {}).items():
        value = DERIVED[key](record) if key in DERIVED else record.get(key, FIELD_DEFAULTS.get(key))
        if isinstance(value, list):
            if not any(str(v) in allowed for v in value):
                return False
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not any(_num(a) == float(value) for a in allowed):
                return False
        elif str(value) not in allowed:
            return False
    return True


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ended_by_hand(records: list[dict], cells: pd.DataFrame, notes: list[str]) -> None:
    """The cells that ended early with no tuning rule's pick to read (``stop_after`` by hand) are shorter runs than
    their schedule says: each labelled so in ``cells`` (``[ended at epoch 2]``: its own curve), and a note."""
    by_hand = {r.get("cell_id"): r["stopped"].get("epoch") for r in records
               if r.get("stopped") and r.get("checkpoint") is None}
    if by_hand:
        ended = cells["cell_id"].map(by_hand)
        cells.loc[ended.notna(), "label"] += ended[ended.notna()].map(lambda e: f" [ended at epoch {e:g}]")
        notes.append(f"{len(by_hand)} cell(s) ended early (eval.checkpoints.stop_after, no tuning rule's pick): read "
                     "where they ended, not at the end of their schedule, each its own curve ([ended at epoch ...]).")


def load_results(results_dir: str | os.PathLike, sweep: str | None = None, where: dict | None = None,
                 clean_from: str | None = None) -> Results:
    """Read every record (optionally of one sweep, or matching ``where``), de-duplicate, find failed and missing cells.
    ``clean_from``: another sweep whose clean rate-0 cells serve as rate 0 of this one (``clean_cells_of``)."""
    every = list(iter_records(results_dir))
    tuning = [r for r in every if is_tuning_cell(r)]  # one loss at many settings: the tuning section's, not ours
    studied = per_hp_source([r for r in every if not is_tuning_cell(r)])
    records = [r for r in studied if (sweep is None or r.get("sweep") == sweep) and matches(r, where)]
    notes: list[str] = [f"{len(tuning)} tuning cell(s) (validation scoring on) are left out of the robustness tables: "
                        "the tuning section reads them."] if tuning else []
    if clean_from is not None:
        if clean_from == (sweep or (where or {}).get("sweep", [None])[0]):
            raise ConfigError(f"clean_from={clean_from!r} is the reported sweep itself: name another sweep, whose clean "
                              "cells on the same seeds start this one's curves")
        clean, note = clean_cells_of(studied, clean_from, records, where)
        records, notes = records + clean, notes + [note]
    records, stale = current_only(records, results_dir)
    cells = pd.DataFrame([_cell_row(r) for r in records], columns=list(_cell_row({}).keys()))
    apart = distinguishing(records, label_of, _condition)  # two experiments of one condition: two curves
    if apart:
        cells["label"] = cells["cell_id"].map(apart).fillna(cells["label"])
    if apart:
        split = sorted({label_of(r) for r in records if r.get("cell_id") in apart})
        notes.append(f"records of {', '.join(split)} at one condition differ in their settings (training length, "
                     "data, a knob): not merged, each setting its own curve, its label naming what differs.")
    _ended_by_hand(records, cells, notes)
    if stale:
        notes.append(f"{len(stale)} tuned cell(s) ran on values their rule no longer selects (the tuning sweep was "
                     f"re-run since) and are left out: {', '.join(sorted(stale)[:5])}{' ...' if len(stale) > 5 else ''}.")
    # before de-duplication: a superseded record still means "not missing". With an explicit selection (where),
    # the selection is the grid: its cells are checked together, whatever sweep name each record carries.
    missing = missing_cells(cells.assign(sweep="selection") if where else cells)
    cells, dropped = _dedupe(cells)
    if dropped:
        notes.append(
            f"{dropped} record(s) superseded by another record of the same (loss, noise, rate, seed, data, model) "
            "and settings (an older code version, or a failed run): kept the complete one, then the most recent."
        )
    kept = set(cells["cell_id"])
    records = [r for r in records if r.get("cell_id") in kept]
    if cells[["data", "model"]].drop_duplicates().shape[0] > 1:
        combos = ", ".join(f"{d}/{m}" for d, m in cells[["data", "model"]].drop_duplicates().itertuples(index=False))
        notes.append(f"records span several data/model combinations ({combos}); they are pooled: use --sweep.")
    pooled = sorted({str(r["sweep"]) for r in records if r.get("sweep") is not None and "clean_of" not in r})  # clean_from's cells: its own note
    if len(pooled) > 1:
        notes.append(f"records of {len(pooled)} sweeps are pooled: {', '.join(pooled)}.")

    values = _values(records, cells)
    values, broadcast = _broadcast_clean(values)
    if broadcast and any(str(r.get("noise")).lower() in CLEAN_NOISE and "clean_of" not in r for r in records):
        notes.append(f"rate-0 cells of the clean condition ({', '.join(broadcast)}) serve as rate 0 of every noise type.")
    _value_notes(records, cells, values, notes)
    failed = cells[cells["status"] != "ok"].reset_index(drop=True)
    return Results(cells, values, failed, missing, _metric_info(records), records, notes)


def _value_notes(records: list[dict], cells: pd.DataFrame, values: pd.DataFrame, notes: list[str]) -> None:
    """The notes on cells the tables leave out or read from elsewhere: no rate, no metric, borrowed results."""
    no_rate = cells[cells["rate"].isna()]
    if not no_rate.empty:
        notes.append(f"{len(no_rate)} record(s) of a noisy condition have no rate and are left out of the tables: "
                     f"{', '.join(map(str, no_rate['cell_id'][:5]))}.")
    empty_ok = set(cells.loc[cells["status"] == "ok", "cell_id"]) - set(values["cell_id"])
    if empty_ok:
        notes.append(f"{len(empty_ok)} complete cell(s) carry no metric values: {', '.join(sorted(empty_ok)[:5])}.")
    moved = sorted({label_of(r) for r in records if r.get("checkpoint_pick") is not None})
    if moved:
        n = sum(1 for r in records if r.get("checkpoint_pick") is not None)
        notes.append(f"{n} cell(s) of {', '.join(moved)} are read at the first checkpoint at or past their rule's pick, "
                     "which is not on their own checkpoint grid (a selection borrowed from another rate, whose data "
                     "had another length: `checkpoint_pick` in the records' view, bench.report.aggregate.at_checkpoint); "
                     "a run asked to stop at the pick ends there.")
    borrowed = sorted({label_of(r) for r in records if r.get("borrowed_from") and r.get("status") == "ok"})
    if borrowed:
        n = sum(1 for r in records if r.get("borrowed_from") and r.get("status") == "ok")
        notes.append(f"{n} cell(s) of {', '.join(borrowed)} named no pair to clean (flip rate 0), so they trained as "
                     "their method=standard twin did: their results are that cell's (`borrowed_from`, "
                     "bench.cell.borrow).")


def clean_cells_of(studied: list[dict], clean_from: str, records: list[dict], where: dict | None) -> tuple[list[dict], str]:
    """(the clean cells of sweep ``clean_from`` that serve as rate 0 of ``records``' curves, a note saying so). A
    study's secondary conditions (``verdict_secondary``: flips at 0.1 and 0.3, length-biased at 0.2 and 0.4) train no
    clean cell of their own; its primary part trained them on the same seeds. Taken: the complete rate-0 cells of
    ``clean_from`` whose injector flipped and dropped no pair (``noise_stats``), on a seed and a curve (label) that
    ``records`` have and not among them, matching ``where`` but for its noise and sweep (a rate filter without 0
    takes none); one per curve and seed. Each is relabelled noise ``none``, so it is rate 0 of every noise type
    lacking its own (``_broadcast_clean``): with no label changed, a cell's training is its seed's whatever the
    noise model (pair, data order and initialization come from the seed)."""
    if "rate" in (where or {}) and not matches({"rate": 0.0}, {"rate": where["rate"]}):
        return [], f"--clean-from {clean_from}: --where rate={','.join(where['rate'])} leaves out rate 0: no clean cell taken."
    seeds, labels = {r.get("seed") for r in records}, {label_of(r) for r in records}
    have = {r.get("cell_id") for r in records}
    kept = {k: v for k, v in (where or {}).items() if k not in ("noise", "rate", "sweep")}
    found = sorted((r for r in studied if r.get("sweep") == clean_from and r.get("status") == "ok"
                    and _norm_rate(r.get("rate"), r.get("noise")) == 0 and _unchanged(r) and r.get("cell_id") not in have
                    and r.get("seed") in seeds and label_of(r) in labels and matches(r, kept)),
                   key=lambda r: (label_of(r), str(r.get("seed")), str(r.get("noise")), str(r.get("finished_at"))))
    one: dict[tuple, dict] = {}
    for r in found:  # several noise types' rate 0 of one curve and seed: the first noise name's, the latest run
        key = (label_of(r), r.get("seed"))
        if one.get(key, r)["noise"] == r.get("noise"):
            one[key] = r
    out = [{**r, "noise": "none", "clean_of": r.get("noise")} for r in one.values()]
    if not out:
        return [], (f"--clean-from {clean_from}: no complete rate-0 cell of sweep {clean_from!r} with no pair flipped on "
                    f"these seeds and curves: the curves start at their lowest noisy rate.")
    by = ", ".join(map(str, sorted({r.get("seed") for r in out}, key=lambda x: (str(type(x)), x))))
    of = ", ".join(sorted({str(r["clean_of"]) for r in out}))
    return out, (f"{len(out)} clean rate-0 cell(s) of sweep {clean_from!r} ({of} at rate 0, no pair flipped or dropped; "
                 f"seeds {by}) serve as rate 0 of every noise type (--clean-from {clean_from}).")


def _unchanged(rec: dict) -> bool:
    """No pair of the cell's data was flipped or dropped by its noise model (its record's ``noise_stats``)."""
    if str(rec.get("noise")).lower() in CLEAN_NOISE:
        return True
    s = rec.get("noise_stats") or {}
    return s.get("n_flipped") == 0 and s.get("n_pairs") is not None and s.get("n_trained_pairs", s["n_pairs"]) == s["n_pairs"]


def _condition(rec: dict) -> tuple:
    return (rec.get("noise"), _norm_rate(rec.get("rate"), rec.get("noise")), rec.get("seed"), rec.get("data"),
            rec.get("model"))


def _dedupe(cells: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One record per (label, noise, rate, seed, data, model): prefer an ok record, then the latest."""
    if cells.empty:
        return cells, 0
    order = cells.assign(_ok=cells["status"] == "ok").sort_values(["_ok", "finished_at"])
    no_rate = order["rate"].isna()  # a scale injector's strengths: no rate to key on (the tables leave them out)
    kept = pd.concat([order[~no_rate].drop_duplicates(CELL_KEYS + ["data", "model"], keep="last"), order[no_rate]])
    kept = kept.drop(columns="_ok")
    kept = kept.sort_values(["label", "noise", "rate", "seed"], na_position="last").reset_index(drop=True)
    return kept, len(cells) - len(kept)


def _values(records: list[dict], cells: pd.DataFrame) -> pd.DataFrame:
    """Per-seed metric values of the ok cells kept (``rows_of`` gives the long format and directions)."""
    cols = ["label", "loss", "noise", "rate", "seed", "cell_id", "sweep", "metric", "value", "higher_is_better"]
    rows = rows_of(records)
    if rows.empty or cells.empty:
        return pd.DataFrame(columns=cols)
    ok = cells[cells["status"] == "ok"][["cell_id", "label", "rate"]]
    rows = rows.drop(columns=["rate"]).merge(ok, on="cell_id", how="inner")
    rows = rows[rows["metric"].notna()]
    rows["value"] = pd.to_numeric(rows["value"], errors="coerce")
    rows = rows[rows["value"].notna()]
    return rows[cols].reset_index(drop=True)


def _broadcast_clean(values: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Copy clean-condition (noise "none") rate-0 values to each noisy noise type lacking its own rate-0 value.

    A sweep may train the clean baseline once instead of once per noise type; without this, every noisy curve
    would start at its first positive rate and the clean-data cost would be invisible.
    """
    is_clean = values["noise"].astype(str).str.lower().isin(CLEAN_NOISE)
    clean = values[is_clean & (values["rate"] == 0)]
    noisy_types = sorted(values.loc[~is_clean, "noise"].dropna().unique())
    if clean.empty or not noisy_types:
        return values, []
    extra = []
    for noise in noisy_types:
        have = values[(values["noise"] == noise) & (values["rate"] == 0)][["label", "seed", "metric"]]
        add = clean.merge(have, on=["label", "seed", "metric"], how="left", indicator=True)
        add = add[add["_merge"] == "left_only"].drop(columns="_merge").assign(noise=noise)
        extra.append(add)
    out = pd.concat([values[~is_clean | (values["rate"] != 0)], *extra], ignore_index=True)
    return out, sorted(clean["noise"].astype(str).unique())


def _metric_info(records: list[dict]) -> dict[str, dict]:
    info: dict[str, dict] = {}
    for rec in records:
        for name, meta in (rec.get("metric_info") or {}).items():
            info.setdefault(name, dict(meta or {}))
        for name in rec.get("metrics") or {}:
            info.setdefault(name, {"higher_is_better": None})
    return info


def direction(higher_is_better) -> str:
    """'higher', 'lower', or 'none' (no direction: e.g. response length)."""
    if higher_is_better is None or (isinstance(higher_is_better, float) and np.isnan(higher_is_better)):
        return "none"
    return "higher" if bool(higher_is_better) else "lower"


def t_interval(x, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval over seeds; NaN bounds with fewer than two values."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if n < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def robustness_table(res: Results, level: float = 0.95) -> pd.DataFrame:
    """One row per (loss, noise, rate, metric): mean, t-interval over seeds, n_seeds, direction, and how many
    cells of that group failed or are missing (so a thin mean is visibly thin)."""
    cols = GROUP_KEYS + ["loss", "mean", "std", "ci_low", "ci_high", "n_seeds", "n_failed", "n_missing", "direction"]
    if res.values.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in res.values.groupby(GROUP_KEYS, sort=True):
        mean, lo, hi = t_interval(g["value"], level)
        out.append(
            dict(zip(GROUP_KEYS, key), loss=g["loss"].iloc[0], mean=mean, std=g["value"].std(ddof=1) if len(g) > 1 else np.nan,
                 ci_low=lo, ci_high=hi, n_seeds=len(g),
                 direction=direction((res.metric_info.get(key[3]) or {}).get("higher_is_better")))
        )
    table = pd.DataFrame(out)
    for name, frame in (("n_failed", res.failed), ("n_missing", res.missing)):
        counts = frame.groupby(["label", "noise", "rate"]).size().rename(name).reset_index() if not frame.empty else None
        table = table.merge(counts, on=["label", "noise", "rate"], how="left") if counts is not None else table.assign(**{name: 0})
        table[name] = table[name].fillna(0).astype(int)
    return table[cols]


def missing_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells of each sweep's cross product of observed losses x conditions x seeds that have no record at all.

    A condition is a (noise, rate) pair some cell of the sweep has: designs are unions of conditions (random flips at
    0, 0.2, 0.4 and length-biased flips at 0.4), not the cross of every noise type with every rate, so a condition
    no cell of the sweep has is not reported. Failed cells have a record, so they are listed as failed, not missing.
    """
    cols = ["sweep", "label", "noise", "rate", "seed"]
    found = []
    for sweep, g in cells.groupby("sweep", dropna=False):
        conditions = g[["noise", "rate"]].dropna().drop_duplicates()
        others = [k for k in CELL_KEYS if k not in ("noise", "rate")]
        idx = pd.MultiIndex.from_product([sorted(g[k].dropna().unique()) for k in others], names=others)
        grid = idx.to_frame(index=False).merge(conditions, how="cross")[CELL_KEYS]
        have = g[CELL_KEYS].drop_duplicates()
        m = grid.merge(have, on=CELL_KEYS, how="left", indicator=True)
        m = m[m["_merge"] == "left_only"].drop(columns="_merge").assign(sweep=sweep)
        found.append(m)
    if not found:
        return pd.DataFrame(columns=cols)
    return pd.concat(found, ignore_index=True)[cols].reset_index(drop=True)
