"""ROPO's robustness-guided rejection sampling, step by step: sample candidates for the dropped prompts, score every
candidate under the current policy and the reference, choose each prompt's replacement pair, and sum up the round.

Each step is a function of its inputs (tested on its own); ``bench.methods.ropo_full.method`` runs them in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bench.core.text import as_completion, completion_text
from bench.methods.pairs import pair_logps, sample_candidates, tokenize_pairs  # noqa: F401 (a step of the round)


@dataclass
class Choice:
    chosen: int  # candidate indices
    rejected: int
    loss: float
    margin: float
    accepted: bool


def choose_pair(loss, pol, ref, lengths, texts: list, cut: float | None) -> Choice | None:
    """The ordered pair of distinct candidates with the lowest loss; accepted if its loss is <= cut (None: always).

    ``pol``/``ref``: each candidate's summed log-prob under the current policy / the reference (ref may be None
    for reference-free losses); ``lengths``: completion lengths. Returns None when fewer than two distinct
    candidates exist.
    """
    m = len(texts)
    idx = [(i, j) for i in range(m) for j in range(m) if i != j and texts[i] != texts[j]]
    if not idx:
        return None
    ii = torch.tensor([a for a, _ in idx])
    jj = torch.tensor([b for _, b in idx])
    pol, lengths = torch.as_tensor(pol, dtype=torch.float64), torch.as_tensor(lengths, dtype=torch.float64)
    ref = None if ref is None else torch.as_tensor(ref, dtype=torch.float64)
    args = (pol[ii], pol[jj], None if ref is None else ref[ii], None if ref is None else ref[jj], lengths[ii], lengths[jj])
    with torch.no_grad():
        values = loss(*args)
        c, r = loss.rewards(*args)
    best = int(torch.argmin(values))  # first minimum: deterministic
    value = float(values[best])
    return Choice(chosen=int(ii[best]), rejected=int(jj[best]), loss=value, margin=float(c[best] - r[best]),
                  accepted=cut is None or value <= cut)


# ---------------------------------------------------------------------------------------------- the steps
@dataclass
class Scored:
    """One prompt's candidates with their summed log-probs under the policy and the reference, and lengths."""

    texts: list[str]
    policy: list[float]
    reference: list[float]
    lengths: list[float]


def score_responses(trainer, policy, ref_model, prompts: list, candidates: list[list[str]], like,
                    batch_size: int) -> list[Scored]:
    """Every candidate scored through TRL's path, two at a time as (pseudo-)pairs of the same prompt: consecutive
    candidates pair up, an odd one out with itself. ``like`` is a completion of the data (plain string or messages)
    to match its form."""
    from datasets import Dataset

    slots = []  # (prompt index, first candidate, second candidate), within one prompt
    for a, cs in enumerate(candidates):
        slots += [(a, q, min(q + 1, len(cs) - 1)) for q in range(0, len(cs), 2)]
    values = [{"policy": [0.0] * len(cs), "reference": [0.0] * len(cs), "lengths": [0.0] * len(cs)} for cs in candidates]
    if slots:
        pseudo = Dataset.from_dict({
            "prompt": [prompts[a] for a, _, _ in slots],
            "chosen": [as_completion(candidates[a][i], like) for a, i, _ in slots],
            "rejected": [as_completion(candidates[a][j], like) for a, _, j in slots]})
        tok = tokenize_pairs(trainer, pseudo, "ropo_full candidates")
        sp = pair_logps(trainer, policy, tok, batch_size)
        sr = pair_logps(trainer, ref_model, tok, batch_size) if ref_model is not None else None
        for row, (a, i, j) in enumerate(slots):
            for idx, side in ((i, "chosen"), (j, "rejected")):
                values[a]["policy"][idx] = float(sp[side][row])
                values[a]["lengths"][idx] = float(sp[side + "_len"][row])
                if sr is not None:
                    values[a]["reference"][idx] = float(sr[side][row])
    return [Scored(list(cs), v["policy"], v["reference"], v["lengths"]) for cs, v in zip(candidates, values)]


