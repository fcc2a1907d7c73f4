"""A finished study's records, kept in the repository, so that ``make report`` rebuilds its tables on a fresh clone.

    python -m bench.report.archive --sweep regimes                  # -> docs/results/regimes/records.parquet
    python -m bench.report.archive --sweep verdict --tuning verdict_tune   # + the tuning sweep's plan and selection
    python -m bench.report.archive --restore docs/results/verdict_tune     # its records back into results/

An archive is a folder: ``records.parquet`` (one row per cell record: its id, sweep, status and the whole record as
JSON, zstd-compressed: a few hundred bytes a cell) and, for a tuned study, ``tuning/<sweep>/`` (the tuning sweep's
plan, jobs and selection, which the report's tuning section and staleness checks read). The cells' own files
(samples, masks, margins) stay out: the report reads only a live cell's margins (its histograms of z).

``python -m bench.report`` reads every archive under ``docs/results/`` beside ``results/`` (``--archives``): it lays
them out as a results folder (``view``) with the live records on top, so a cell re-run since it was archived
counts once, as its newest record.

A study that runs over several machines is archived part-way too: ``--restore`` lays an archive's records back into
``results/`` (a complete live record wins), and the study's sweeps, which resume from records, go on from there.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.core.files import atomic_write_json
from bench.core.records import RECORD_FILE, iter_records, read_record
from bench.report.margins import MARGINS_FILE

RECORDS = "records.parquet"
DEFAULT_ROOT = Path("docs") / "results"


def pack(results: Path, sweep: str, out: Path, tuning: list[str] | None = None) -> dict:
    """Write the sweep's records (and tuning sweeps' folders) into ``out``; returns what was written. An archive
    already at ``out`` is merged, not replaced: a live record replaces its archived copy, and archived cells this
    results folder lacks (a study that ran on other machines) stay."""
    import pandas as pd

    recs = [r for r in iter_records(results) if r.get("sweep") == sweep]
    if not recs:
        raise SystemExit(f"no records of sweep {sweep!r} under {results}/cells")
    refuse_shared_cells({r["cell_id"] for r in recs}, sweep, out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"cell_id": r["cell_id"], "sweep": r.get("sweep"), "status": r.get("status"),
             "record": json.dumps(r, sort_keys=True, separators=(",", ":"))} for r in recs]
    live = {r["cell_id"] for r in rows}
    if (out / RECORDS).is_file():  # an archive of the study already: its cells this machine lacks are kept
        old = pd.read_parquet(out / RECORDS)
        rows = old[~old["cell_id"].isin(live)].to_dict("records") + rows
    pd.DataFrame(rows).to_parquet(out / RECORDS, index=False, compression="zstd")
    for name in tuning or []:
        src = results / "tuning" / name
        if not src.is_dir():
            raise SystemExit(f"no tuning folder {src}")
        dst = out / "tuning" / name
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    return {"records": len(rows), "bytes": (out / RECORDS).stat().st_size, "tuning": list(tuning or [])}


def refuse_shared_cells(ids: set[str], sweep: str, out: Path) -> None:
    """Stop before writing if another archive beside ``out`` holds one of these cells. A cell id names what
    determines a result, whichever sweep asked for it, and a record keeps one ``sweep``: a cell of another study
    run again under this sweep (a whole run of a final that had stopped at its pick, say) took that study's record
    over, and the report's view of both archives would keep only one of the two."""
    import pandas as pd

    for other in archived(out.parent):
        if other.resolve() == out.resolve():
            continue
        theirs = pd.read_parquet(other / RECORDS, columns=["cell_id", "sweep"])
        shared = theirs[theirs["cell_id"].isin(ids)]
        if len(shared):
            raise SystemExit(
                f"{len(shared)} cell(s) of sweep {sweep!r} are already archived in {other} (sweep "
                f"{', '.join(sorted(map(str, shared['sweep'].unique())))}), e.g. {shared['cell_id'].iloc[0]}: one "
                "cell, two studies, and the report would keep only one record of it. Run the new study on seeds or "
                "values of its own, so its cells are its own; nothing was written.")


def archived(root: Path) -> list[Path]:
    """The archive folders under ``root`` (each with a records.parquet)."""
    return sorted(p.parent for p in Path(root).glob(f"*/{RECORDS}")) if Path(root).is_dir() else []


