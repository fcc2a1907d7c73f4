"""ROPO's full method (``method=ropo_full``): rounds of ROPO-loss training, loss-based noise filtering between
rounds, and robustness-guided rejection sampling (RGRS) of replacement pairs for the dropped prompts.

Source: Liang et al., "ROPO: Robust Preference Optimization for Large Language Models", arXiv 2404.04102, ICML
2025 (Algorithm 1, appendix A). The paper has no official code. Its text was not reachable from this project's
machines when this was written, so what follows implements the method as the paper's abstract and
``shared/reference/losses.md`` describe it (an iterative alignment that alternates noise-tolerant training with
the robust loss and filtering of the highest-loss, most uncertain pairs, and replaces the discarded queries' data
with new responses chosen by rejection sampling guided by the robust loss), and states every choice below. Check
them against the paper before quoting a figure as "the paper's method".

What one cell does (``train_ropo_full``)::

    D_1 = the noisy training pairs (reference log-probs from TRL's precompute / the shared cache)
    for t = 1 .. R:
        train the policy on D_t with the ROPO loss           (one PreferenceTrainer: the standard trainer path)
        if t < R:
            l_i = ROPO loss of every ORIGINAL pair i under the current policy pi_t
            drop the k = round(drop_fraction * N) pairs with the highest l_i  (w-step)
            for each dropped prompt x: sample n_candidates responses from pi_t, pick the pair (y_w, y_l) with the
                lowest ROPO loss under pi_t, keep it if that loss is at most the filter's cut   (RGRS)
            D_{t+1} = kept original pairs + accepted replacement pairs

Choices (the paper's are stated where known; "open" marks what it leaves to the implementer or what could not be
checked against its text):

1. **Filtering is the w-step of the paper's constrained problem.** The paper writes training with noise
   reduction as minimizing a weighted loss ``sum_i w_i l_i`` with the weights' sum constrained to the number of
   pairs to keep, solved by alternating between the policy and the weights. With 0/1 weights the w-step keeps the
   ``N - k`` lowest-loss pairs. So each filter re-ranks *all N original pairs* under the current policy: a pair
   dropped after round t can come back after round t+1 if its loss fell (open: a cumulative filter is the other
   reading). Replacement pairs are not ranked: they are regenerated after every round for the currently dropped
   prompts (they carry no label of the original data, so they have no place in the filter's precision).
2. **How many.** ``k = round(drop_fraction * N)`` (halves up) every round, of the original pairs that TRL kept
   (it drops pairs whose prompt alone fills ``train.max_length``). ``drop_fraction`` 0.2 (open: the proportion
   recalled from the paper's setup, not checked against its text; it is a config value).
3. **Rounds and budget (open).** ``rounds`` 3, filtering between rounds (``rounds - 1`` filters; none after
   the last round, whose filter would change nothing). ``budget: matched`` splits the cell's training budget
   (``train.max_steps``, else ``train.epochs`` passes over the initial data, as TRL counts steps) evenly over
   the rounds and runs one optimizer and one learning-rate schedule (warmup, decay) across them, so the full
   method takes exactly as many optimizer steps as ``method=standard`` and its learning rate follows the same
   curve; only the data changes between rounds. ``budget: per_round`` gives every round the whole budget
   (closer to "an iteration is a pass over the data"; R times the compute). Round t shuffles its data with
   ``data_seed = seed + t - 1`` (round 1's order is the standard cell's).
4. **The loss used to filter and to choose is the training loss** (``loss=ropo``: the paper's robust loss,
   whose bounded gradient for confidently "wrong" pairs is what makes flipped pairs stand out with high loss).
   With another loss the cell fails unless ``method.allow_other_loss=true`` (then it warns and labels the result
   "ROPO full method (<loss>)"): an ablation, not the paper's method. Batch-level losses (Dr. DPO) cannot rank
   pairs and always fail.
5. **Robustness-guided rejection sampling.** For a dropped prompt x, ``n_candidates`` responses are sampled
   from the current policy (temperature/top_p from config, ``max_new_tokens`` = the world's pair length);
   duplicates and empty responses are removed; with ``include_original: true`` the dropped pair's own two
   responses join the candidates (open; off by default: the issue asks for new responses, and re-ranking the
   original two would be label correction rather than replacement). Each candidate's implicit reward is the
   loss's own ``r(y) = beta [log pi_t(y|x) - log pi_ref(y|x)]``. Among all ordered pairs of distinct candidates
   the one with the lowest ROPO loss is chosen; ROPO's loss falls strictly with the margin, so this is
   (chosen = highest implicit reward, rejected = lowest): the pair the current policy is most confident about.
   The rejection step (``accept: below_cut``, open): the pair is kept only if its loss is at most the filter's
   cut this round (the largest loss among the original pairs kept), i.e. only if the filter itself would have
   kept it as a confident, low-uncertainty pair; otherwise the prompt has no pair in the next round.
   ``accept: always`` keeps every chosen pair. The gold reward is never consulted for any choice.
6. **Labels of replacement pairs** are the policy's own ranking: no injected-noise flag (they are not in
   ``is_flipped``'s denominator). Where the data has a gold reward (the embedded world) the record adds, after the
   fact and for diagnosis only, how often that ranking agrees with the gold reward (``gold_agreement``).
7. **Reference log-probs** of replacement pairs come from a frozen copy of the reference policy (the initial
   policy, loaded from ``data.model_path``) run through TRL's own preprocessing, collator and
   ``compute_ref_log_probs``: the same tokenization, truncation and forward as TRL's precompute, computed on
   each accepted pair as it will be trained (TRL tokenizes a pair's two responses together). A check at the start
   compares this path with the precomputed reference log-probs of the first pairs and fails the cell if they
   disagree (>1e-3); ``tests/test_ropo_full.py`` checks it against TRL's precompute on new pairs. Policy
   log-probs for filtering and choosing use the same path with the current policy.

Recorded (``record["ropo_full"]``): per filter round the number scored and dropped, how many of the dropped were
truly flipped (``precision`` = flipped dropped / dropped, against the injected ``is_flipped`` mask), ``recall``
(flipped dropped / flipped), ``chance_precision`` (the flip rate: what a random filter scores), ``auroc`` (the
loss as a flip detector, threshold-free), mean loss of flipped and clean pairs, the cut, and the rejection
sampling counts; and pooled over rounds ``filter_precision`` (sum of flipped dropped / sum of dropped), the
cell metric ``ropo_filter_precision`` (higher is better). Files in the cell folder: ``ropo_filter.jsonl`` (each
original pair's loss and fate per round) and ``ropo_replacements.jsonl`` (every candidate pair chosen, accepted
or not).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.registry import group_defaults
from bench.ropo_filter import (  # the scoring half of the method
    choose_pair, exact_count, filter_stats, highest_loss, mean_of, pair_logps, pair_losses, pooled_precision,
    tokenize_pairs,
)

METHODS = ("standard", "ropo_full")
LABEL = "ROPO (full method)"


class MethodConfigError(ValueError):
    """A ``method`` setting is unknown or out of range."""


# ------------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class RopoFullConfig:
    rounds: int
    drop_fraction: float
    budget: str
    n_candidates: int
    include_original: bool
    accept: str
    temperature: float
    top_p: float
    max_new_tokens: int | None
    score_batch_size: int
    allow_other_loss: bool

    @classmethod
    def from_dict(cls, cfg: dict | None = None) -> "RopoFullConfig":
        """Defaults from ``conf/method/ropo_full.yaml`` overridden by ``cfg``; clear errors for bad values."""
        from bench.registry import did_you_mean

        cfg = dict(cfg or {})
        name = cfg.pop("name", "ropo_full")
        if name != "ropo_full":
            raise MethodConfigError(f"RopoFullConfig is for method=ropo_full, got method.name={name!r}")
        known = [f.name for f in cls.__dataclass_fields__.values()]
        for k in cfg:
            if k not in known:
                raise MethodConfigError("method=ropo_full: " + did_you_mean("setting", k, known))
        c = cls(**{**group_defaults("method", "ropo_full"), **cfg})
        c.validate()
        return c

    def validate(self) -> None:
        def bad(key, why):
            return MethodConfigError(f"method.{key}={getattr(self, key)!r}: {why}")

        if not isinstance(self.rounds, int) or self.rounds < 2:
            raise bad("rounds", "must be an integer >= 2 (filtering happens between rounds)")
        if not 0.0 < float(self.drop_fraction) < 1.0:
            raise bad("drop_fraction", "must be in (0, 1)")
        if self.budget not in ("matched", "per_round"):
            raise bad("budget", "valid choices: matched, per_round")
        if not isinstance(self.n_candidates, int) or self.n_candidates < 1:
            raise bad("n_candidates", "must be an integer >= 1")
        if self.n_candidates < 2 and not self.include_original:
            raise bad("n_candidates", "needs >= 2 candidates to form a pair (or include_original=true)")
        if self.accept not in ("below_cut", "always"):
            raise bad("accept", "valid choices: below_cut, always")
        if not float(self.temperature) > 0:
            raise bad("temperature", "must be > 0 (candidates are sampled)")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise bad("top_p", "must be in (0, 1]")
        if self.max_new_tokens is not None and (not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1):
            raise bad("max_new_tokens", "must be a positive integer or null")
        if not isinstance(self.score_batch_size, int) or self.score_batch_size < 1:
            raise bad("score_batch_size", "must be a positive integer")


def method_name(method_cfg: dict | None) -> str:
    name = (method_cfg or {}).get("name", "standard")
    if name not in METHODS:
        from bench.registry import did_you_mean

        raise MethodConfigError(did_you_mean("method", name, list(METHODS)))
    return name


def check_loss(loss, cfg: RopoFullConfig) -> str:
    """The result label; raises for losses the method cannot use."""
    if getattr(loss, "batch_level", False):
        raise MethodConfigError(
            f"method=ropo_full ranks pairs by their loss; loss={loss.name!r} is batch-level (its per-pair values are "
            "the batch loss) and cannot rank pairs. Use loss=ropo."
        )
    if loss.name == "ropo":
        return LABEL
    if not cfg.allow_other_loss:
        raise MethodConfigError(
            f"method=ropo_full is ROPO's method and uses ROPO's loss (its bounded gradient is what makes flipped "
            f"pairs stand out by loss); got loss={loss.name!r}. Use loss=ropo, or set method.allow_other_loss=true "
            "to run the rounds, filter and rejection sampling with another loss (an ablation, labelled as such)."
        )
    warnings.warn(
        f"method=ropo_full with loss={loss.name!r}: an ablation of ROPO's method with another loss, not the paper's "
        "method", stacklevel=2,
    )
    return f"ROPO full method ({getattr(loss, 'label', loss.name)})"


# ------------------------------------------------------------------------------------------------ the method
@dataclass
class RopoFullResult:
    training_loss: float
    global_step: int
    log_history: list[dict]
    record: dict
    metrics: dict[str, float]
    metric_info: dict[str, dict]
    timings: dict[str, float] = field(default_factory=dict)


def round_steps(cfg: RopoFullConfig, train_cfg: dict, n_pairs: int) -> list[int]:
    """Optimizer steps of each round (see choice 3 in the module docstring)."""
    if train_cfg.get("max_steps"):
        total = int(train_cfg["max_steps"])
    else:  # as transformers counts: ceil(epochs * steps per epoch), steps per epoch = batches // accumulation
        accum = int(train_cfg.get("gradient_accumulation_steps") or 1)
        per_epoch = max(math.ceil(n_pairs / int(train_cfg["batch_size"])) // accum, 1)
        total = math.ceil(float(train_cfg.get("epochs", 1)) * per_epoch)
    if cfg.budget == "per_round":
        return [total] * cfg.rounds
    if total < cfg.rounds:
        raise MethodConfigError(
            f"method=ropo_full: the training budget is {total} steps, fewer than method.rounds={cfg.rounds}; "
            "raise train.max_steps / train.epochs, lower method.rounds, or use method.budget=per_round"
        )
    return [total // cfg.rounds + (1 if i < total % cfg.rounds else 0) for i in range(cfg.rounds)]


def _as_prompt_text(prompt, tokenizer) -> str:
    from bench.evaluate import render_prompts

    return render_prompts([prompt], tokenizer)[0]


def _as_completion(text: str, like):
    """A sampled text in the form of the dataset's completions (plain string or one assistant message)."""
    return text if isinstance(like, str) else [{"role": "assistant", "content": text}]


