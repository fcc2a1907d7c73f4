"""``method=curriculum`` (Curry-DPO, Pattnaik et al. 2024): the training pairs in easy-to-hard stages, each stage
starting from the policy the last one left.

Difficulty (``by``): ``score_gap``, the scorer's margin of the pair as labelled (``score_chosen - score_rejected``;
the scorer is the cell's ``scorer``), or ``ref_margin``, the reference policy's own implicit margin
(``ref_chosen_logps - ref_rejected_logps``). A large margin is easy; a pair the scorer (or the reference)
contradicts comes last. The paper ranks several responses per prompt by their rating gap; with one pair per prompt
the gap of that pair is what is left, and under label noise the first stages should hold fewer flips: the record
gives each stage's realized flip rate. Pairs are sorted once (ties by row) and dealt into ``stages`` bins of equal
size (``numpy.array_split``). ``reset_reference``: each stage after the first uses the policy it starts from as its
reference (the paper's iterative reference); otherwise the reference stays the initial policy. ``budget: matched``
splits the standard cell's steps over the stages by bin size; ``per_stage`` trains each stage its own full budget
(``train.epochs`` over its pairs), as the paper does.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
from datasets import Value

from bench.core.metrics import COUNTER
from bench.core.options import ConfigError
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.options import CurriculumOptions
from bench.methods.pairs import pair_logps
from bench.methods.stages import Staged, split_steps, total_steps


class Curriculum(Method):
    name = "curriculum"
    stops_early = True  # its stages share one schedule; no stage after the stop

    Options = CurriculumOptions  # by=score_gap: needs_scores

    def check(self, loss) -> str:
        if not loss.needs_reference_model and (self.options.by == "ref_margin" or self.options.reset_reference):
            what = "method.by=ref_margin" if self.options.by == "ref_margin" else "method.reset_reference=true"
            raise ConfigError(f"{what} needs the reference's log-probs, but loss={loss.name} is reference-free "
                                    "(the cell computes none); valid: method.by=score_gap, reset_reference=false")
        return f"{getattr(loss, 'label', loss.name)} + curriculum ({self.options.by})"

    def train(self, ctx: TrainContext) -> TrainResult:
        cfg, n = self.options, len(ctx.train_dataset)
        if n < cfg.stages:
            raise ConfigError(f"method.stages={cfg.stages} but the cell has {n} training pairs; valid: at most "
                                    f"{n} stages")
        sizes = [len(b) for b in np.array_split(np.arange(n), cfg.stages)]
        if cfg.budget == "matched":
            steps = split_steps(total_steps(ctx.train, n), sizes, "method=curriculum")
        else:
            steps = [total_steps(ctx.train, s) for s in sizes]
        run = Staged(ctx, steps, "curriculum", epoch_pairs=n)  # an epoch: a pass over every stage's pairs
        base = run.prepare(ctx.train_dataset)
        if len(base) != n:
            raise RuntimeError(f"method=curriculum: TRL kept {len(base)} of {n} pairs")
        easy = difficulty(base, cfg.by)
        bins = np.array_split(np.argsort(-easy, kind="stable"), cfg.stages)
        flipped = np.asarray(base["is_flipped"], dtype=bool) if "is_flipped" in base.column_names else None
        rows = []
        for i, idx in enumerate(bins):
            stage = base.select(idx.tolist())
            if i > 0 and cfg.reset_reference:
                stage = _policy_as_reference(run.trainer, ctx.policy, stage, cfg.score_batch_size)
            rows.append({"stage": i + 1, "n_pairs": len(idx),
                         "realized_flip_rate": None if flipped is None else float(flipped[idx].mean()),
                         "margin_mean": float(easy[idx].mean()), "margin_min": float(easy[idx].min()),
                         "train_loss": run.run(i, stage), "steps": run.done[-1]})  # fewer where the run stopped
            if run.stopped:
                break
        metrics = {f"curriculum_flip_rate_stage_{r['stage']}": r["realized_flip_rate"] for r in rows
                   if r["realized_flip_rate"] is not None}
        return run.result({"curriculum": {"config": asdict(cfg), "stage_steps": steps, "stages": rows}},
                          metrics=metrics, directions=dict.fromkeys(metrics, COUNTER))


def difficulty(ds, by: str) -> np.ndarray:
    """Per-pair easiness (higher: earlier): the scorer's or the reference's margin of the pair as labelled."""
    a, b = ("score_chosen", "score_rejected") if by == "score_gap" else ("ref_chosen_logps", "ref_rejected_logps")
    missing = [c for c in (a, b) if c not in ds.column_names]
    if missing:
        raise ConfigError(f"method.by={by}: the pairs have no {missing[0]} column"
                                + (" (set a scorer: scorer=proxy)" if by == "score_gap" else ""))
    return np.asarray(ds[a], dtype=float) - np.asarray(ds[b], dtype=float)


def _policy_as_reference(trainer, policy, stage, batch_size: int):
    """``stage`` (tokenized by TRL) with the current policy's log-probs as its reference columns."""
    s = pair_logps(trainer, policy, stage, batch_size)
    stage = stage.remove_columns(["ref_chosen_logps", "ref_rejected_logps"])
    stage = stage.add_column("ref_chosen_logps", s["chosen"].double().tolist())
    stage = stage.add_column("ref_rejected_logps", s["rejected"].double().tolist())
    return stage.cast_column("ref_chosen_logps", Value("float64")).cast_column("ref_rejected_logps", Value("float64"))
