"""Sampling responses from a causal LM and scoring their log-probabilities, batched wide (cheap on one thread)."""
from __future__ import annotations

import torch

from bench.core import progress


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    seed: int,
    batch_size: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    desc: str = "generating",
) -> list[str]:
    """One sampled completion per prompt (prompts may repeat for several samples). Deterministic given seed."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    bar = progress.current()
    bar.phase(desc, total=len(prompts))
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        # a per-batch seed drawn from our generator: sampling is reproducible whatever else used the global RNG
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        ids = model.generate(
            **enc,
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=top_p,
            top_k=0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = ids[:, enc["input_ids"].shape[1] :]
        out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
        bar.update(len(chunk))
    return out


@torch.no_grad()
def sequence_logps(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 128) -> torch.Tensor:
    """Summed log-prob of each response (plus its EOS) given its prompt, tokenized as TRL tokenizes pairs."""
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token
    out = []
    for start in range(0, len(prompts), batch_size):
        ps, rs = prompts[start : start + batch_size], responses[start : start + batch_size]
        p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in ps]
        full = [tokenizer(p + r + eos, add_special_tokens=False)["input_ids"] for p, r in zip(ps, rs)]
        width = max(len(f) for f in full)
        input_ids = torch.full((len(full), width), tokenizer.pad_token_id, dtype=torch.long)
        comp = torch.zeros((len(full), width), dtype=torch.bool)
        attn = torch.zeros((len(full), width), dtype=torch.long)
        for i, (p, f) in enumerate(zip(p_ids, full)):
            input_ids[i, : len(f)] = torch.tensor(f)
            attn[i, : len(f)] = 1
            comp[i, len(p) : len(f)] = True
        input_ids, attn, comp = input_ids.to(device), attn.to(device), comp.to(device)
        logits = model(input_ids=input_ids, attention_mask=attn).logits[:, :-1].float()
        logp = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        out.append((logp * comp[:, 1:]).sum(-1).cpu())
    return torch.cat(out)
