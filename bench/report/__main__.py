"""CLI: ``python -m bench.report [--results DIR] [--out DIR] [--metric NAME] [--sweep NAME] [--baseline dpo]
[--archives DIR|auto|none] [--where FIELD=V1,V2 ...] [--clean-from SWEEP]``. Archived studies (``docs/results/<study>/``,
``bench.report.archive``) are read beside ``results/`` when a study is named (``--sweep verdict``) or ``results/``
holds no record yet, so a fresh clone's ``make report`` rebuilds their tables with no training, while the report of
your own sweeps (``make report`` after ``bench/run.py -m ...``) is theirs alone (``--archives docs/results`` pools)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from bench.report import archive
from bench.report.aggregate import parse_where
from bench.report.build import build_report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    ap.add_argument("--results", default="results", help="results folder holding cells/<cell_id>/record.json")
    ap.add_argument("--out", default=None, help="output folder (default: <results>/report)")
    ap.add_argument("--metric", default="gold_reward", help="headline metric")
    ap.add_argument("--sweep", default=None, help="only records of this sweep")
    ap.add_argument("--baseline", default="dpo", help="loss the paired tests compare against")
    ap.add_argument("--archives", default="auto",
                    help="folder of archived studies (<study>/records.parquet), read beside --results (a live record "
                         f"replaces an archived one of the same cell); 'none': only --results; 'auto' (default): "
                         f"{archive.DEFAULT_ROOT} where --sweep names the study to report or --results holds no record "
                         "yet (a fresh clone), else none (a report of your own sweeps); --where sweep=<study> names one too")
    ap.add_argument("--where", action="append", default=[], metavar="FIELD=V1,V2",
                    help="keep only records whose FIELD (loss, noise, rate, seed, method, hp, tuning: <sweep>/<rule> "
                         "or default, ...) is one of the values; repeatable, e.g. --where noise=random_flip "
                         "--where rate=0,0.2,0.4")
    ap.add_argument("--clean-from", default=None, metavar="SWEEP",
                    help="another sweep whose clean rate-0 cells (no pair flipped) on the same seeds serve as rate 0 of "
                         "every noise type of --sweep, e.g. --sweep verdict_secondary --clean-from verdict: the "
                         "secondary conditions' slopes then start from clean labels")
    args = ap.parse_args(argv)
    where = parse_where(args.where, ap.error)
    study = args.sweep or (where.get("sweep") or [None])[0]
    if args.clean_from is not None and study is None:
        ap.error("--clean-from needs --sweep (or --where sweep=): the sweep whose curves its rate-0 cells start")
    if args.clean_from is not None and args.clean_from == study:
        ap.error(f"--clean-from {args.clean_from} is the reported sweep itself: name another sweep (its clean cells on "
                 "the same seeds start this one's curves)")
    t0 = time.perf_counter()
    folders, left = archives_to_read(args.archives, Path(args.results), args.sweep or where.get("sweep"))
    with archive.viewed(Path(args.results), folders) as source:
        out = build_report(source, args.out or str(Path(args.results) / "report"), args.metric, args.sweep,
                           args.baseline, where or None, args.clean_from)
    if folders:
        print(f"read {len(folders)} archived stud{'y' if len(folders) == 1 else 'ies'} ("
              f"{', '.join(f.name for f in folders)}) beside {args.results}")
    if left:
        print(f"left out {len(left)} archived stud{'y' if len(left) == 1 else 'ies'} ({', '.join(f.name for f in left)}"
              f"): --sweep <study> reports one of them, --archives {archive.DEFAULT_ROOT} pools them with {args.results}")
    if out is None:
        scope = f"{args.results}/cells" + (f" for sweep {args.sweep!r}" if args.sweep else "") + (
            " matching " + " ".join(f"--where {k}={','.join(v)}" for k, v in where.items()) if where else "")
        print(f"no records under {scope}: nothing to report (run a sweep first, e.g. `make demo`).")
        return 0
    res = out["results"]
    print(f"wrote {out['out']}/report.md (and .html, robustness.csv/.parquet, summary.csv, {out['paired_file']}, "
          f"{len(out['figures'])} figures) in {time.perf_counter() - t0:.1f}s")
    print(f"cells: {int((res.cells['status'] == 'ok').sum())} ok, {len(res.failed)} failed, {len(res.missing)} missing")
    for note in out["notes"]:
        print(f"note: {note}")
    s = out["summary"]
    s = s[s["metric"] == out["headline"]][["noise", "label", "at_rate0", "slope", "auc", "below_ref_at", "below_ref_note"]]
    if not s.empty:
        with pd.option_context("display.width", 160, "display.max_rows", 60, "display.float_format", "{:.4g}".format):
            print(f"\n{out['headline']} (baseline {out['baseline']}):\n{s.to_string(index=False)}")
    return 0


def archives_to_read(setting: str, results: Path, sweep: str | None) -> tuple[list[Path], list[Path]]:
    """(the archive folders to read beside ``results``, those left out). ``auto``: the default root's, where a study
    is named (``--sweep``: its records are filtered out of them) or ``results`` holds no record yet (a fresh clone
    rebuilds the archived studies' tables); otherwise none, so a report of your own sweeps is theirs alone."""
    if setting == "none":
        return [], []
    found = archive.archived(archive.DEFAULT_ROOT if setting == "auto" else Path(setting))
    if setting != "auto" or sweep is not None or not any((results / "cells").glob("*/record.json")):
        return found, []
    return [], found


if __name__ == "__main__":
    sys.exit(main())
