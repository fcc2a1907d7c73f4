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
tokens), a step took 1.49x bare TRL's through it (``bench/perf/steps.py``).

Same math as TRL's padded, tiled path: the per-sequence log-probs agree to float round-off
(``tests/test_training_packing.py``: 1e-4 absolute on summed log-probs, the loss to 1e-5; on a deep model the plain
head and TRL's tiled kernel alone differ by more, so the first-batch check also allows 1e-5 relative,
``matches_padded``). A model this cannot serve
(an unknown architecture whose attention ignores ``position_ids``, a logit scale or soft-cap) is caught by
``matches_padded`` on the first batch, and the trainer then keeps TRL's path. A peft model (LoRA) is served through
its base model, whose layers carry the adapters (``unwrap``): adapter on, the adapted policy; under
``disable_adapter``, the base model.

**Each pair's prompt once** (``share=True``, ``train.share_prompt``). A batch's chosen and rejected sequences of a
pair start with the same prompt tokens, which the padded path computes twice. A shared segment lays them out as
``prompt, chosen completion, (the prompt's last token again), rejected completion``: the rejected completion's
positions continue from the prompt (``position_ids`` restart at the prompt's length), and a custom 4D attention
mask lets it see the prompt and itself but not the chosen completion, so every scored token sees exactly the
tokens it sees in the padded batch. The prompt's last token is computed a second time (one token per pair): its
copy attends to the same keys as the original, and its hidden state scores the rejected completion's first token,
so each scored token keeps the usual one-position shift and TRL's tiled head serves the layout unchanged. A pair
whose two prompts differ (or a batch that is not pairs) keeps two segments. Rows of shared segments are sized to
compute the fewest positions (``SHARED_FACTORS``). Attention implementations that take no 4D mask (flash
attention) do not share (``can_share``). On SmolLM2-135M's world the prompt is 70% of a sequence (a chat template
with a system prompt): a step computes about half the positions of the padded batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FACTOR = 1.5  # row length as a multiple of the longest sequence: measured best of 1, 1.5, 2, 3 (bench/perf/steps.py)
SHARED_FACTORS = (1.0, 1.5, 2.0, 3.0)  # shared segments: the one with the least work (`_layout`; ties: the narrower)
# which key part a query part may see within its segment (causally): 0 prompt, 4 the prompt's last token, 1 chosen,
# 2 the copy of the prompt's last token, 3 rejected (an unshared sequence is all 0)
_SEES = torch.tensor([[1, 0, 0, 0, 0],   # prompt: the prompt
                      [1, 1, 0, 0, 1],   # chosen: the prompt, its last token, itself
                      [1, 0, 1, 0, 0],   # the copy: the prompt before its last token, itself
                      [1, 0, 1, 1, 0],   # rejected: the prompt before its last token, the copy, itself
                      [1, 0, 0, 0, 1]], dtype=torch.bool)  # the prompt's last token: the prompt, itself
PLAIN_HEAD_MAX_LOGITS = 2**25  # completion tokens x vocabulary of a batch (128 MiB of fp32 logits); above it, tiled


@dataclass
class Packed:
    input_ids: torch.Tensor  # (rows, width)
    position_ids: torch.Tensor  # (rows, width): each sequence from 0; the padding after the last one too
    labels: torch.Tensor  # (rows, width): the token a position predicts its successor into (-100: not scored)
    sequence: torch.Tensor  # (rows, width): the batch index of the sequence a position belongs to (-1: padding)
    n: int  # sequences in the batch
    attention: torch.Tensor | None = None  # (rows, 1, width, width), True: may attend; None: from position_ids
    shared: int = 0  # pairs whose prompt was computed once

    def attention_for(self, model) -> torch.Tensor | None:
        """The custom mask as ``model``'s attention implementation takes it (sdpa: boolean; eager: additive)."""
        if self.attention is None or _attn_impl(model) == "sdpa":
            return self.attention
        dtype = next(model.parameters()).dtype
        return torch.zeros(self.attention.shape, dtype=dtype, device=self.attention.device).masked_fill(
            ~self.attention, torch.finfo(dtype).min)


def _attn_impl(model) -> str | None:
    return getattr(unwrap(model).config, "_attn_implementation", None)


def can_share(model) -> bool:
    """Whether ``model``'s attention takes the custom 4D mask prompt sharing needs, and needs no more than it: a
    sliding-window model (Mistral, Gemma 2/3, Phi-3) would lose its window under a custom mask, so it does not share
    (its unshared packed path keeps the window: transformers builds that mask itself)."""
    config = unwrap(model).config
    windowed = getattr(config, "sliding_window", None) or "sliding_attention" in (getattr(config, "layer_types", None)
                                                                                  or ())
    return _attn_impl(model) in ("sdpa", "eager") and not windowed


def qk_cost(model) -> float:
    """The cost of one query-key pair of attention in units of one position through the layers' linear maps, about
    4 h / (24 h^2) = 1 / (6 h) for hidden size h: what a wider row of shared segments costs (``pack``)."""
    return 1.0 / (6 * int(getattr(unwrap(model).config, "hidden_size", 0) or 1))


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


def _segments(input_ids, attention_mask, completion_mask, share: bool) -> list[dict]:
    """The batch's sequences as segments to pack: one per sequence, or one per pair sharing its prompt."""
    real = attention_mask.bool()
    seqs = []
    for i in range(input_ids.shape[0]):
        tokens, scored = input_ids[i][real[i]], completion_mask[i][real[i]].bool()
        first = int(scored.int().argmax()) if bool(scored.any()) else len(tokens)
        plain = first > 0 and bool(scored[first:].all())  # prompt, then only completion tokens
        seqs.append((tokens, scored, first if plain else None))
    n, half = len(seqs), len(seqs) // 2
    segments, done = [], set()
    if share and n % 2 == 0:
        for i in range(half):
            (tc, _, pc), (tr, _, pr) = seqs[i], seqs[half + i]
            if pc is None or pc != pr or not torch.equal(tc[:pc], tr[:pr]):
                continue
            c, r = len(tc) - pc, len(tr) - pr
            tokens = torch.cat([tc, tr[pr - 1:]])  # prompt, chosen completion, the prompt's last token, rejected
            ar = torch.arange
            segments.append({
                "pair": i,  # a shared segment: pair i's prompt, chosen and rejected
                "tokens": tokens,
                "positions": torch.cat([ar(pc + c), ar(pr - 1, pr + r)]),
                "parts": torch.tensor([0] * (pc - 1) + [4] + [1] * c + [2] + [3] * r),
                "labels": torch.cat([torch.full((pc,), -100), tc[pc:], torch.tensor([-100]), tr[pr:]]),
                "owner": torch.tensor([i] * (pc + c) + [half + i] * (r + 1))})
            done.update((i, half + i))
    for i, (tokens, scored, _) in enumerate(seqs):
        if i not in done:
            segments.append({"tokens": tokens, "positions": torch.arange(len(tokens)),
                             "parts": torch.zeros(len(tokens), dtype=torch.long),
                             "labels": torch.where(scored, tokens, torch.full_like(tokens, -100)),
                             "owner": torch.full((len(tokens),), i)})
    return segments


def _layout(lengths: list[int], factor: float | None, shared: bool, qk: float) -> tuple[int, list[list[int]]]:
    """(row width, rows): first fit at ``factor`` x the longest segment; with shared segments and no factor given,
    the factor of ``SHARED_FACTORS`` with the least work: positions, plus query-key pairs (rows x width^2, every
    one computed under a custom mask) at ``qk`` a pair."""
    longest = max(lengths)
    options = [factor] if factor is not None else (list(SHARED_FACTORS) if shared else [FACTOR])
    best = None
    for f in options:
        width = max(longest, int(longest * f))
        rows = rows_of(lengths, width)
        cost = len(rows) * width * (1 + qk * width)
        if best is None or cost < best[0]:
            best = (cost, width, rows)
    return best[1], best[2]


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
         factor: float | None = None, share: bool = False, qk: float = 0.0) -> Packed:
    """The padded batch (any padding side) as packed rows; a completion token is scored, as in TRL. ``share``: each
    pair's prompt once (the batch is [chosen..., rejected...], as TRL collates it); ``qk``: the model's
    ``qk_cost``, which weighs wider rows of shared segments."""
    n, device = input_ids.shape[0], input_ids.device
    segments = _segments(input_ids.cpu(), attention_mask.cpu(), completion_mask.cpu(), share)
    n_shared = sum("pair" in s for s in segments)
    width, rows = _layout([len(s["tokens"]) for s in segments], factor, n_shared > 0, qk)
    shape = (len(rows), width)
    ids = torch.zeros(shape, dtype=input_ids.dtype)
    pos = torch.zeros(shape, dtype=torch.long)
    labels = torch.full(shape, -100, dtype=torch.long)
    seq = torch.full(shape, -1, dtype=torch.long)
    seg_of = torch.full(shape, -1, dtype=torch.long)  # the segment a position belongs to (-1: padding)
    part = torch.zeros(shape, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for k in members:
            s = segments[k]
            length = len(s["tokens"])
            ids[r, at:at + length] = s["tokens"]
            pos[r, at:at + length] = s["positions"]
            labels[r, at:at + length] = s["labels"]
            seq[r, at:at + length] = s["owner"]
            seg_of[r, at:at + length] = k
            part[r, at:at + length] = s["parts"]
            at += length
        pos[r, at:] = torch.arange(width - at)  # padding: a sequence of its own, unscored
    attention = None
    if n_shared:  # same segment (padding with padding), causal, and the parts' visibility; built where it is used
        seg_of, part = seg_of.to(device), part.to(device)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        sees = _SEES.to(device)[part]  # (rows, width, 5): which parts each query sees
        attention = (causal & (seg_of[:, :, None] == seg_of[:, None, :])
                     & sees.gather(2, part[:, None, :].expand(-1, width, -1)))[:, None]
    return Packed(ids.to(device), pos.to(device), labels.to(device), seq.to(device), n, attention, n_shared)


def sequence_logps(model, packed: Packed) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(summed log-prob of each sequence's completion, its completion length, the mean entropy of the next-token
    distribution over completion tokens, detached) through ``model``'s backbone and LM head."""
    model = unwrap(model)
    labels, seq = packed.labels[:, 1:], packed.sequence[:, 1:]
    scored = labels != -100
    if int(scored.sum()) * model.get_output_embeddings().weight.shape[0] > PLAIN_HEAD_MAX_LOGITS:  # tiled: no (N, V)
        out = model(input_ids=packed.input_ids, position_ids=packed.position_ids, labels=packed.labels,
                    attention_mask=packed.attention_for(model), fused_lm_head=True, use_cache=False)
        token, entropy_all = out.log_probs[scored].float(), out.entropy
        with torch.no_grad():
            entropy = entropy_all[scored].float().mean() if len(token) else torch.zeros((), device=token.device)
    else:
        backbone = getattr(model, model.base_model_prefix)
        hidden = backbone(input_ids=packed.input_ids, position_ids=packed.position_ids,
                          attention_mask=packed.attention_for(model), use_cache=False).last_hidden_state
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


CHECK_PAIRS = 4  # pairs of the first batch the check scores both ways


@torch.no_grad()
def matches_padded(model, inputs: dict, share: bool = False, atol: float = 1e-4,
                   rtol: float = 1e-5) -> tuple[bool, float]:
    """Whether the packed path (``share``: prompts shared) gives TRL's padded path's per-sequence log-probs on
    ``CHECK_PAIRS`` pairs of ``inputs`` (with ``share``, pairs whose prompts it shares: a batch with none cannot show
    the shared layout works, and fails), within ``atol + rtol x |log-prob|`` (and the largest gap). The relative
    part is float round-off of a deep model's sums: on SmolLM2-135M (30 layers, a 49k vocabulary) the plain head
    and TRL's tiled kernel differ by up to 1.6e-4 on sums of up to 51 nats, whether the batch is packed or padded
    (``bench/perf/steps.py``); a head that scales its logits differs by far more."""
    was_training = model.training
    model.eval()
    try:
        ids, attn, mask = (inputs[key] for key in ("input_ids", "attention_mask", "completion_mask"))
        n, half = ids.shape[0], ids.shape[0] // 2
        if share:
            pairs = [s["pair"] for s in _segments(ids.cpu(), attn.cpu(), mask.cpu(), True) if "pair" in s]
            if not pairs:
                return False, float("inf")
            pairs = pairs[:CHECK_PAIRS]
        else:
            pairs = list(range(min(CHECK_PAIRS, half))) if n % 2 == 0 else []
        keep = pairs + [half + i for i in pairs] if pairs else list(range(min(n, 2 * CHECK_PAIRS)))
        ids, attn, mask = ids[keep], attn[keep], mask[keep]
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=attn, labels=labels, fused_lm_head=True, use_cache=False)
        padded = out.log_probs[:, -(mask.shape[1] - 1):].sum(1).float()
        mine = sequence_logps(model, pack(ids, attn, mask, share=share, qk=qk_cost(model)))[0]
        gap = float((padded - mine).abs().max())
        ok = bool(torch.allclose(mine, padded, atol=atol, rtol=rtol))
    except Exception:  # noqa: BLE001 - any model this path cannot serve keeps TRL's
        return False, float("inf")
    finally:
        model.train(was_training)
    return ok, gap