def add_originals(scored: Scored, pair: dict, eos: str | None) -> Scored:
    """``include_original``: the dropped pair's own two responses join its candidates (``pair`` holds their texts
    and log-probs: chosen/rejected, policy_*, ref_*, len_*)."""
    texts, pol, ref, lens = list(scored.texts), list(scored.policy), list(scored.reference), list(scored.lengths)
    for side in ("chosen", "rejected"):
        text = completion_text(pair[side])
        text = text[: -len(eos)] if eos and text.endswith(eos) else text
        if text in texts:
            continue
        texts.append(text)
        pol.append(float(pair[f"policy_{side}"]))
        ref.append(float(pair.get(f"ref_{side}", 0.0)))
        lens.append(float(pair[f"len_{side}"]))
    return Scored(texts, pol, ref, lens)


@dataclass
class Replacements:
    pairs: list[dict] = field(default_factory=list)  # accepted: prompt, chosen, rejected (the data's form)
    rows: list[dict] = field(default_factory=list)  # every candidate pair chosen, accepted or not (the cell's file)


def choose_replacements(loss, scored: list[Scored], prompts: list, pair_ids: list, round_no: int, cut: float | None,
                        like, needs_ref: bool, gold_reward=None) -> Replacements:
    """Per dropped prompt, the lowest-loss ordered pair of its candidates (``choose_pair``), kept if its loss is at
    most ``cut`` (None: always). The gold reward, where known, is only recorded beside the choice, never used."""
    out = Replacements()
    for s, prompt, pid in zip(scored, prompts, pair_ids):
        choice = choose_pair(loss, s.policy, s.reference if needs_ref else None, s.lengths, s.texts, cut)
        row = {"round": round_no, "replaces_pair_id": pid, "prompt": prompt, "n_candidates": len(s.texts)}
        if choice is None:
            out.rows.append({**row, "accepted": False, "reason": "fewer than two distinct candidates"})
            continue
        y_w, y_l = s.texts[choice.chosen], s.texts[choice.rejected]
        row.update(chosen=y_w, rejected=y_l, loss=choice.loss, margin=choice.margin, accepted=choice.accepted)
        if gold_reward is not None:  # diagnosis only: never used to choose
            try:
                row.update(gold_chosen=gold_reward(prompt, y_w), gold_rejected=gold_reward(prompt, y_l))
            except Exception:  # noqa: BLE001 - a diagnostic must not fail the cell
                pass
        out.rows.append(row)
        if choice.accepted:
            pair = {"prompt": prompt, "chosen": as_completion(y_w, like), "rejected": as_completion(y_l, like)}
            if needs_ref:  # the candidates' own reference log-probs (scored through TRL's path): no second pass
                pair.update(ref_chosen_logps=float(s.reference[choice.chosen]),
                            ref_rejected_logps=float(s.reference[choice.rejected]))
            out.pairs.append(pair)
    return out


def round_statistics(stats: dict, reps: Replacements, n_sampled: int, n_distinct: int, n_pairs: int) -> dict:
    """The filter's stats plus what rejection sampling did this round (counts, margin, agreement with gold)."""
    accepted = [r for r in reps.rows if r.get("accepted")]
    golds = [r for r in accepted if "gold_chosen" in r]
    agree = [1.0 if r["gold_chosen"] > r["gold_rejected"] else 0.5 if r["gold_chosen"] == r["gold_rejected"] else 0.0
             for r in golds]
    return {
        **stats,
        "n_candidates_sampled": n_sampled,
        "n_candidates_distinct": n_distinct,
        "n_replacements": len(reps.pairs),
        "n_rejected": stats["n_dropped"] - len(reps.pairs),
        "replacement_mean_margin": float(np.mean([r["margin"] for r in accepted])) if accepted else None,
        "gold_agreement": float(np.mean(agree)) if golds else None,
        "n_pairs_next_round": int(n_pairs - stats["n_dropped"] + len(reps.pairs)),
    }
