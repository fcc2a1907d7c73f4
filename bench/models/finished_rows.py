"""Decoding steps that skip the rows of a batch whose sample has already ended.

HF's ``generate`` runs every row of a batch through the model at every step until the last row ends, and then
replaces the finished rows' tokens with padding: on the default world's evaluation prompts half of the decoding
compute goes to rows that are already done (a batch runs to its longest sample, about twice the mean). ``skipping``
wraps the model's ``forward`` for one ``generate`` call: from time to time it drops the finished rows from the key/
value cache and runs each step on the rows still sampling, handing HF logits for the whole batch (the finished rows'
are zeros, a valid distribution whose draw HF discards). HF's loop, logits processors and sampling are untouched,
and ``torch.multinomial`` draws the same random numbers for a batch of the same shape, so every unfinished row sees
the same logits and gets the same token as before.

The same logits, bit for bit, needs the model's per-row arithmetic not to depend on how many rows it runs with. On
this machine's CPU it does not for 16 rows or more (matrix products of fewer rows take another kernel), so a step
never runs fewer than ``FLOOR`` rows (some finished ones make up the number). It is used where the in-place cache
is (``bench.models.kv_cache``: the CPU), and checked against HF's plain loop in ``tests/test_sampling.py``.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from bench.models.kv_cache import GrowingLayer

FLOOR = 32  # fewest rows a decoding step runs with
SHRINK = 0.75  # drop finished rows once the unfinished ones are at most this share of the rows run
BATCHED = {"input_ids", "attention_mask", "position_ids"}  # the step inputs with a row per sample
SHARED = {"past_key_values", "cache_position", "use_cache", "return_dict", "logits_to_keep"}


class _Skipping:
    """The wrapped ``forward``: the first call (the prompt) runs as it is; each decoding step after it on ``rows``."""

    def __init__(self, forward, cache, eos_ids: torch.Tensor):
        functools.update_wrapper(self, forward)  # forward's signature: HF passes only what it names (logits_to_keep)
        self.forward, self.cache, self.eos = forward, cache, eos_ids
        self.rows: torch.Tensor | None = None  # the batch rows the cache holds, in order
        self.done: torch.Tensor | None = None
        self.on: bool | None = None  # whether rows are dropped: decided at the first step, on what the step gets

    def __call__(self, **kw):
        ids = kw.get("input_ids")
        if self.done is None:  # the prompt: every row
            if ids is None:
                self.on = False
            else:
                self.done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
                self.rows = torch.arange(ids.shape[0], device=ids.device)
            return self.forward(**kw)
        if self.on is None:  # the first decoding step: is it one new token a row, with nothing we do not slice?
            n = len(self.done)
            self.on = (n > FLOOR and set(kw) <= BATCHED | SHARED and kw.get("past_key_values") is self.cache
                       and all(kw[k].shape[0] == n and kw[k].shape[-1] == 1 for k in ("input_ids", "position_ids")
                               if kw.get(k) is not None))
        if not self.on:
            return self.forward(**kw)
        if ids is None or ids.shape != (len(self.done), 1):  # not a decoding step: HF's sampling never does this
            raise RuntimeError(f"finished_rows: a step of input_ids {None if ids is None else tuple(ids.shape)} "
                               f"after rows were dropped; sample without bench.models.finished_rows.skipping")
        self.done |= torch.isin(ids[:, -1], self.eos)  # the token just sampled: HF's end-of-sequence test
        self._drop_finished()
        if len(self.rows) == len(self.done):
            return self.forward(**kw)
        out = self.forward(**{k: v[self.rows] if k in BATCHED and v is not None else v for k, v in kw.items()})
        logits = out.logits.new_zeros((len(self.done), *out.logits.shape[1:]))
        logits[self.rows] = out.logits
        out.logits = logits
        return out

    def _drop_finished(self) -> None:
        running = ~self.done[self.rows]
        n = int(running.sum())
        if len(self.rows) <= FLOOR or n > SHRINK * len(self.rows):
            return
        keep = running.clone()
        if n < FLOOR:  # make up the number with finished rows, the first ones
            keep[(~running).nonzero().squeeze(1)[: FLOOR - n]] = True
        where = keep.nonzero().squeeze(1)
        self.cache.batch_select_indices(where)
        self.rows = self.rows[where]


@contextmanager
def skipping(lm, cache, eos_token_id):
    """Within it, ``lm``'s ``generate`` (sampling or greedy, with ``cache`` as its ``past_key_values`` and
    ``eos_token_id`` its end of sequence) runs each decoding step on the unfinished rows only (module docstring).
    Nothing changes where there is no cache to drop rows from, no end-of-sequence token or a cache layer with state
    besides keys and values (linear attention's), or a prompt taken in chunks (``prefill_chunk_size``: a chunk is no
    sampled token; a ``generate`` whose first step after the prompt is not one token a row runs whole, too)."""
    droppable = (GrowingLayer, DynamicLayer, DynamicSlidingWindowLayer)  # keys and values only: nothing else per row
    if (cache is None or eos_token_id is None or getattr(lm.generation_config, "prefill_chunk_size", None)
            or any(type(layer) not in droppable for layer in cache.layers)):
        yield
        return
    eos = torch.as_tensor(eos_token_id, device=next(lm.parameters()).device).reshape(-1)
    own = vars(lm).get("forward")  # a forward set on the instance (TRL sets some), put back after
    lm.forward = _Skipping(lm.forward, cache, eos)
    try:
        yield
    finally:
        if own is None:
            del lm.forward
        else:
            lm.forward = own
