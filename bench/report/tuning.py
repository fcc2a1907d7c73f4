"""The report's tuning section, for each tuning sweep under ``results/tuning/``: the budget, the values each rule
chose (and which sit at a grid edge), learning-rate sensitivity curves, each realistic rule's selection regret, and
the headline side by side at the paper defaults, under the oracle rule and under the best realistic rule.

Selection regret of a rule = test gold reward of its pick minus that of the oracle rule's pick, per loss and
condition, on the tuning seeds' test split (which no rule ever reads). Negative: the rule lost that much by not
knowing the gold reward; positive: the oracle's validation pick did not carry over to the test split.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.report import plots
from bench.report.aggregate import Results, t_interval
from bench.report.document import hp_source_title
from bench.report.render import fmt
from bench.tune import selection
from bench.tune.protocol import point


def tuning_blocks(results_dir, res: Results, out: Path, metric: str) -> tuple[list, dict[str, str]]:
    folders = sorted(p.parent for p in (Path(results_dir) / "tuning").glob(f"*/{selection.PLAN}"))
    blocks, figures = [], {}
    best = None
    for folder in folders:
        plan = selection.read_plan(folder)
        scores = selection.scores_from(folder, results_dir)
        rows = pd.DataFrame(selection.select(plan, scores))
        if rows.empty:
            continue
        regret = regret_table(rows)
        best = best or best_realistic(regret)
        blocks += _plan_blocks(plan, rows, regret, best)
        moved = transfer_table(rows, res, plan["sweep"])
        if not moved.empty:
            blocks += transfer_blocks(moved)
        for cond in plan["conditions"]:
            curves = sensitivity(plan, scores, rows, cond)
            if not curves.empty:
                name = f"sensitivity_{plan['sweep']}_{cond['noise']}_{cond['rate']:g}.png"
                plots.save(plots.plot_sensitivity(curves, f"{cond['noise']} @ {cond['rate']:g}"), out / name)
                figures[f"sensitivity:{name}"] = name
                blocks.append(("img", name, f"sensitivity {cond['key']}"))
    if blocks:
        blocks = [("h", 2, "Tuning")] + blocks + headline_blocks(res, metric, best)
    return blocks, figures


def regret_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (loss, noise, rate) and realistic rule: its pick's test score minus the oracle pick's, and whether the
    two rules picked the very same values."""
    tuned = _tuned(rows)
    key = ["loss", "noise", "rate"]
    picks = {(r["criterion"], *(r[k] for k in key)): (r["test_gold_reward"], tuple(r[k] for k in tuned))
             for r in rows.to_dict("records")}
    out = []
    for (name, *k), (test, values) in picks.items():
        if name == "oracle" or ("oracle", *k) not in picks:
            continue
        o_test, o_values = picks[("oracle", *k)]
        if pd.isna(test) or pd.isna(o_test):  # a sweep still running: a pick without its cells is no pick
            continue
        same = all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(values, o_values))
        out.append({"criterion": name, **dict(zip(key, k)), "regret": test - o_test, "same_pick": same})
    return pd.DataFrame(out)


def best_realistic(regret: pd.DataFrame) -> str | None:
    """The realistic rule whose picks lose least against the oracle's, on average over losses and conditions."""
    if regret.empty:
        return None
    means = regret.groupby("criterion")["regret"].mean().dropna()
    return str(means.idxmax()) if not means.empty else None


def _tuned(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith(("train.", "loss."))]


def _plan_blocks(plan: dict, rows: pd.DataFrame, regret: pd.DataFrame, best: str | None) -> list:
    budgets = sorted(set(plan["budgets"].values()))
    unscored = rows["val_score"].isna()  # a round not in yet (or its cells failed): the defaults, not a pick
    edge = rows[rows["at_edge"] & ~unscored]
    text = (f"Sweep `{plan['sweep']}`: {len(plan['losses'])} losses x {len(plan['conditions'])} conditions, tuning "
            f"seed(s) {plan['seeds']}, rules {', '.join(plan['criteria'])}. One knob after another (the learning rate "
            f"over {[f'{x:g}' for x in plan['lr']]}, then each knob of the loss's space), the same for every rule; "
            f"budget per loss, condition and rule: {' / '.join(map(str, budgets))} configurations. "
            f"{len(edge)} of {len(rows)} picks sit at an edge of a grid (marked *).")
    if unscored.any():
        text += (f" {int(unscored.sum())} of the {len(rows)} selections have no validation score yet (a round of the "
                 "sweep not finished, or its cells failed): marked so, with no values, not as picks.")
    picks = rows.assign(cond=[f"{n} @ {r:g}" for n, r in zip(rows["noise"], rows["rate"])])
    picks["pick"] = [", ".join(f"{k.split('.')[-1]} {fmt(v)}" + ("*" if k in str(e).split(",") else "")
                               for k, v in r.items() if k in _tuned(rows) and pd.notna(v))
                     for r, e in zip(picks[_tuned(rows)].to_dict("records"), picks["edge_keys"])]
    picks.loc[unscored.to_numpy(), "pick"] = "no scores yet"
    wide = picks.pivot_table(index=["loss", "cond"], columns="criterion", values="pick", aggfunc="first").reset_index()
    blocks = [("h", 3, f"Selections ({plan['sweep']})"), ("p", text), ("table", wide)]
    if not regret.empty:
        reg = regret.assign(cond=[f"{n} @ {r:g}" for n, r in zip(regret["noise"], regret["rate"])])
        table = reg.pivot_table(index=["loss", "cond"], columns="criterion", values="regret", aggfunc="first")
        summary = reg.groupby("criterion").agg(mean_regret=("regret", "mean"), worst=("regret", "min"),
                                               same_pick_as_oracle=("same_pick", "mean")).reset_index()
        blocks += [("h", 3, "Selection regret (test gold reward of the rule's pick minus the oracle pick's)"),
                   ("p", "On the tuning seed's test split, which no rule reads. Regret is mostly negative (the "
                         "rule's pick scores less gold than the oracle's); it can be positive, since the oracle "
                         "picks on validation prompts, not on these. The best realistic rule here: "
                         f"**{best}** (mean regret closest to zero)."), ("table", summary),
                   ("table", table.reset_index())]
    return blocks


