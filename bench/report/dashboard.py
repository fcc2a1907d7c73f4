"""A saved W&B workspace for prefnoise runs: each metric against the noise rate, one colour per loss.

For users who sync runs online (`logger=wandb logger.mode=online`, or `wandb sync results/wandb/offline-run-*`).
Needs the optional `wandb-workspaces` package (pip install -e '.[dashboard]').

    python -m bench.report.dashboard --entity ENTITY --project prefnoise --save           # create the workspace, print its URL
    python -m bench.report.dashboard --entity ENTITY --sweep my_study --json dashboards/prefnoise_workspace.json  # spec only

The runs table is grouped by loss (config `loss.name`), so every panel shows one colour per loss:
- "metric vs noise rate": a scatter plot per metric, x = config `noise.rate`, y = the run's summary metric;
- "training": per-step curves (train/loss, reward accuracy and margin), one line per loss, averaged over its runs.
Building the spec needs no server; saving it does (and a `wandb login`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

METRICS = ("gold_win_rate", "gold_gain", "gold_reward", "implicit_acc", "kl", "length")
TRAIN_CURVES = ("train/loss", "train/rewards/accuracies", "train/rewards/margins")


def workspace(entity: str, project: str = "prefnoise", sweep: str | None = None, metrics=METRICS, name=None):
    """The workspace spec (a wandb_workspaces Workspace); nothing is sent anywhere."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    by_rate = [
        wr.ScatterPlot(title=f"{m} vs noise rate", x=wr.Config("noise.rate"), y=wr.SummaryMetric(m)) for m in metrics
    ]
    curves = [
        wr.LinePlot(title=k, x="Step", y=[k], groupby=wr.Config("loss.name"), groupby_aggfunc="mean",
                    groupby_rangefunc="stderr")
        for k in TRAIN_CURVES
    ]
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name or (f"prefnoise: {sweep}" if sweep else "prefnoise: robustness"),
        sections=[
            ws.Section(name="metric vs noise rate", panels=by_rate, is_open=True),
            ws.Section(name="training", panels=curves, is_open=True),
        ],
        runset_settings=ws.RunsetSettings(
            groupby=[ws.Config("loss.name")],
            filters=f"Config('sweep') = '{sweep}'" if sweep else [],
        ),
    )


def spec_json(w) -> dict:
    """The workspace as the JSON W&B stores (for review and version control)."""
    return w._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--entity", required=True, help="W&B user or team")
    p.add_argument("--project", default="prefnoise")
    p.add_argument("--sweep", default=None, help="only runs of this sweep (the W&B group); default: all runs")
    p.add_argument("--metric", action="append", help="a summary metric to plot (repeatable); default: the gold metrics")
    p.add_argument("--json", type=Path, help="write the spec here")
    p.add_argument("--save", action="store_true", help="save the workspace to the W&B server (needs a login)")
    args = p.parse_args(argv)
    try:
        w = workspace(args.entity, args.project, args.sweep, tuple(args.metric or METRICS))
    except ImportError:
        print("wandb-workspaces is not installed: pip install -e '.[dashboard]'", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(spec_json(w), indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.save:
        w.save()
        print(w.url)
    if not args.json and not args.save:
        print(json.dumps(spec_json(w), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
