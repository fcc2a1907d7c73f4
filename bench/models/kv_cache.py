"""A key/value cache for sampling that writes each step in place instead of concatenating.

HF's ``DynamicLayer`` grows its keys and values by ``torch.cat`` at every decoding step: each step copies the whole
cache so far (quadratic in the length; a fifth of the sampling time in a profile of the default world's
checkpoint). A ``GrowingLayer`` keeps them in a buffer with room for the prompt and the new tokens and hands
attention a view of its filled part: the same keys and values, so the same attention, logits and samples, bit for
bit (tested against HF's own cache in ``tests/test_sampling.py``). A static cache would also avoid the copies, but
attends over its whole length under a mask, which moves log-probs at round-off.

It is used on the CPU, where that is checked; on a GPU sampling keeps HF's cache (attention kernels there may be
chosen by the strides of what they get). Only full-attention layers are replaced; a model with sliding-window or
other layers keeps HF's own for those, and a model that asks for another kind of cache (or has none of HF's) gets
what HF gives it.
"""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from bench.models.adapters import AdapterOff, is_peft


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of a buffer with ``room`` spare positions."""

    def __init__(self, room: int = 0):
        super().__init__()
        self.room = int(room)
        self._buf: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.get_seq_length()
        need = n + key_states.shape[-2]
        # anything that replaced our view (crop keeps it; beam reordering does not) is taken as the cache so far
        ours = self._buf is not None and n <= self._buf[0].shape[-2] and self.keys.data_ptr() == self._buf[0].data_ptr()
        if not ours or need > self._buf[0].shape[-2]:
            cap = need + max(self.room, need if ours else 0)
            buf = tuple(s.new_empty((*s.shape[:-2], cap, s.shape[-1])) for s in (key_states, value_states))
            if n:
                buf[0][..., :n, :] = self.keys
                buf[1][..., :n, :] = self.values
            self._buf = buf
        self._buf[0][..., n:need, :] = key_states
        self._buf[1][..., n:need, :] = value_states
        self.keys, self.values = self._buf[0][..., :need, :], self._buf[1][..., :need, :]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows ``indices`` (``bench.models.finished_rows`` drops finished samples), room and all."""
        if self._buf is None or self.keys.data_ptr() != self._buf[0].data_ptr():
            return super().batch_select_indices(indices)
        n = self.get_seq_length()
        self._buf = tuple(b.index_select(0, indices) for b in self._buf)
        self.keys, self.values = self._buf[0][..., :n, :], self._buf[1][..., :n, :]

    def reset(self) -> None:
        self._buf = None
        super().reset()


def growing_cache(model, room: int) -> DynamicCache | None:
    """A ``DynamicCache`` for ``model`` whose full-attention layers are ``GrowingLayer``s with ``room`` spare
    positions past the prompt (``max_new_tokens``); None, and HF does as it would, for a model whose generation runs
    without a cache (``generation_config.use_cache`` false: a cache handed in would be fed the whole sequence at
    every step) or asks for another kind (``cache_implementation``), an encoder-decoder, and a model with no
    full-attention layer to grow (a state-space model such as Mamba: its cache is not ``past_key_values``)."""
    lm = causal_lm(model)
    gen = getattr(lm, "generation_config", None)
    if gen is None or gen.use_cache is False or gen.cache_implementation is not None:
        return None
    if next(lm.parameters()).device.type != "cpu":  # bit for bit is checked on the CPU only: elsewhere attention
        return None  # kernels may be chosen by the views' strides, so HF's own cache there
    supports = getattr(lm, "_supports_default_dynamic_cache", None)
    if getattr(lm.config, "is_encoder_decoder", False) or supports is None or not supports():
        return None
    cache = DynamicCache(config=lm.config)
    cache.layers = [GrowingLayer(room) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache if any(type(layer) is GrowingLayer for layer in cache.layers) else None


def causal_lm(model):
    """The transformers model under a LoRA policy (``PeftModel``) or its adapter-disabled view (``AdapterOff``)."""
    if isinstance(model, AdapterOff):
        model = model.policy
    return model.get_base_model() if is_peft(model) else model
