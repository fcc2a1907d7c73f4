"""Figures: robustness curves (metric vs noise rate, one panel per noise type), the gain-over-DPO heatmap, the
margin diagnostics (memorization and fit over training, the end's margins z).

Each function returns the Figure so tests can inspect axes and lines; ``save`` writes PNGs. The Agg backend is
selected here so the report runs headless (CI, clusters) without a display.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from bench.report.aggregate import CLEAN_NOISE, conditions_in, in_condition  # noqa: E402

REF_GID = "reference"  # gid of the dashed reference line, so tests (and readers) can tell it from the losses


def metric_axis_label(metric: str, dirn: str) -> str:
    return metric + {"higher": " (higher is better)", "lower": " (lower is better)"}.get(dirn, "")


def loss_order(labels, baseline: str | None) -> list[str]:
    """Baseline first (the yardstick), then alphabetical: a stable order and stable colours across figures."""
    labels = sorted(set(map(str, labels)))
    return ([baseline] if baseline in labels else []) + [x for x in labels if x != baseline]


def plot_curves(table: pd.DataFrame, metric: str, baseline: str | None = None, ref: pd.DataFrame | None = None,
                ref_name: str = "reference policy") -> plt.Figure:
    """``metric`` against noise rate: one line per loss with its 95% CI band, one panel per noise type.

    ``ref`` (columns noise, rate, ref) adds the dashed reference-policy line: where a curve crosses it, the
    loss no longer improves on the model it started from.
    """
    t = table[table["metric"] == metric]
    noises = sorted(t["noise"].astype(str).unique())
    labels = loss_order(t["label"], baseline)
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(1, max(1, len(noises)), figsize=(4.2 * max(1, len(noises)) + 1.6, 3.6), sharey=True,
                             squeeze=False, layout="constrained")
    dirn = t["direction"].iloc[0] if len(t) else "none"
    for ax, noise in zip(axes[0], noises):
        tn = t[t["noise"].astype(str) == noise]
        for lab in labels:
            g = tn[tn["label"] == lab].sort_values("rate")
            if g.empty:
                continue
            ax.plot(g["rate"], g["mean"], marker="o", ms=3.5, color=colors[lab], label=lab,
                    lw=2.2 if lab == baseline else 1.5)
            ax.fill_between(g["rate"], g["ci_low"], g["ci_high"], color=colors[lab], alpha=0.15, lw=0)
        if ref is not None:
            r = ref[ref["noise"].astype(str) == noise].sort_values("rate")
            if not r.empty:
                ax.plot(r["rate"], r["ref"], ls="--", color="0.35", lw=1.2, label=ref_name, gid=REF_GID)
        ax.set_xticks(sorted(tn["rate"].unique()))  # ticks at the swept rates only
        ax.set_title(f"noise: {noise}")
        ax.set_xlabel("noise rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric_axis_label(metric, dirn))
    handles, names = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h), names.append(n)
    fig.legend(handles, names, loc="outside right center", frameon=False, fontsize=8)
    fig.suptitle(f"{metric} vs noise rate (mean and 95% CI over seeds)", fontsize=10)
    return fig


def plot_gain_heatmap(paired: pd.DataFrame, metric: str, baseline: str | None = None, dirn: str = "higher") -> plt.Figure:
    """Mean paired difference to the baseline (loss x rate), one panel per noise type; * = Holm p < 0.05.

    The colour scale is symmetric around 0 and oriented so that "better than the baseline" is always blue,
    whatever the metric's direction; cell text keeps the raw difference.
    """
    p = paired[paired["metric"] == metric]
    noises = sorted(p["noise"].astype(str).unique())
    labels = [x for x in loss_order(p["label"], baseline) if x != baseline]
    rates = sorted(p["rate"].unique())
    sign = -1.0 if dirn == "lower" else 1.0
    vmax = float(np.nanmax(np.abs(p["mean_diff"].replace([np.inf, -np.inf], np.nan)))) if len(p) else 1.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    n = max(1, len(noises))
    fig, axes = plt.subplots(1, n, figsize=(1.0 + 0.9 * max(2, len(rates)) * n + 1.5, 1.3 + 0.45 * max(1, len(labels))),
                             squeeze=False, layout="constrained")
    image = None
    for ax, noise in zip(axes[0], noises):
        pn = p[p["noise"].astype(str) == noise]
        grid = pn.pivot_table(index="label", columns="rate", values="mean_diff", aggfunc="first").reindex(index=labels, columns=rates)
        sig = pn.pivot_table(index="label", columns="rate", values="significant", aggfunc="first").reindex(index=labels, columns=rates)
        image = ax.imshow(sign * grid.to_numpy(float), cmap="RdBu", norm=TwoSlopeNorm(0.0, -vmax, vmax), aspect="auto")
        for i in range(len(labels)):
            for j in range(len(rates)):
                val, s = grid.iat[i, j], sig.iat[i, j]
                star = "*" if not pd.isna(s) and bool(s) else ""
                dark = not pd.isna(val) and np.isfinite(val) and abs(val) > 0.6 * vmax
                ax.text(j, i, "missing" if pd.isna(val) else f"{val:+.3g}{star}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(rates)), [f"{r:g}" for r in rates])
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("noise rate")
        ax.set_title(f"noise: {noise}")
    axes[0][0].set_ylabel("loss")
    if image is not None:
        cbar = fig.colorbar(image, ax=list(axes[0]), shrink=0.9)  # constrained layout keeps it clear of the panels
        cbar.set_label(f"{metric} − {baseline} ({'blue = better' if dirn != 'none' else 'no direction'})", fontsize=8)
    fig.suptitle(f"{metric}: gain over {baseline} (paired over seeds; * Holm p<0.05)", fontsize=10)
    return fig


def plot_paired_differences(paired: pd.DataFrame, metric: str, baseline: str | None = None,
                            dirn: str = "higher") -> plt.Figure:
    """Each loss minus the baseline, paired over seeds: the mean difference and its 95% interval, one panel per
    condition (noise type and rate), losses down the side, 0 marked. * = Holm p < 0.05. What the design supports:
    every loss is compared with the baseline on the same seeds and noise masks, not with a band of its own."""
    p = paired[paired["metric"] == metric].copy()
    conds = sorted(conditions_in(p), key=lambda x: (not x[0].startswith("random"), *_named_rate(x)))
    labels = [x for x in loss_order(p["label"], baseline) if x != baseline][::-1]
    fig, axes = plt.subplots(1, max(1, len(conds)), figsize=(2.6 * max(1, len(conds)) + 1.6, 0.9 + 0.32 * max(1, len(labels))),
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (noise, rate) in zip(axes[0], conds):
        pc = p[in_condition(p, noise, rate)].set_index("label")
        for y, lab in enumerate(labels):
            if lab not in pc.index:
                continue
            r = pc.loc[lab]
            good = (r["mean_diff"] > 0) == (dirn != "lower")
            color = "C0" if good else "C3"
            lo, hi = r["ci_low"], r["ci_high"]
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [y, y], color=color, lw=1.6)
            ax.plot([r["mean_diff"]], [y], "o", color=color, ms=4)
            if bool(r["significant"]):
                ax.text(hi if np.isfinite(hi) else r["mean_diff"], y, " *", va="center", fontsize=9)
        ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
        ax.set_title(condition_title(noise, rate), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(f"{metric} − {baseline}", fontsize=8)
    axes[0][0].set_yticks(range(len(labels)), labels, fontsize=8)
    fig.suptitle(f"{metric}: each loss minus {baseline}, paired over seeds (mean, 95% CI; * Holm p<0.05)", fontsize=10)
    return fig


def plot_sensitivity(curves: pd.DataFrame, condition: str) -> plt.Figure:
    """Validation and test scores against the learning rate, one panel per loss (the knobs at their defaults).
    ``curves``: loss, lr, val (the oracle's validation gold reward), test (test gold reward), picks (rules that
    chose this lr, comma-joined)."""
    losses = sorted(curves["loss"].unique())
    ncol = min(5, max(1, len(losses)))
    nrow = int(np.ceil(len(losses) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.7 * ncol, 2.3 * nrow + 0.4), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, loss in zip(axes.flat, losses):
        g = curves[curves["loss"] == loss].sort_values("lr")
        ax.plot(g["lr"], g["test"], "o-", color="C0", ms=3.5, label="test gold reward")
        ax.plot(g["lr"], g["val"], "s--", color="C1", ms=3, label="validation gold reward (oracle)")
        for _, r in g.iterrows():
            if r["picks"]:
                ax.annotate(r["picks"], (r["lr"], r["test"]), textcoords="offset points", xytext=(0, 6), fontsize=6,
                            ha="center")
        ax.set_xscale("log")
        ax.set_title(loss, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(losses):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    fig.suptitle(f"learning-rate sensitivity, {condition} (knobs at their defaults; labels: rules that chose it)",
                 fontsize=10)
    return fig


def condition_title(noise: str, rate: float) -> str:
    return noise if pd.isna(rate) else f"{noise} @ {rate:g}"  # a noise model without a rate: its name


def conditions(df: pd.DataFrame) -> list[tuple[str, float]]:
    """The (noise, rate) pairs of ``df``, clean first, then random flips, then by name and rate (one panel each)."""
    return sorted(conditions_in(df), key=lambda x: (x[0].lower() not in CLEAN_NOISE, not x[0].startswith("random"),
                                                    *_named_rate(x)))


def _named_rate(cond: tuple[str, float]) -> tuple[str, float]:
    """A condition's sort key by name, then rate (no rate, NaN, first: NaN does not sort)."""
    return cond[0], np.nan_to_num(cond[1], nan=-1.0)


