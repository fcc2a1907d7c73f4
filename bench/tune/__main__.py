"""``python -m bench.tune select --sweep S [--criterion C] [--results results]``: (re)make a tuning sweep's
``results/tuning/<S>/selection.csv`` from its plan, its jobs and the cell records."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.core.options import ConfigError
from bench.tune import criteria, selection


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select", help="the selection of a tuning sweep, per (loss, noise, rate, criterion)")
    s.add_argument("--sweep", required=True, help="the tuning sweep's name (its `sweep` config value)")
    s.add_argument("--criterion", action="append", help=f"one of {', '.join(criteria.names())}; repeatable; "
                   "default: every criterion of the plan")
    s.add_argument("--results", default=str(Path(os.environ.get("PREFNOISE_ROOT", ".")) / "results"))
    args = p.parse_args(argv)
    try:
        for c in args.criterion or []:
            criteria.get(c)  # did-you-mean for a misspelt rule
        folder = selection.tuning_dir(args.results, args.sweep)
        plan = selection.read_plan(folder)
    except ConfigError as e:
        print(f"python -m bench.tune: {e}", file=sys.stderr)
        return 2
    rows = selection.select(plan, selection.scores_from(folder, args.results), args.criterion)
    path = selection.write(folder, rows)
    edge = [r for r in rows if r["at_edge"]]
    print(f"wrote {path}: {len(rows)} rows ({len(edge)} at a grid edge)")
    for r in rows:
        tuned = ", ".join(f"{k}={r[k]:g}" for k in r if k.startswith(("train.", "loss.")) and isinstance(r[k], float))
        print(f"  {r['criterion']:<9} {r['loss']:<7} {r['noise']}@{r['rate']:g}: {tuned}  val {r['val_score']:.4g}"
              + (f"  (at the edge: {r['edge_keys']})" if r["at_edge"] else "") + (f"  {r['note']}" if r['note'] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
