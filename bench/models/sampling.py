"""Sampling responses from a causal LM and scoring their log-probabilities, batched wide (cheap on one thread).

``sample`` also reads, during generation, the model's own log-prob of each sampled continuation (the policy side
of a Monte-Carlo KL estimate, with no second forward pass), and keeps the sampled token ids, so the reference's side
(``token_logps``) scores exactly the tokens that were sampled rather than a re-tokenization of their text.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from bench.core import progress
from bench.models.finished_rows import FLOOR, skipping
from bench.models.kv_cache import causal_lm, growing_cache


class _SampledLogps(LogitsProcessor):
    """Records, as generation goes, the model's own log-prob of each token it samples (from the raw logits: this
    processor runs first), up to and including the first EOS of each row: the policy's side of a Monte-Carlo KL
    estimate with no second forward pass."""

    def __init__(self, eos_id: int | None):
        self.eos_id, self.last, self.total, self.done = eos_id, None, None, None

    def _take(self, token: torch.Tensor) -> None:
        lp = self.last.gather(1, token[:, None]).squeeze(1)
        self.total += torch.where(self.done, torch.zeros_like(lp), lp)
        if self.eos_id is not None:
            self.done |= token == self.eos_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.last is None:
            self.total = torch.zeros(scores.shape[0], dtype=torch.float64, device=scores.device)
            self.done = torch.zeros(scores.shape[0], dtype=torch.bool, device=scores.device)
        else:
            self._take(input_ids[:, -1])  # the token sampled from the previous step's distribution
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        if self.last is not None:
            self._take(sequences[:, -1])
        return self.total.cpu() if self.total is not None else torch.zeros(sequences.shape[0], dtype=torch.float64)


@dataclass
class Sampled:
    """Samples with what a KL estimate needs: the sampled token ids (prompt and continuation, up to and including
    its EOS) and the sampling policy's summed log-prob of each continuation."""

    texts: list[str]
    logps: torch.Tensor
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, seed: int, batch_size: int = 256,
             temperature: float = 1.0, top_p: float = 1.0, desc: str = "generating") -> list[str]:
    """One sampled completion per prompt (prompts may repeat for several samples). Deterministic given seed."""
    return sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                  temperature=temperature, top_p=top_p, desc=desc, logps=False).texts


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], *, max_new_tokens: int, seed: int, batch_size: int = 256,
           temperature: float = 1.0, top_p: float = 1.0, desc: str = "generating", logps: bool = True) -> Sampled:
    """``generate``'s samples (the same ones, given the seed) and, with ``logps``, the model's own log-prob of
    every sampled continuation, read off the raw logits during generation. The key/value cache is written in place
    (``bench.models.kv_cache``: HF's samples and log-probs, bit for bit, without its per-step copies)."""
    model.eval()
    device = next(model.parameters()).device
    out = Sampled([], torch.zeros(0, dtype=torch.float64), [], [])
    gen = torch.Generator(device="cpu").manual_seed(seed)
    bar = progress.current()
    bar.phase(desc, total=len(prompts))
    eos = tokenizer.eos_token_id
    parts = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        # a per-batch seed drawn from our generator: sampling is reproducible whatever else used the global RNG
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        recorder = _SampledLogps(eos) if logps else None
        cache = growing_cache(model, max_new_tokens)
        with skipping(causal_lm(model), cache, eos):
            ids = model.generate(
                **enc,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p,
                top_k=0,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=eos,
                logits_processor=LogitsProcessorList([recorder]) if recorder is not None else None,
                **({} if cache is None else {"past_key_values": cache}),
            )
        new = ids[:, enc["input_ids"].shape[1] :]
        out.texts.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
        if recorder is not None:
            parts.append(recorder.finish(ids))
            for row, mask, cont in zip(enc["input_ids"], enc["attention_mask"], new):
                out.prompt_ids.append(row[mask.bool()].tolist())
                out.completion_ids.append(_until_eos(cont.tolist(), eos))
        bar.update(len(chunk))
    if parts:
        out.logps = torch.cat(parts)
    return out


def _until_eos(tokens: list[int], eos: int | None) -> list[int]:
    if eos is not None and eos in tokens:
        return tokens[: tokens.index(eos) + 1]
    return tokens


@torch.no_grad()
def token_logps(model, prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int,
                batch_size: int = 128) -> torch.Tensor:
    """Summed log-prob of each completion's token ids given its prompt's (no re-tokenization): the other side of a
    KL estimate on ``sample``'s token ids."""
    return _scored(model, [(len(p), p + c) for p, c in zip(prompt_ids, completion_ids)], pad_id, batch_size)