def _completion_text(c) -> str:
    return c if isinstance(c, str) else str(c[-1]["content"])


def _strip_eos(text: str, eos: str | None) -> str:
    return text[: -len(eos)] if eos and isinstance(text, str) and text.endswith(eos) else text


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, default=str) + "\n" for r in rows)


def train_ropo_full(
    *,
    policy,
    tokenizer,
    train_dataset,
    loss,
    method_cfg: dict,
    train_cfg: dict,
    out_dir: Path,
    seed: int,
    reference_path: str,
    ref_cache=None,
    report_to: str = "none",
    gold_reward: Callable[[str, str], float] | None = None,
    max_new_tokens: int = 48,
    log: Callable[[str], None] = print,
) -> RopoFullResult:
    """Train ``policy`` in place by ROPO's full method; see the module docstring. ``train_dataset`` is the noisy
    training split (with ``is_flipped`` when the noise mask is known)."""
    from datasets import Dataset, Value, concatenate_datasets
    from transformers import get_scheduler

    from bench import sampling
    from bench import trainer as tr
    from bench.records import atomic_write_text

    cfg = RopoFullConfig.from_dict(method_cfg)
    label = check_loss(loss, cfg)
    out_dir = Path(out_dir)
    timings = {"train": 0.0, "trainer_init": 0.0, "filter": 0.0, "generate": 0.0, "candidates": 0.0}
    needs_ref = bool(loss.needs_reference_model)
    eos = tokenizer.eos_token

    ds = train_dataset.add_column("ropo_row", list(range(len(train_dataset))))
    steps = round_steps(cfg, train_cfg, len(ds))
    total = sum(steps)

    def make_args(i: int):
        args = tr.dpo_config({**train_cfg, "max_steps": steps[i]}, out_dir / f"round_{i + 1}", seed, report_to=report_to)
        args.data_seed = seed + i
        return args

    # round 1's trainer: the reference pass (or the shared cache), and the one optimizer + schedule of the run
    t0 = time.time()
    trainer = tr.PreferenceTrainer(model=policy, args=make_args(0), train_dataset=ds, processing_class=tokenizer,
                                   pref_loss=loss, ref_cache=ref_cache)
    timings["trainer_init"] += time.time() - t0
    if trainer.accelerator.num_processes > 1:
        raise MethodConfigError("method=ropo_full runs in one process (its filter and sampling are not distributed)")
    optimizer = trainer.create_optimizer()
    scheduler = get_scheduler(trainer.args.lr_scheduler_type, optimizer=optimizer,
                              num_warmup_steps=trainer.args.get_warmup_steps(total), num_training_steps=total,
                              scheduler_specific_kwargs=trainer.args.lr_scheduler_kwargs)
    trainer.lr_scheduler = scheduler

    base = trainer.train_dataset  # the original pairs as TRL tokenized them, with reference log-probs
    rows = np.asarray(base["ropo_row"], dtype=int)
    flipped = np.asarray(base["is_flipped"], dtype=bool) if "is_flipped" in base.column_names else None
    pair_ids = list(base["pair_id"]) if "pair_id" in base.column_names else rows.tolist()
    prompts = list(base["prompt"])
    ref_c = np.asarray(base["ref_chosen_logps"], dtype=float) if needs_ref else None
    ref_r = np.asarray(base["ref_rejected_logps"], dtype=float) if needs_ref else None
    text_cols = ["prompt", "chosen", "rejected"] + (["ref_chosen_logps", "ref_rejected_logps"] if needs_ref else [])
    base_text = base.select_columns(text_cols)
    if needs_ref:
        base_text = base_text.cast_column("ref_chosen_logps", Value("float64")).cast_column("ref_rejected_logps", Value("float64"))

    ref_model = None
    if needs_ref:  # frozen reference = the initial policy, for the replacement pairs' reference log-probs
        from trl.trainer.utils import add_fused_lm_head

        from bench.models import load_causal_lm

        ref_model, _ = load_causal_lm(reference_path, str(trainer.accelerator.device))
        ref_model.eval().requires_grad_(False)
        add_fused_lm_head(ref_model)
        # the replacement path must reproduce TRL's precompute: check it on the first pairs
        probe = base.select(range(min(16, len(base))))
        s = pair_logps(trainer, ref_model, probe, cfg.score_batch_size)
        gap = max(float((s["chosen"] - torch.tensor(ref_c[: len(probe)])).abs().max()),
                  float((s["rejected"] - torch.tensor(ref_r[: len(probe)])).abs().max()))
        if not gap <= 1e-3:
            raise RuntimeError(
                f"reference log-probs through TRL's forward differ from the precomputed ones by {gap:.3g}: the "
                f"reference at {reference_path!r} is not the model the precompute used"
            )

    history: list[dict] = []
    rounds: list[dict] = []
    filter_rows: list[dict] = []
    replacement_rows: list[dict] = []
    losses_weighted, global_step = 0.0, 0
    n = len(base)
    for i in range(cfg.rounds):
        if i > 0:
            t0 = time.time()
            trainer = tr.PreferenceTrainer(model=policy, args=make_args(i), train_dataset=train_i,
                                           processing_class=tokenizer, pref_loss=loss,
                                           optimizers=(optimizer, scheduler))
            timings["trainer_init"] += time.time() - t0
        t0 = time.time()
        out = trainer.train()
        timings["train"] += time.time() - t0
        done = int(trainer.state.global_step)
        losses_weighted += float(out.training_loss) * done
        history += [{**h, "round": i + 1, "step": global_step + int(h.get("step", 0))}
                    for h in trainer.state.log_history if "loss" in h]
        global_step += done
        log(f"ropo_full round {i + 1}/{cfg.rounds}: {done} steps on {len(trainer.train_dataset)} pairs, "
            f"train loss {float(out.training_loss):.4f}")
        if i == cfg.rounds - 1:
            break

        # ---- filter: rank every original pair by its loss under the current policy (w-step)
        t0 = time.time()
        scores = pair_logps(trainer, policy, base, cfg.score_batch_size)
        values = pair_losses(loss, scores, ref_c, ref_r).numpy()
        k = exact_count(float(cfg.drop_fraction), n)
        dropped = highest_loss(values, k)
        kept_losses = values[~dropped]
        cut = float(kept_losses.max()) if len(kept_losses) else float(values[dropped].min())
        stats = {"round": i + 1, **filter_stats(dropped, flipped, values), "loss_cut": cut}
        filter_rows += [
            {"round": i + 1, "row": int(rows[j]), "pair_id": pair_ids[j], "loss": float(values[j]),
             "dropped": bool(dropped[j]), "is_flipped": None if flipped is None else bool(flipped[j])}
            for j in range(n)
        ]
        timings["filter"] += time.time() - t0

        # ---- robustness-guided rejection sampling for the dropped prompts
        drop_idx = np.flatnonzero(dropped)
        t0 = time.time()
        gen_prompts = [_as_prompt_text(prompts[j], tokenizer) for j in drop_idx for _ in range(cfg.n_candidates)]
        samples = sampling.generate(
            policy, tokenizer, gen_prompts, max_new_tokens=int(cfg.max_new_tokens or max_new_tokens),
            seed=seed * 1000 + 101 + i, temperature=float(cfg.temperature), top_p=float(cfg.top_p),
            desc=f"ropo_full candidates (round {i + 1})",
        ) if len(gen_prompts) else []
        timings["generate"] += time.time() - t0

        t0 = time.time()
        cands: list[list[str]] = []
        for a, j in enumerate(drop_idx):
            got = [s for s in samples[a * cfg.n_candidates:(a + 1) * cfg.n_candidates] if s.strip()]
            cands.append(list(dict.fromkeys(got)))  # distinct, in sampling order
        # score the new responses in (pseudo-)pairs through TRL: pair consecutive candidates, the last with itself
        flat = [(a, y) for a, cs in enumerate(cands) for y in cs]
        cand_pol = torch.zeros(len(flat))
        cand_ref = torch.zeros(len(flat))
        cand_len = torch.zeros(len(flat))
        if flat:
            first = [flat[q][1] for q in range(0, len(flat), 2)]
            second = [flat[min(q + 1, len(flat) - 1)][1] for q in range(0, len(flat), 2)]
            owner = [prompts[drop_idx[flat[q][0]]] for q in range(0, len(flat), 2)]
            like = base_text[0]["chosen"]
            pseudo = Dataset.from_dict({
                "prompt": owner,
                "chosen": [_as_completion(y, like) for y in first],
                "rejected": [_as_completion(y, like) for y in second],
            })
            tok = tokenize_pairs(trainer, pseudo, "ropo_full candidates")
            sp = pair_logps(trainer, policy, tok, cfg.score_batch_size)
            sr = pair_logps(trainer, ref_model, tok, cfg.score_batch_size) if needs_ref else None
            for q in range(len(first)):
                for slot, key in ((2 * q, "chosen"), (2 * q + 1, "rejected")):
                    if slot < len(flat):
                        cand_pol[slot] = sp[key][q]
                        cand_len[slot] = sp[key + "_len"][q]
                        if sr is not None:
                            cand_ref[slot] = sr[key][q]
        accepted = []
        pos = 0
        for a, j in enumerate(drop_idx):
            m = len(cands[a])
            texts = list(cands[a])
            pol = cand_pol[pos:pos + m].tolist()
            ref = cand_ref[pos:pos + m].tolist()
            lens = cand_len[pos:pos + m].tolist()
            pos += m
            if cfg.include_original:
                for side, col in ((scores["chosen"], "chosen"), (scores["rejected"], "rejected")):
                    text = _strip_eos(_completion_text(base_text[int(j)][col]), eos)
                    if text in texts:
                        continue
                    texts.append(text)
                    pol.append(float(side[j]))
                    ref.append(float((ref_c if col == "chosen" else ref_r)[j]) if needs_ref else 0.0)
                    lens.append(float(scores[col + "_len"][j]))
            choice = choose_pair(loss, pol, ref if needs_ref else None, lens, texts,
                                 cut if cfg.accept == "below_cut" else None)
            row = {"round": i + 1, "replaces_pair_id": pair_ids[j], "prompt": prompts[j], "n_candidates": len(texts)}
            if choice is None:
                replacement_rows.append({**row, "accepted": False, "reason": "fewer than two distinct candidates"})
                continue
            y_w, y_l = texts[choice.chosen], texts[choice.rejected]
            row.update(chosen=y_w, rejected=y_l, loss=choice.loss, margin=choice.margin, accepted=choice.accepted)
            if gold_reward is not None:  # diagnosis only: never used to choose
                try:
                    gw, gl = gold_reward(prompts[j], y_w), gold_reward(prompts[j], y_l)
                    row.update(gold_chosen=gw, gold_rejected=gl)
                except Exception:  # noqa: BLE001 - a diagnostic must not fail the cell
                    pass
            replacement_rows.append(row)
            if choice.accepted:
                accepted.append({
                    "prompt": prompts[j],
                    "chosen": _as_completion(y_w, base_text[0]["chosen"]),
                    "rejected": _as_completion(y_l, base_text[0]["chosen"]),
                })
        if accepted and needs_ref:
            # reference log-probs of the pairs exactly as they will be trained (TRL tokenizes a pair together)
            sr = pair_logps(trainer, ref_model, tokenize_pairs(trainer, Dataset.from_list(accepted), "ropo_full pairs"),
                            cfg.score_batch_size)
            for a, pair in enumerate(accepted):
                pair.update(ref_chosen_logps=float(sr["chosen"][a]), ref_rejected_logps=float(sr["rejected"][a]))
        timings["candidates"] += time.time() - t0
        this_round = [r for r in replacement_rows if r["round"] == i + 1]
        golds = [r for r in this_round if r.get("accepted") and "gold_chosen" in r]
        stats.update(
            n_candidates_sampled=len(samples),
            n_candidates_distinct=len(flat),
            n_replacements=len(accepted),
            n_rejected=len(drop_idx) - len(accepted),
            replacement_mean_margin=float(np.mean([r["margin"] for r in this_round if r.get("accepted")])) if accepted else None,
            gold_agreement=float(np.mean([1.0 if r["gold_chosen"] > r["gold_rejected"] else 0.5 if r["gold_chosen"] == r["gold_rejected"] else 0.0 for r in golds])) if golds else None,
            n_pairs_next_round=int(n - k + len(accepted)),
        )
        rounds.append(stats)
        log(f"ropo_full filter after round {i + 1}: dropped {k} of {n}, precision {stats['precision']}, "
            f"recall {stats['recall']} (chance {stats['chance_precision']}); {len(accepted)} replacements")

        keep = base_text.select(np.flatnonzero(~dropped).tolist())
        if accepted:
            extra = Dataset.from_list(accepted, features=keep.features)
            train_i = concatenate_datasets([keep, extra])
        else:
            train_i = keep

    policy.eval()
    atomic_write_text(out_dir / "ropo_filter.jsonl", _jsonl(filter_rows))
    atomic_write_text(out_dir / "ropo_replacements.jsonl", _jsonl(replacement_rows))
    del ref_model

    precision = pooled_precision(rounds)
    recall = mean_of(rounds, "recall")
    summary = {
        "config": asdict(cfg),
        "round_steps": steps,
        "rounds": rounds,
        "filter_precision": precision,
        "filter_recall_mean": recall,
        "filter_auroc_mean": mean_of(rounds, "auroc"),
        "chance_precision": rounds[0]["chance_precision"] if rounds else None,
        "n_replacements": sum(r["n_replacements"] for r in rounds),
    }
    nan = float("nan")
    metrics = {
        "ropo_filter_precision": nan if precision is None else float(precision),
        "ropo_filter_recall": nan if recall is None else float(recall),
    }
    info = {
        "ropo_filter_precision": {"higher_is_better": True, "evaluator": "ropo_full"},
        "ropo_filter_recall": {"higher_is_better": True, "evaluator": "ropo_full"},
    }
    return RopoFullResult(
        training_loss=losses_weighted / global_step if global_step else float("nan"),
        global_step=global_step,
        log_history=history,
        record={"method": "ropo_full", "loss_label": label, "ropo_full": summary},
        metrics=metrics,
        metric_info=info,
        timings=timings,
    )
