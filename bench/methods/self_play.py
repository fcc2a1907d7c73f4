"""``method=self_play``: SPPO's rounds (Wu et al. 2024, "Self-Play Preference Optimization"), with the cell's scorer
as the preference model, after one round on the noisy offline pairs.

Round 1 trains on the cell's (noisy) training pairs as ``method=standard`` would. Before each later round the
current policy samples ``n_samples`` responses for a fresh share of the training prompts (the prompts are dealt
once into ``rounds - 1`` parts, seeded, as SPPO gives each iteration its own prompts), the scorer scores them, and
the highest- and lowest-scoring distinct responses form the prompt's new pair, with their scores (``loss=sppo
loss.variant=single`` turns them into SPPO's win-rate targets ``p = sigma(s_w - s_l)``; any loss can be used).
The reference of a round is the policy it starts from (``reference: round``, SPPO's ``pi_t``) or the initial
policy (``initial``). Label noise reaches later rounds only through the scorer (``scorer=proxy`` learned from
noisy labels). The record gives, per round, the pairs made and, on the world, how often the scorer's choice agrees
with the gold reward (a diagnostic after the fact, never used to choose).
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
from datasets import Dataset

from bench.core.metrics import COUNTER
from bench.core.options import ConfigError
from bench.core.text import as_completion, prompt_text
from bench.methods.base import Method, TrainContext, TrainResult
from bench.methods.options import SelfPlayOptions
from bench.methods.pairs import pair_logps, sample_candidates, tokenize_pairs
from bench.methods.stages import Staged, split_steps, total_steps
from bench.models.adapters import AdapterOff, is_peft
from bench.models.load import load_causal_lm

PROMPT_SEED = 5_000_011  # how the prompts are dealt into rounds
SAMPLE_SEED = 6_000_001  # the policy's samples in each round


class SelfPlay(Method):
    name = "self_play"
    stops_early = True  # its rounds share one schedule; no sampling or round after the stop
    Options = SelfPlayOptions  # needs_scores

    def check(self, loss) -> str:
        if getattr(loss, "needs_annotators", False):
            raise ConfigError(f"method=self_play makes new pairs with no annotator; loss={loss.name} needs "
                                    "annotator ids (set loss.per_annotator=false)")
        return f"{getattr(loss, 'label', loss.name)} + self-play"

    def train(self, ctx: TrainContext) -> TrainResult:
        cfg, ds = self.options, ctx.train_dataset
        if ctx.scorer is None:
            raise ConfigError("method=self_play needs a scorer (scorer=proxy, oracle or rm)")
        total = total_steps(ctx.train, len(ds))
        steps = [total] * cfg.rounds if cfg.budget == "per_round" else split_steps(
            total, [1] * cfg.rounds, "method=self_play", "method.budget=per_round")
        run = Staged(ctx, steps, "self_play")
        run.prepare(ds)
        rounds = [{"round": 1, "source": "offline pairs", "n_pairs": len(ds), "train_loss": run.run(0)}]
        prompts = list(dict.fromkeys(ds["prompt"])) if isinstance(ds[0]["prompt"], str) else list(ds["prompt"])
        order = np.random.default_rng([ctx.seed, PROMPT_SEED]).permutation(len(prompts))
        parts = np.array_split(order, cfg.rounds - 1)
        reference = _Reference(ctx, cfg)
        timings = {"generate": 0.0, "score": 0.0}
        for i in range(1, cfg.rounds):
            if run.stopped:
                break
            part = [prompts[j] for j in parts[i - 1]]
            pairs, stats = self._pairs(ctx, part, i, ds[0]["chosen"], timings)
            if not pairs:
                raise RuntimeError(f"method=self_play round {i + 1}: no prompt gave two distinct samples with "
                                   "different scores")
            data = reference.attach(run.trainer, pairs)
            rounds.append({"round": i + 1, "source": "policy samples", **stats, "train_loss": run.run(i, data)})
        agree = [r["gold_agreement"] for r in rounds if r.get("gold_agreement") is not None]
        metrics = {"self_play_gold_agreement": float(np.mean(agree))} if agree else {}
        record = {"self_play": {"config": asdict(cfg), "round_steps": steps, "rounds": rounds}}
        return run.result(record, metrics=metrics, directions=dict.fromkeys(metrics, COUNTER), timings=timings)

    def _pairs(self, ctx: TrainContext, prompts: list, i: int, like, timings: dict) -> tuple[list[dict], dict]:
        """The round's new pairs: per prompt the best and the worst of its samples under the scorer."""
        cfg = self.options
        t0 = time.time()
        cands = sample_candidates(ctx.policy, ctx.tokenizer, prompts, cfg.n_samples,
                                  max_new_tokens=int(cfg.max_new_tokens or ctx.max_new_tokens),
                                  seed=ctx.seed * 1000 + SAMPLE_SEED + i, temperature=cfg.temperature,
                                  top_p=cfg.top_p, desc=f"self_play samples (round {i + 1})")
        timings["generate"] += time.time() - t0
        t0 = time.time()
        flat_p = [p for p, cs in zip(prompts, cands) for _ in cs]
        flat_r = [r for cs in cands for r in cs]
        scores = ctx.scorer.score(flat_p, flat_r) if flat_r else np.zeros(0)
        timings["score"] += time.time() - t0
        pairs, gold, at = [], [], 0
        for p, cs in zip(prompts, cands):
            s = scores[at: at + len(cs)]
            at += len(cs)
            if len(cs) < 2 or s.max() == s.min():
                continue
            w, lo = int(np.argmax(s)), int(np.argmin(s))
            pairs.append({"prompt": p, "chosen": as_completion(cs[w], like), "rejected": as_completion(cs[lo], like),
                          "score_chosen": float(s[w]), "score_rejected": float(s[lo])})
            if ctx.gold_reward is not None:  # diagnosis only
                gw, gl = ctx.gold_reward(prompt_text(p), cs[w]), ctx.gold_reward(prompt_text(p), cs[lo])
                gold.append(1.0 if gw > gl else 0.5 if gw == gl else 0.0)
        stats = {"n_prompts": len(prompts), "n_pairs": len(pairs), "n_samples": len(flat_r),
                 "score_gap_mean": float(np.mean([q["score_chosen"] - q["score_rejected"] for q in pairs]))
                 if pairs else None, "gold_agreement": float(np.mean(gold)) if gold else None}
        ctx.log(f"self_play round {i + 1}: {len(pairs)} pairs from {len(prompts)} prompts; scorer agrees with gold on "
                f"{stats['gold_agreement']}")
        return pairs, stats


