"""Sampling responses from a causal LM and scoring their log-probabilities, batched wide (cheap on one thread).

``sample`` also reads, during generation, the model's own log-prob of each sampled continuation (the policy side
of a Monte-Carlo KL estimate, with no second forward pass), and keeps the sampled token ids, so the reference's side
(``token_logps``) scores exactly the tokens that were sampled rather than a re-tokenization of their text.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from bench.core import progress
from bench.models.kv_cache import growing_cache


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


def _scored(model, seqs: list[tuple[int, list[int]]], pad_id: int, batch_size: int) -> torch.Tensor:
    """Summed log-prob of the tokens after each sequence's first ``n_prompt``, in the given order. Sequences are
    batched in order of length, so a batch pads to little more than its own longest (the values do not change)."""
    model.eval()
    device = next(model.parameters()).device
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
        out[rows] = _summed(model, input_ids.to(device), attn.to(device), comp.to(device))
    return out


def _summed(model, input_ids: torch.Tensor, attn: torch.Tensor, comp: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=input_ids, attention_mask=attn).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (logp * comp[:, 1:]).sum(-1).double().cpu()


@lru_cache(maxsize=32)
def _encoded(tokenizer, prompts: tuple, responses: tuple) -> list[tuple[int, list[int]]]:
    """(prompt length, prompt + response + EOS ids) of each pair: the same fixed pairs are scored at every checkpoint
    (held-out pairs, the margin probe), so their tokenization is done once."""
    eos = tokenizer.eos_token
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    full = tokenizer([p + r + eos for p, r in zip(prompts, responses)], add_special_tokens=False)["input_ids"]
    return [(len(p), f) for p, f in zip(p_ids, full)]
