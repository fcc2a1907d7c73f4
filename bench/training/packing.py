"""The policy forward of a training step without computing padding: sequences packed into rows, and the LM head on
completion tokens only.

TRL's collator pads the 2B sequences of a batch (chosen and rejected of B pairs) to the longest one: on the
embedded world about a third of the tokens of a step are padding. Here the batch's sequences (the same pairs the
sampler drew, so which pairs meet in a step is unchanged) are laid end to end, longest first, into rows of at most
``factor`` x the longest sequence (first fit). Each sequence keeps its own positions (``position_ids`` restart at
0), and transformers' packed-sequence masking (``masking_utils.find_packed_sequence_indices``: no attention across
a restart) keeps the sequences apart, so every token sees exactly the tokens it sees in the padded batch. The LM
head then runs on the hidden states of completion positions only (a plain fp32 ``log_softmax`` while the batch's
completion logits stay under ``PLAIN_HEAD_MAX_LOGITS`` elements; past that, TRL's own tiled head, the same one its
padded path uses, which never holds the (tokens, vocabulary) logits), and each sequence's log-probs are summed.
The tiled head is the memory-safe choice for a large batch and vocabulary (a GPU batch of thousands of tokens over
a 128k vocabulary), and a slow one on a CPU batch: on SmolLM2-135M, batch 4 (49k vocabulary, about 240 completion
tokens), a step took 1.49x bare TRL's through it and 1.04x through the plain head (``bench/perf/steps.py``).

Same math as TRL's padded, tiled path: the per-sequence log-probs agree to float round-off
(``tests/test_training_packing.py``: 1e-4 absolute on summed log-probs, the loss to 1e-5). A model this cannot serve
(an unknown architecture whose attention ignores ``position_ids``, a logit scale or soft-cap) is caught by
``matches_padded`` on the first batch, and the trainer then keeps TRL's path. A peft model (LoRA) is served through
its base model, whose layers carry the adapters (``unwrap``): adapter on, the adapted policy; under
``disable_adapter``, the base model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FACTOR = 1.5  # row length as a multiple of the longest sequence: measured best of 1, 1.5, 2, 3 (bench/perf/steps.py)
PLAIN_HEAD_MAX_LOGITS = 2**25  # completion tokens x vocabulary of a batch (128 MiB of fp32 logits); above it, tiled


@dataclass
class Packed:
    input_ids: torch.Tensor  # (rows, width)
    position_ids: torch.Tensor  # (rows, width): each sequence from 0; the padding after the last one too
    labels: torch.Tensor  # (rows, width): the token a position predicts its successor into (-100: not scored)
    sequence: torch.Tensor  # (rows, width): the batch index of the sequence a position belongs to (-1: padding)
    n: int  # sequences in the batch


def rows_of(lengths: list[int], capacity: int) -> list[list[int]]:
    """First fit, longest first: lists of sequence indices whose lengths sum to at most ``capacity`` each."""
    rows, room = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r in range(len(rows)):
            if room[r] >= lengths[i]:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
         factor: float = FACTOR) -> Packed:
    """The padded batch (any padding side) as packed rows; a completion token is scored, as in TRL."""
    n = input_ids.shape[0]
    real = attention_mask.bool()
    lengths = real.sum(1).tolist()
    width = max(max(lengths), int(max(lengths) * factor))
    rows = rows_of(lengths, width)
    shape = (len(rows), width)
    ids = torch.zeros(shape, dtype=input_ids.dtype, device=input_ids.device)
    pos = torch.zeros(shape, dtype=torch.long, device=input_ids.device)
    labels = torch.full(shape, -100, dtype=torch.long, device=input_ids.device)
    seq = torch.full(shape, -1, dtype=torch.long, device=input_ids.device)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            tokens, scored = input_ids[i][real[i]], completion_mask[i][real[i]].bool()
            length = len(tokens)
            ids[r, at:at + length] = tokens
            pos[r, at:at + length] = torch.arange(length, device=input_ids.device)
            labels[r, at:at + length] = torch.where(scored, tokens, torch.full_like(tokens, -100))
            seq[r, at:at + length] = i
            at += length
        pos[r, at:] = torch.arange(width - at, device=input_ids.device)  # padding: a sequence of its own, unscored
    return Packed(ids, pos, labels, seq, n)


def sequence_logps(model, packed: Packed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed log-prob of each sequence's completion, its completion length, the mean entropy of the next-token
    distribution over completion tokens, detached) through ``model``'s backbone and LM head."""
    model = unwrap(model)
    labels, seq = packed.labels[:, 1:], packed.sequence[:, 1:]
    scored = labels != -100
    if int(scored.sum()) * model.get_output_embeddings().weight.shape[0] > PLAIN_HEAD_MAX_LOGITS:  # tiled: no (N, V)
        out = model(input_ids=packed.input_ids, position_ids=packed.position_ids, labels=packed.labels,
                    fused_lm_head=True, use_cache=False)
        token, entropy_all = out.log_probs[scored].float(), out.entropy
        with torch.no_grad():
            entropy = entropy_all[scored].float().mean() if len(token) else torch.zeros((), device=token.device)
    else:
        backbone = getattr(model, model.base_model_prefix)
        hidden = backbone(input_ids=packed.input_ids, position_ids=packed.position_ids,
                          use_cache=False).last_hidden_state
        logp = torch.log_softmax(model.get_output_embeddings()(hidden[:, :-1][scored]).float(), dim=-1)
        token = logp.gather(1, labels[scored][:, None]).squeeze(1)
        with torch.no_grad():
            entropy = -(logp.exp() * logp).sum(-1).mean() if len(token) else torch.zeros((), device=token.device)
    owner = seq[scored]
    total = torch.zeros(packed.n, dtype=token.dtype, device=token.device).index_add(0, owner, token)
    length = torch.zeros(packed.n, dtype=token.dtype, device=token.device).index_add(0, owner, torch.ones_like(token))
    return total, length, entropy


def unwrap(model):
    """The transformers model under a peft wrapper (``PeftModel.get_base_model``): its adapters are injected into
    the backbone's layers, so the backbone called directly runs them (or not, under ``disable_adapter``)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@torch.no_grad()
def matches_padded(model, inputs: dict, atol: float = 1e-4) -> tuple[bool, float]:
    """Whether the packed path gives the padded path's per-sequence log-probs on ``inputs`` (and the gap)."""
    was_training = model.training
    model.eval()
    try:
        mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(mask == 0, -100)
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                    fused_lm_head=True, use_cache=False)
        padded = out.log_probs[:, -(mask.shape[1] - 1):].sum(1).float()
        mine, _, _ = sequence_logps(model, pack(inputs["input_ids"], inputs["attention_mask"], mask))
        gap = float((padded - mine).abs().max())
    except Exception:  # noqa: BLE001 - any model this path cannot serve keeps TRL's
        return False, float("inf")
    finally:
        model.train(was_training)
    return gap <= atol, gap