class _Reference:
    """Reference log-probs of a round's new pairs: the policy the round starts from, or the initial policy."""

    def __init__(self, ctx: TrainContext, cfg):
        self.ctx, self.cfg, self.frozen = ctx, cfg, None
        self.needed = bool(ctx.loss.needs_reference_model)

    def model(self, trainer):
        if self.cfg.reference == "round":
            return self.ctx.policy
        if self.frozen is None and is_peft(self.ctx.policy):
            self.frozen = AdapterOff(self.ctx.policy)  # LoRA: the base model, no copy
        if self.frozen is None:
            from trl.trainer.utils import add_fused_lm_head

            self.frozen, _ = load_causal_lm(self.ctx.reference_path, str(trainer.accelerator.device))
            self.frozen.eval().requires_grad_(False)
            add_fused_lm_head(self.frozen)  # TRL's forward, as for the policy
        return self.frozen

    def attach(self, trainer, pairs: list[dict]):
        data = Dataset.from_list(pairs)
        if not self.needed:
            return data
        tok = tokenize_pairs(trainer, data, "self_play pairs")
        s = pair_logps(trainer, self.model(trainer), tok, self.cfg.score_batch_size)
        return data.add_column("ref_chosen_logps", s["chosen"].double().tolist()).add_column(
            "ref_rejected_logps", s["rejected"].double().tolist())
