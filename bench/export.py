"""Exports for the evaluators people use: a cell's policy outputs on its evaluation prompts in AlpacaEval's
model-outputs JSON, so AlpacaEval (or a pipeline that reads its format) can score them elsewhere.

    python -m bench.export [--results results] [--out DIR] [--sweep NAME] [--where FIELD=V1,V2 ...]
                           [--per cell|arm] [--cell ID ...]

Writes ``<out>/<name>.json`` (default ``<results>/export/alpaca_eval/``): a JSON list of records
``{"instruction", "output", "generator", "dataset"}`` (AlpacaEval's ``model_outputs`` format: ``instruction`` is
the prompt as text, ``output`` the policy's response, ``generator`` the model's name on the leaderboard,
``dataset`` the data set the prompt came from), plus ``seed`` and ``cell_id`` (AlpacaEval ignores extra columns).

- ``--per cell`` (default): one file per complete cell, one output per distinct evaluation prompt (the first of
  its samples), generator ``prefnoise/<loss> <noise>@<rate> seed <seed>``;
- ``--per arm``: one file per (loss, noise, rate), the outputs of every seed's cell (an instruction once per
  seed: AlpacaEval's win rate then averages over seeds), generator ``prefnoise/<loss> <noise>@<rate>``;
- and, per data set and model, ``reference__<data>__<model>.json``: the untrained reference policy's samples on the
  same prompts, generator ``prefnoise/reference <model>``, to use as AlpacaEval's ``reference_outputs`` (the win
  rate of a trained policy over its own starting point).

The outputs are the cell's own evaluation samples (``samples.jsonl``: the test split, sampled with ``eval.*``),
nothing is generated here. Then, e.g., ``alpaca_eval --model_outputs <file> --reference_outputs <reference file>``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bench.core import records
from bench.core.files import atomic_write_text
from bench.report.aggregate import label_of, matches, parse_where

FIELDS = ("instruction", "output", "generator", "dataset")


def cell_outputs(record: dict, cell_folder: Path, generator: str | None = None) -> list[dict]:
    """AlpacaEval rows of one cell: each distinct evaluation prompt once, with the policy's first sample."""
    samples = cell_folder / "samples.jsonl"
    if not samples.exists():
        raise FileNotFoundError(f"{samples} is missing: the cell has no evaluation samples to export")
    generator = generator or f"prefnoise/{arm_of(record)} seed {record.get('seed')}"
    out, seen = [], set()
    for line in samples.read_text().splitlines():
        row = json.loads(line)
        if row["prompt"] in seen:
            continue
        seen.add(row["prompt"])
        out.append({"instruction": row["prompt"], "output": row["policy"], "generator": generator,
                    "dataset": f"prefnoise/{record.get('data')}", "seed": record.get("seed"),
                    "cell_id": record.get("cell_id")})
    return out


def reference_outputs(record: dict, cell_folder: Path) -> list[dict]:
    """The reference policy's samples on the cell's evaluation prompts (the same for every cell of its data)."""
    rows = [json.loads(line) for line in (cell_folder / "samples.jsonl").read_text().splitlines()]
    first = {r["prompt"]: r["reference"] for r in reversed(rows)}
    return [{"instruction": p, "output": first[p], "generator": f"prefnoise/reference {record.get('model')}",
             "dataset": f"prefnoise/{record.get('data')}"} for p in dict.fromkeys(r["prompt"] for r in rows)]


def arm_of(record: dict) -> str:
    """A cell's arm: its loss (as the report labels it) under its noise and rate."""
    return f"{label_of(record)} {record.get('noise')}@{float(record.get('rate') or 0):g}"


def select(results: Path, sweep: str | None = None, where: dict | None = None, cells=()) -> list[dict]:
    """The complete cells to export: of a sweep, matching ``where`` (the report's fields), or named by id."""
    keep = []
    for r in records.iter_records(results):
        if r.get("status") != "ok" or (cells and r.get("cell_id") not in cells):
            continue
        if (sweep is None or r.get("sweep") == sweep) and matches(r, where):
            keep.append(r)
    return sorted(keep, key=lambda r: (arm_of(r), r.get("seed") or 0, r.get("cell_id")))


def export(results: str | Path, out: str | Path | None = None, per: str = "cell", sweep: str | None = None,
           where: dict | None = None, cells=()) -> list[Path]:
    """Write the files (see the module docstring); returns their paths."""
    results = Path(results)
    out = Path(out) if out is not None else results / "export" / "alpaca_eval"
    if per not in ("cell", "arm"):
        raise ValueError(f"per={per!r}; valid: 'cell' or 'arm'")
    files: dict[str, list[dict]] = {}
    for r in select(results, sweep, where, cells):
        folder = records.cell_dir(results, r["cell_id"])
        if per == "cell":
            files[f"{arm_of(r)} seed {r.get('seed')} {r['cell_id']}"] = cell_outputs(r, folder)
        else:
            files.setdefault(arm_of(r), []).extend(cell_outputs(r, folder, f"prefnoise/{arm_of(r)}"))
        files.setdefault(f"reference__{r.get('data')}__{r.get('model')}", reference_outputs(r, folder))
    written = []
    for name, rows in files.items():
        path = out / f"{slug(name)}.json"
        atomic_write_text(path, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("_")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results", help="results folder holding cells/<cell_id>/")
    ap.add_argument("--out", default=None, help="output folder (default: <results>/export/alpaca_eval)")
    ap.add_argument("--per", choices=("cell", "arm"), default="cell", help="one file per cell or per arm")
    ap.add_argument("--sweep", default=None, help="only cells of this sweep")
    ap.add_argument("--cell", action="append", default=[], help="only this cell id (repeatable)")
    ap.add_argument("--where", action="append", default=[], metavar="FIELD=V1,V2",
                    help="only cells whose FIELD (loss, noise, rate, seed, method, ...) is one of the values")
    args = ap.parse_args(argv)
    where = parse_where(args.where, ap.error)
    written = export(args.results, args.out, args.per, args.sweep, where or None, tuple(args.cell))
    if not written:
        print(f"no complete cells under {args.results}/cells match: nothing exported")
        return 0
    print(f"wrote {len(written)} AlpacaEval model-outputs file(s) to {written[0].parent}")
    for path in written:
        print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
