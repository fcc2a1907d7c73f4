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
from bench.methods.base import Method, MethodConfigError, TrainContext, TrainResult
from bench.methods.pairs import pair_logps, pair_losses, tokenize_pairs
from bench.methods.ropo_full import candidates as rs
from bench.methods.ropo_full.config import RopoFullConfig, check_loss, round_steps
from bench.methods.ropo_full.filter import filter_pairs, mean_of, pooled_precision


class RopoFull(Method):
    name = "ropo_full"
    not_in_identity = ("score_batch_size",)

    def __init__(self, **options):
        from bench.config.typed import typed

        self.cfg = typed(RopoFullConfig, options, "method")

    def check(self, loss) -> str:
        return check_loss(loss, self.cfg)

    def train(self, ctx: TrainContext) -> TrainResult:
        label = check_loss(ctx.loss, self.cfg)
        run = _Rounds(ctx, self.cfg)
        train_i = None
        for i in range(self.cfg.rounds):
            run.train_round(i, train_i)
            if i == self.cfg.rounds - 1:
                break
            train_i = run.refresh(i)
        ctx.policy.eval()
        return run.result(label)


class _Rounds:
    """The state that lives across rounds: the original pairs as TRL tokenized them, the one optimizer and
    schedule, the frozen reference, and what each round recorded."""

    def __init__(self, ctx: TrainContext, cfg: RopoFullConfig):
        from transformers import get_scheduler

        self.ctx, self.cfg = ctx, cfg
        self.timings = {"train": 0.0, "trainer_init": 0.0, "filter": 0.0, "generate": 0.0, "candidates": 0.0}
        self.needs_ref = bool(ctx.loss.needs_reference_model)
        ds = ctx.train_dataset.add_column("ropo_row", list(range(len(ctx.train_dataset))))
        self.steps = round_steps(cfg, ctx.train, len(ds))
        t0 = time.time()  # round 1's trainer: the reference pass (or the shared cache)
        self.trainer = ctx.trainer(ds, args=self._args(0), ref_cache=ctx.ref_cache)
        self.timings["trainer_init"] += time.time() - t0
        if self.trainer.accelerator.num_processes > 1:
            raise MethodConfigError("method=ropo_full runs in one process (its filter and sampling are not distributed)")
        args = self.trainer.args
        self.optimizer = self.trainer.create_optimizer()
        self.scheduler = get_scheduler(args.lr_scheduler_type, optimizer=self.optimizer,
                                       num_warmup_steps=args.get_warmup_steps(sum(self.steps)),
                                       num_training_steps=sum(self.steps),
                                       scheduler_specific_kwargs=args.lr_scheduler_kwargs)
        self.trainer.lr_scheduler = self.scheduler
        self._originals(self.trainer.train_dataset)
        self.ref_model = self._reference() if self.needs_ref else None
        self.history, self.rounds, self.filter_rows, self.replacement_rows = [], [], [], []
        self.loss_sum, self.global_step = 0.0, 0

    def _args(self, i: int):
        args = self.ctx.args(f"round_{i + 1}", max_steps=self.steps[i])
        args.data_seed = self.ctx.seed + i  # round 1's order is the standard cell's
        return args

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
        """A frozen copy of the reference policy, checked against TRL's precompute on the first pairs (choice 7)."""
        from trl.trainer.utils import add_fused_lm_head

        from bench.models import load_causal_lm

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
        if i > 0:
            t0 = time.time()
            self.trainer = self.ctx.trainer(dataset, args=self._args(i), optimizers=(self.optimizer, self.scheduler))
            self.timings["trainer_init"] += time.time() - t0
        t0 = time.time()
        out = self.trainer.train()
        self.timings["train"] += time.time() - t0
        done = int(self.trainer.state.global_step)
        self.loss_sum += float(out.training_loss) * done
        self.history += [{**h, "round": i + 1, "step": self.global_step + int(h.get("step", 0))}
                         for h in self.trainer.state.log_history if "loss" in h]
        self.global_step += done
        self.ctx.log(f"ropo_full round {i + 1}/{self.cfg.rounds}: {done} steps on {len(self.trainer.train_dataset)} "
                     f"pairs, train loss {float(out.training_loss):.4f}")

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
        if reps.pairs and self.needs_ref:  # the pairs exactly as they will be trained (TRL tokenizes them together)
            from datasets import Dataset

            tok = tokenize_pairs(self.trainer, Dataset.from_list(reps.pairs), "ropo_full pairs")
            sr = pair_logps(self.trainer, self.ref_model, tok, cfg.score_batch_size)
            for a, pair in enumerate(reps.pairs):
                pair.update(ref_chosen_logps=float(sr["chosen"][a]), ref_rejected_logps=float(sr["rejected"][a]))
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
        return TrainResult(
            training_loss=self.loss_sum / self.global_step if self.global_step else nan,
            global_step=self.global_step,
            log_history=self.history,
            record={"method": "ropo_full", "loss_label": label, "ropo_full": summary, "ropo_full_timings": self.timings},
            metrics={"ropo_filter_precision": nan if precision is None else float(precision),
                     "ropo_filter_recall": nan if recall is None else float(recall)},
            directions={"ropo_filter_precision": HIGHER, "ropo_filter_recall": HIGHER},
            timings={"trainer_init": self.timings["trainer_init"],
                     "train": sum(v for k, v in self.timings.items() if k != "trainer_init")},
        )
