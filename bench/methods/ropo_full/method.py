"""``RopoFull``: the rounds loop of ROPO's full method (the choices it makes are in ``bench.methods.ropo_full``).

One optimizer and one learning-rate schedule run across the rounds; between rounds the filter re-ranks every
original pair under the current policy (``filter.filter_pairs``) and the dropped prompts get replacement pairs by
rejection sampling (``candidates``: sample, score, choose, sum up).
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from bench.core.files import write_jsonl
from bench.core.metrics import HIGHER
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.pairs import pair_logps, pair_losses
from bench.methods.ropo_full import candidates as rs
from bench.methods.ropo_full.config import RopoFullOptions, check_loss, round_steps
from bench.methods.ropo_full.filter import filter_pairs, mean_of, pooled_precision
from bench.methods.stages import Staged
from bench.models import load_causal_lm
from bench.models.adapters import AdapterOff, is_peft


class RopoFull(Method):
    name = "ropo_full"
    Options = RopoFullOptions
    stops_early = True  # its rounds share one schedule; no refresh or round after the stop

    def check(self, loss) -> str:
        return check_loss(loss, self.options)

    def train(self, ctx: TrainContext) -> TrainResult:
        label = check_loss(ctx.loss, self.options)
        run = _Rounds(ctx, self.options)
        train_i = None
        for i in range(self.rounds):
            run.train_round(i, train_i)
            if i == self.rounds - 1 or run.run.stopped:
                break
            train_i = run.refresh(i)
        ctx.policy.eval()
        return run.result(label)


class _Rounds:
    """The state that lives across rounds: the original pairs as TRL tokenized them, the rounds' one optimizer and
    schedule (``bench.methods.stages.Staged``), the frozen reference, and what each round recorded."""

    def __init__(self, ctx: TrainContext, cfg: RopoFullOptions):
        self.ctx, self.cfg = ctx, cfg
        self.timings = {"filter": 0.0, "generate": 0.0, "candidates": 0.0}
        self.needs_ref = bool(ctx.loss.needs_reference_model)
        ds = ctx.train_dataset.add_column("ropo_row", list(range(len(ctx.train_dataset))))
        self.steps = round_steps(cfg, ctx.train, len(ds))
        self.run = Staged(ctx, self.steps, "ropo_full", unit="round")
        self._originals(self.run.prepare(ds))  # round 1's trainer: the reference pass (or the shared cache)
        self.ref_model = self._reference() if self.needs_ref else None
        self.rounds, self.filter_rows, self.replacement_rows = [], [], []

    @property
    def trainer(self):
        return self.run.trainer

    def _originals(self, base) -> None:
        """The original pairs as TRL kept them, with their reference log-probs (choice 2)."""
        from datasets import Value

        self.base = base
        self.rows = np.asarray(base["ropo_row"], dtype=int)
        self.flipped = np.asarray(base["is_flipped"], dtype=bool) if "is_flipped" in base.column_names else None
        self.pair_ids = list(base["pair_id"]) if "pair_id" in base.column_names else self.rows.tolist()
        self.prompts = list(base["prompt"])
        self.ref_c = np.asarray(base["ref_chosen_logps"], dtype=float) if self.needs_ref else None
        self.ref_r = np.asarray(base["ref_rejected_logps"], dtype=float) if self.needs_ref else None
        cols = ["prompt", "chosen", "rejected"] + (["ref_chosen_logps", "ref_rejected_logps"] if self.needs_ref else [])
        text = base.select_columns(cols)
        if self.needs_ref:
            text = text.cast_column("ref_chosen_logps", Value("float64")).cast_column("ref_rejected_logps",
                                                                                      Value("float64"))
        self.base_text = text
        self.like = text[0]["chosen"]  # the data's completion form (string or messages)

    def _reference(self):
        """A frozen copy of the reference policy (under LoRA the policy with its adapter disabled: no copy), checked
        against TRL's precompute on the first pairs (choice 7)."""
        from trl.trainer.utils import add_fused_lm_head

        if is_peft(self.ctx.policy):
            ref_model = AdapterOff(self.ctx.policy)
        else:
            ref_model, _ = load_causal_lm(self.ctx.reference_path, str(self.trainer.accelerator.device))
            ref_model.eval().requires_grad_(False)
            add_fused_lm_head(ref_model)
        probe = self.base.select(range(min(16, len(self.base))))
        s = pair_logps(self.trainer, ref_model, probe, self.cfg.score_batch_size)
        gap = max(float((s["chosen"] - torch.tensor(self.ref_c[: len(probe)])).abs().max()),
                  float((s["rejected"] - torch.tensor(self.ref_r[: len(probe)])).abs().max()))
        if not gap <= 1e-3:
            raise RuntimeError(
                f"reference log-probs through TRL's forward differ from the precomputed ones by {gap:.3g}: the "
                f"reference at {self.ctx.reference_path!r} is not the model the precompute used"
            )
        return ref_model

    def train_round(self, i: int, dataset) -> None:
        self.run.run(i, dataset)

    def refresh(self, i: int):
        """After round i+1: filter the original pairs, replace the dropped ones; the next round's pairs."""
        from datasets import Dataset, concatenate_datasets

        t0 = time.time()
        scores = pair_logps(self.trainer, self.ctx.policy, self.base, self.cfg.score_batch_size)
        f = filter_pairs(pair_losses(self.ctx.loss, scores, self.ref_c, self.ref_r).numpy(), self.cfg.drop_fraction,
                         self.flipped, i + 1)
        self.filter_rows += [
            {"round": i + 1, "row": int(self.rows[j]), "pair_id": self.pair_ids[j], "loss": float(f.losses[j]),
             "dropped": bool(f.dropped[j]), "is_flipped": None if self.flipped is None else bool(self.flipped[j])}
            for j in range(len(self.base))
        ]
        self.timings["filter"] += time.time() - t0
        reps, stats = self._replace(i, np.flatnonzero(f.dropped), scores, f)
        self.rounds.append(stats)
        self.ctx.log(f"ropo_full filter after round {i + 1}: dropped {stats['n_dropped']} of {len(self.base)}, "
                     f"precision {stats['precision']}, recall {stats['recall']} (chance {stats['chance_precision']}); "
                     f"{len(reps.pairs)} replacements")
        keep = self.base_text.select(np.flatnonzero(~f.dropped).tolist())
        return concatenate_datasets([keep, Dataset.from_list(reps.pairs, features=keep.features)]) if reps.pairs else keep

    def _replace(self, i: int, drop_idx, scores, f):
        """Rejection sampling for the dropped prompts (choice 5): sample, score, choose, add reference log-probs."""
        cfg, ctx = self.cfg, self.ctx
        if cfg.accept == "never":  # the filter alone: the dropped prompts have no pair in the next round
            none = rs.Replacements()
            return none, rs.round_statistics(f.stats, none, 0, 0, len(self.base))
        prompts = [self.prompts[j] for j in drop_idx]
        t0 = time.time()
        cands = rs.sample_candidates(ctx.policy, ctx.tokenizer, prompts, cfg.n_candidates,
                                     max_new_tokens=int(cfg.max_new_tokens or ctx.max_new_tokens),
                                     seed=ctx.seed * 1000 + 101 + i, temperature=cfg.temperature, top_p=cfg.top_p,
                                     desc=f"ropo_full candidates (round {i + 1})")
        self.timings["generate"] += time.time() - t0
        t0 = time.time()
        scored = rs.score_responses(self.trainer, ctx.policy, self.ref_model, prompts, cands, self.like,
                                    cfg.score_batch_size)
        if cfg.include_original:
            scored = [rs.add_originals(s, self._original(j, scores), ctx.tokenizer.eos_token)
                      for s, j in zip(scored, drop_idx)]
        reps = rs.choose_replacements(ctx.loss, scored, prompts, [self.pair_ids[j] for j in drop_idx], i + 1,
                                      f.cut if cfg.accept == "below_cut" else None, self.like, self.needs_ref,
                                      ctx.gold_reward)
        # a replacement pair's reference log-probs are its two candidates' (scored above through the same TRL
        # path: a response's log-prob given its prompt does not depend on the response it is paired with)
        self.timings["candidates"] += time.time() - t0
        self.replacement_rows += reps.rows
        stats = rs.round_statistics(f.stats, reps, len(prompts) * cfg.n_candidates, sum(map(len, cands)),
                                    len(self.base))
        return reps, stats

    def _original(self, j: int, scores) -> dict:
        pair = {"chosen": self.base_text[int(j)]["chosen"], "rejected": self.base_text[int(j)]["rejected"]}
        for side in ("chosen", "rejected"):
            pair[f"policy_{side}"] = float(scores[side][j])
            pair[f"len_{side}"] = float(scores[f"{side}_len"][j])
            if self.needs_ref:
                pair[f"ref_{side}"] = float((self.ref_c if side == "chosen" else self.ref_r)[j])
        return pair

    def result(self, label: str) -> TrainResult:
        write_jsonl(self.ctx.out_dir / "ropo_filter.jsonl", self.filter_rows)
        write_jsonl(self.ctx.out_dir / "ropo_replacements.jsonl", self.replacement_rows)
        precision, recall = pooled_precision(self.rounds), mean_of(self.rounds, "recall")
        summary = {
            "config": asdict(self.cfg), "round_steps": self.steps, "rounds": self.rounds,
            "filter_precision": precision, "filter_recall_mean": recall,
            "filter_auroc_mean": mean_of(self.rounds, "auroc"),
            "chance_precision": self.rounds[0]["chance_precision"] if self.rounds else None,
            "n_replacements": sum(r["n_replacements"] for r in self.rounds),
        }
        nan = float("nan")
        out = self.run.result(
            {"method": "ropo_full", "loss_label": label, "ropo_full": summary,
             "ropo_full_timings": {**self.run.timings, **self.timings}},
            metrics={"ropo_filter_precision": nan if precision is None else float(precision),
                     "ropo_filter_recall": nan if recall is None else float(recall)},
            directions={"ropo_filter_precision": HIGHER, "ropo_filter_recall": HIGHER},
            timings=self.timings)
        return out