def transfer_table(rows: pd.DataFrame, res: Results, sweep: str) -> pd.DataFrame:
    """Per rule, loss and condition that final cells ran on: the pick's test gold on the tuning seeds (what the
    selection saw, on its test split) against its mean on the fresh final seeds. A positive ``optimism`` is the
    winner's curse of picking the best of many configurations on few seeds."""
    sweep_of = {r.get("cell_id"): (r.get("hp_source") or {}).get("sweep") for r in res.records}
    v = res.values[res.values["metric"] == selection.TEST_METRIC]
    cells = res.cells[res.cells["cell_id"].map(sweep_of) == sweep][["cell_id", "hp", "loss", "noise", "rate"]]
    grouped = (v[["cell_id", "value"]].merge(cells, on="cell_id")
               .groupby(["hp", "loss", "noise", "rate"])["value"].agg(["mean", "count"]))
    finals = {(h, lo, n, round(float(x), 6)): f for (h, lo, n, x), f in grouped.iterrows()}
    out = []
    for r in rows.to_dict("records"):
        f = finals.get((r["criterion"], r["loss"], r["noise"], round(float(r["rate"]), 6)))
        if f is not None and pd.notna(r.get("test_gold_reward")):
            out.append({"criterion": r["criterion"], "loss": r["loss"], "cond": f"{r['noise']} @ {r['rate']:g}",
                        "tuning_seed": r["test_gold_reward"], "final_seeds": f["mean"], "n_final": int(f["count"]),
                        "optimism": r["test_gold_reward"] - f["mean"]})
    return pd.DataFrame(out)


def transfer_blocks(moved: pd.DataFrame) -> list:
    summary = moved.groupby("criterion").agg(mean_optimism=("optimism", "mean"), worst=("optimism", "max"),
                                             n=("optimism", "size")).reset_index()
    return [("h", 3, "Do the picks carry over? (test gold on the tuning seeds vs on the final seeds)"),
            ("p", "Each pick's test gold reward on the tuning seed(s), where it won its selection, against its mean "
                  "on the fresh final seeds. Optimism = tuning minus final: positive when the pick was partly luck "
                  "of the tuning seed (more tuning seeds shrink it)."),
            ("table", summary), ("table", moved.sort_values(["criterion", "optimism"], ascending=[True, False]))]


def sensitivity(plan: dict, scores: dict, rows: pd.DataFrame, cond: dict) -> pd.DataFrame:
    """The learning-rate stage of every loss in one condition: validation and test gold reward per lr."""
    out = []
    for loss, space in selection.spaces_of(plan).items():
        defaults = space.default
        lr_knob = space.stages[0]
        for lr in lr_knob.values:
            p = point({**defaults, lr_knob.key: lr})
            val, _ = selection.mean_score(scores, loss, cond["key"], p, plan["seeds"], "val_gold_reward")
            test, _ = selection.mean_score(scores, loss, cond["key"], p, plan["seeds"], "gold_reward")
            chose = rows[(rows["loss"] == loss) & (rows["noise"] == cond["noise"]) & (rows["rate"] == cond["rate"])
                         & (rows[lr_knob.key] == lr)]["criterion"]
            out.append({"loss": loss, "lr": lr, "val": val, "test": test, "picks": ",".join(sorted(chose))})
    return pd.DataFrame(out)


def headline_blocks(res: Results, metric: str, best: str | None) -> list:
    """The headline metric per loss (or method) and condition at the paper defaults, under the oracle rule and each
    realistic rule with final cells, the best realistic one first (final sweeps on fresh seeds), side by side."""
    rules = sorted(h for h in res.hp_sources if h not in ("default", "oracle", best))
    hps = [h for h in ("default", "oracle", best, *rules) if h and h in res.hp_sources]
    if len(hps) < 2:
        return []
    v = res.values[res.values["metric"] == metric]
    cells = res.cells.set_index("cell_id")  # one row per curve: a method wrapping DPO is its own row, not DPO's
    v = v.assign(hp=v["cell_id"].map(cells["hp"]), name=v["cell_id"].map(cells["curve"]))
    blocks = [("h", 3, f"The headline, side by side ({metric}, final seeds)"),
              ("p", "Mean ± 95% half-width (n seeds) at " + ", ".join(hp_source_title(h) for h in hps) + ".")]
    for (noise, rate), g in v.groupby(["noise", "rate"]):
        rows = []
        for lab in sorted(g["name"].unique()):
            gl = g[g["name"] == lab]
            row = {"loss": lab}
            for h in hps:
                x = gl.loc[gl["hp"] == h, "value"]
                m, lo, hi = t_interval(x)
                row[hp_source_title(h)] = "" if x.empty else f"{fmt(m)} ± {fmt((hi - lo) / 2, 2)} (n={len(x)})"
            rows.append(row)
        blocks += [("h", 4, f"{noise} @ {rate:g}"), ("table", pd.DataFrame(rows))]
    return blocks