def view(results: Path, archives: list[Path]) -> Path:
    """A results folder holding every archived record and tuning folder, then the live ones on top (a live record
    replaces an archived one of the same cell, its ``margins.json`` beside it). With no archive, ``results`` itself."""
    import pandas as pd

    if not archives:
        return Path(results)
    stage = Path(tempfile.mkdtemp(prefix="prefnoise-report-"))
    for folder in archives:
        for row in pd.read_parquet(folder / RECORDS).itertuples(index=False):
            atomic_write_json(stage / "cells" / row.cell_id / RECORD_FILE, json.loads(row.record))
        if (folder / "tuning").is_dir():
            shutil.copytree(folder / "tuning", stage / "tuning", dirs_exist_ok=True)
    for rec in iter_records(results):
        atomic_write_json(stage / "cells" / rec["cell_id"] / RECORD_FILE, rec)
        margins = Path(results) / "cells" / rec["cell_id"] / MARGINS_FILE  # a live cell's margins: the histograms
        if margins.is_file():
            shutil.copyfile(margins, stage / "cells" / rec["cell_id"] / MARGINS_FILE)
    if (Path(results) / "tuning").is_dir():
        shutil.copytree(Path(results) / "tuning", stage / "tuning", dirs_exist_ok=True)
    return stage


@contextmanager
def viewed(results: Path, archives: list[Path]):
    """``view`` for the time of a ``with`` block: its staging folder (a copy of every archived record) is removed
    after it."""
    source = view(results, archives)
    try:
        yield source
    finally:
        if source != Path(results):
            shutil.rmtree(source, ignore_errors=True)


def restore(folder: Path, results: Path) -> dict:
    """Lay an archive's records back into a results folder, so that a study resumes on a fresh machine where it had
    stopped: a cell with a complete live record keeps it; a tuning folder already there is kept as it is."""
    import pandas as pd

    if not (folder / RECORDS).is_file():
        raise SystemExit(f"no archive at {folder} (no {RECORDS})")
    written = kept = 0
    for row in pd.read_parquet(folder / RECORDS).itertuples(index=False):
        if (read_record(results, row.cell_id) or {}).get("status") == "ok":  # also one that ended early
            kept += 1
            continue
        atomic_write_json(Path(results) / "cells" / row.cell_id / RECORD_FILE, json.loads(row.record))
        written += 1
    tuning, kept_tuning = [], []
    for src in sorted((folder / "tuning").glob("*")) if (folder / "tuning").is_dir() else []:
        dst = Path(results) / "tuning" / src.name
        if dst.exists():
            kept_tuning.append(src.name)
        else:
            shutil.copytree(src, dst)
            tuning.append(src.name)
    return {"written": written, "kept": kept, "tuning": tuning, "kept_tuning": kept_tuning}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.report.archive", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--sweep", help="the study to archive (the records' sweep name)")
    ap.add_argument("--tuning", action="append", default=[], help="a tuning sweep whose plan and selection to keep")
    ap.add_argument("--out", type=Path, default=None, help="archive folder (default: docs/results/<sweep>)")
    ap.add_argument("--restore", type=Path, default=None, metavar="ARCHIVE",
                    help="instead: lay this archive's records back into --results (a study resumes from them)")
    a = ap.parse_args(argv)
    if a.restore is not None and (a.sweep or a.tuning or a.out):
        ap.error("--restore ARCHIVE takes only --results (it reads the archive; --sweep, --tuning, --out write one)")
    if a.restore is not None:
        got = restore(a.restore, a.results)
        print(f"restored {got['written']} records from {a.restore} into {a.results} ({got['kept']} complete "
              f"there already)" + (f", tuning {', '.join(got['tuning'])}" if got["tuning"] else "")
              + (f"; kept the live tuning folder(s) {', '.join(got['kept_tuning'])}" if got["kept_tuning"] else ""))
        return 0
    if not a.sweep:
        ap.error("--sweep is required (or --restore ARCHIVE)")
    out = a.out or DEFAULT_ROOT / a.sweep
    got = pack(a.results, a.sweep, out, a.tuning)
    print(f"archived {got['records']} records of {a.sweep!r} in {out / RECORDS} ({got['bytes'] / 1e6:.2f} MB)"
          + (f", tuning {', '.join(got['tuning'])}" if got["tuning"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