def plot_margin_progress(table: pd.DataFrame, baseline: str | None = None) -> plt.Figure:
    """``diag_memorized`` (solid) and ``diag_fit`` (dashed) against the fraction of training: the mean over seeds
    and their min-max band, one colour per loss, one panel per condition. ``table``: ``margins.progress_table``."""
    conds, labels = conditions(table), loss_order(table["label"], baseline)
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    ncol = min(4, len(conds))
    nrow = int(np.ceil(len(conds) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol + 1.8, 2.8 * nrow + 0.5), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for ax, (noise, rate) in zip(axes.flat, conds):
        tc = table[in_condition(table, noise, rate)]
        for lab in labels:
            for metric, ls in (("diag_memorized", "-"), ("diag_fit", "--")):
                g = tc[(tc["label"] == lab) & (tc["metric"] == metric)].sort_values("fraction")
                if g.empty:
                    continue
                ax.plot(g["fraction"], g["mean"], ls=ls, marker="o", ms=3, color=colors[lab], lw=1.5, gid=f"{lab}|{metric}")
                ax.fill_between(g["fraction"], g["min"], g["max"], color=colors[lab], alpha=0.12, lw=0)
        ax.axhline(0.5, color="0.6", lw=0.7, ls=":")
        ax.set_xlim(0.0, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(condition_title(noise, rate), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(conds):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("fraction of training")
    for ax in axes[:, 0]:
        ax.set_ylabel("share of pairs with z > 0")
    handles = [plt.Line2D([], [], color=colors[lab], lw=1.5, label=lab) for lab in labels]
    handles += [plt.Line2D([], [], color="0.3", ls="-", label="memorized (flipped pairs)"),
                plt.Line2D([], [], color="0.3", ls="--", label="fit (clean pairs)")]
    fig.legend(handles=handles, loc="outside right center", frameon=False, fontsize=8)
    fig.suptitle("memorization and fit against training progress (mean over seeds, band: min to max)", fontsize=10)
    return fig


def margin_bins(z, n: int = 40) -> np.ndarray:
    """Bin edges shared by every panel: from the 0.5th to the 99.5th percentile of every z (the tails go to the
    outer bins), widened around a single value."""
    lo, hi = np.percentile(np.asarray(z, float), [0.5, 99.5]) if len(z) else (0.0, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1)


def plot_margin_histograms(z: pd.DataFrame, baseline: str | None = None) -> plt.Figure:
    """The margins z at the end of training, flipped (red) over clean (blue) pairs, density on shared bins, pooled
    over seeds: one row per loss, one column per condition. ``z``: ``margins.final_margins``."""
    conds, labels = conditions(z), loss_order(z["label"], baseline)
    edges = margin_bins(z["z"])
    fig, axes = plt.subplots(len(labels), len(conds), figsize=(2.6 * len(conds) + 1.2, 1.7 * len(labels) + 0.7),
                             sharex=True, squeeze=False, layout="constrained")
    for i, lab in enumerate(labels):
        for j, (noise, rate) in enumerate(conds):
            ax = axes[i][j]
            g = z[(z["label"] == lab) & in_condition(z, noise, rate)]
            for flipped, color, name in ((False, "C0", "clean pairs"), (True, "C3", "flipped pairs")):
                v = np.clip(g.loc[g["flipped"] == flipped, "z"].to_numpy(float), edges[0], edges[-1])
                if len(v):
                    ax.hist(v, bins=edges, density=True, color=color, alpha=0.5, label=name)
            if g.empty:
                ax.text(0.5, 0.5, "no cells", ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.5")
            ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(condition_title(noise, rate), fontsize=9)
            if j == 0:
                ax.set_ylabel(lab, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("margin z", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5) for c in ("C0", "C3")]
    fig.legend(handles, ["clean pairs", "flipped pairs"], loc="outside lower center", ncol=2, frameon=False, fontsize=8)
    fig.suptitle("margins z at the end of training (pooled over seeds; density, shared bins; rows: losses)", fontsize=10)
    return fig


def save(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120)  # constrained layout already fits legends; "tight" bbox would draw twice
    plt.close(fig)