@torch.no_grad()
def sequence_logps(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 128) -> torch.Tensor:
    """Summed log-prob of each response (plus its EOS) given its prompt, tokenized as TRL tokenizes pairs."""
    ids = _encoded(tokenizer, tuple(prompts), tuple(responses))
    return _scored(model, ids, tokenizer.pad_token_id, batch_size).float()


CPU_TOKENS = 1024  # tokens per forward pass when scoring on the CPU: activations that stay in the core's caches


def _scored(model, seqs: list[tuple[int, list[int]]], pad_id: int, batch_size: int) -> torch.Tensor:
    """Summed log-prob of the tokens after each sequence's first ``n_prompt``, in the given order. Sequences are
    batched in order of length, so a batch pads to little more than its own longest (the values do not change).

    On the CPU a batch runs in slices of about ``CPU_TOKENS`` tokens, each padded as the whole batch is, and asks for
    logits from its first scored position on only (``logits_to_keep``, where the model takes it): the same values,
    bit for bit, in about 0.8 of the time (``python -m bench.perf.scoring``). Bit for bit holds because a row's
    arithmetic does not depend on how many rows run beside it, as long as a matrix product has at least ``FLOOR``
    rows (``bench.models.finished_rows``): slices and kept positions are sized for that (tested)."""
    model.eval()
    device = next(model.parameters()).device
    cpu = device.type == "cpu"
    keeps = cpu and _keeps_logits(model)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][1]))
    out = torch.zeros(len(seqs), dtype=torch.float64)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(seqs[i][1]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        comp = torch.zeros((len(rows), width), dtype=torch.bool)
        attn = torch.zeros((len(rows), width), dtype=torch.long)
        for k, i in enumerate(rows):
            n_prompt, f = seqs[i]
            input_ids[k, : len(f)] = torch.tensor(f)
            attn[k, : len(f)] = 1
            comp[k, n_prompt : len(f)] = True
        first = max(1, min(seqs[i][0] for i in rows)) if keeps else 1  # the first position a logit is needed for
        if len(rows) * (width - first + 1) < FLOOR:  # too few rows to project apart: as before, every position
            first = 1
        out[rows] = torch.cat([_summed(model, input_ids[a:b].to(device), attn[a:b].to(device), comp[a:b].to(device),
                                       first) for a, b in _slices(len(rows), width, width - first + 1, cpu)])
    return out


def _slices(n: int, width: int, kept: int, cpu: bool) -> list[tuple[int, int]]:
    """Row ranges of a padded batch of ``n`` rows: about ``CPU_TOKENS`` tokens each on the CPU, and never so few
    rows that a matrix product (rows x ``width`` positions, or x ``kept`` for the logits) has fewer than ``FLOOR``."""
    need = -(-FLOOR // kept)  # kept <= width: the logits' product is the smaller
    per = max(CPU_TOKENS // width, need) if cpu else n
    starts = list(range(0, n, per))
    if len(starts) > 1 and n - starts[-1] < need:  # a short last slice joins the one before
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def _summed(model, input_ids: torch.Tensor, attn: torch.Tensor, comp: torch.Tensor, first: int = 1) -> torch.Tensor:
    """Each row's summed log-prob of its ``comp`` tokens, from logits at positions ``first - 1`` on (the ones
    before enter the sum as the zeros they were multiplied to)."""
    kw = {"logits_to_keep": input_ids.shape[1] - first + 1} if first > 1 else {}
    logits = model(input_ids=input_ids, attention_mask=attn, **kw).logits[:, :-1].float()
    logp = logits.new_zeros(input_ids.shape[0], input_ids.shape[1] - 1)
    logp[:, first - 1 :] = torch.log_softmax(logits, -1).gather(-1, input_ids[:, first:, None]).squeeze(-1)
    return (logp * comp[:, 1:]).sum(-1).double().cpu()


def _keeps_logits(model) -> bool:
    return "logits_to_keep" in inspect.signature(causal_lm(model).forward).parameters


@lru_cache(maxsize=32)
def _encoded(tokenizer, prompts: tuple, responses: tuple) -> list[tuple[int, list[int]]]:
    """(prompt length, prompt + response + EOS ids) of each pair: the same fixed pairs are scored at every checkpoint
    (held-out pairs, the margin probe), so their tokenization is done once."""
    eos = tokenizer.eos_token
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    full = tokenizer([p + r + eos for p, r in zip(prompts, responses)], add_special_tokens=False)["input_ids"]
    return [(len(p), f) for p, f in zip(p_ids, full)]
