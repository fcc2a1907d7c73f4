"""Sampling's key/value cache (bench/models/kv_cache.py): written in place, the same samples and log-probs as HF's
concatenating cache, bit for bit."""
from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

import tiny_models
from bench.models import kv_cache, sampling


def _prompts():
    # prompts of different lengths: the batch is left-padded, and rows end (EOS) at different steps
    return [p for p, _, _ in tiny_models._build()[3]][:6] + ["the", "a b c d e f g h i j k l m n o p"]


@pytest.mark.parametrize("batch_size", [8, 3])
def test_growing_cache_samples_exactly_as_hf_dynamic_cache(monkeypatch, batch_size):
    model, tok = tiny_models.model(), tiny_models.tokenizer()
    kw = dict(max_new_tokens=24, seed=7, batch_size=batch_size)
    ours = sampling.sample(model, tok, _prompts(), **kw)
    monkeypatch.setattr(sampling, "growing_cache", lambda m, room: None)  # HF's own choice: its DynamicCache
    plain = sampling.sample(model, tok, _prompts(), **kw)
    assert ours.texts == plain.texts and ours.completion_ids == plain.completion_ids
    assert ours.prompt_ids == plain.prompt_ids
    assert torch.equal(ours.logps, plain.logps)  # not close: equal
    assert any(len(c) > 3 for c in ours.completion_ids)  # something was generated past the prompt


def test_growing_cache_replaces_full_attention_layers_only(monkeypatch):
    model = tiny_models.model()
    cache = kv_cache.growing_cache(model, room=5)
    assert len(cache.layers) == model.config.num_hidden_layers
    assert all(type(layer) is kv_cache.GrowingLayer and layer.room == 5 for layer in cache.layers)

    class Sliding(DynamicLayer):  # another kind of layer (a sliding window's) keeps HF's own
        pass

    def mixed(config):
        c = DynamicCache(config=config)
        c.layers[0] = Sliding()
        return c

    monkeypatch.setattr(kv_cache, "DynamicCache", mixed)
    kinds = [type(layer) for layer in kv_cache.growing_cache(model, room=5).layers]
    assert kinds == [Sliding] + [kv_cache.GrowingLayer] * (len(kinds) - 1)


def _kv(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, length, 4, generator=g), torch.randn(batch, 2, length, 4, generator=g)


@pytest.mark.parametrize("room", [0, 2, 50])
def test_growing_layer_holds_what_a_dynamic_layer_holds(room):
    """Prefill, steps past its room, a crop and a beam reordering: the same keys and values as HF's layer."""
    ours, theirs = kv_cache.GrowingLayer(room), DynamicLayer()
    steps = [_kv(3, 5, 0)] + [_kv(3, 1, s) for s in range(1, 6)]
    for k, v in steps:
        a, b = ours.update(k, v), theirs.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    ours.crop(-2), theirs.crop(-2)
    assert ours.get_seq_length() == theirs.get_seq_length() == 8
    idx = torch.tensor([2, 0])
    ours.batch_select_indices(idx), theirs.batch_select_indices(idx)
    for s in range(6, 9):
        k, v = _kv(2, 1, s)
        a, b = ours.update(k, v), theirs.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert ours.get_seq_length() == theirs.get_seq_length() == 11
    ours.reset()
    a, b = ours.update(*_kv(2, 4, 9)), DynamicLayer().update(*_kv(2, 4, 9))
    assert torch.equal(a[0], b[0]) and ours.get_seq_length() == 4


def test_a_model_that_asks_for_no_cache_or_another_or_is_off_the_cpu_gets_hfs_own_and_lora_gets_ours():
    from peft import LoraConfig, get_peft_model

    from bench.models.adapters import AdapterOff

    model, tok = tiny_models.model(), tiny_models.tokenizer()
    model.generation_config.cache_implementation = "static"  # HF refuses a cache object beside it
    assert kv_cache.growing_cache(model, room=4) is None
    assert sampling.sample(model, tok, _prompts()[:2], max_new_tokens=4, seed=0).texts  # HF's static cache
    model.generation_config.cache_implementation = None
    model.generation_config.use_cache = False  # HF recomputes every step; a cache handed in would get it all again
    assert kv_cache.growing_cache(model, room=4) is None
    model.generation_config.use_cache = True
    assert kv_cache.growing_cache(tiny_models.model().to("meta"), room=4) is None  # off the CPU: HF's own
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    for m in (peft, AdapterOff(peft)):
        assert all(type(layer) is kv_cache.GrowingLayer for layer in kv_cache.growing_cache(m, room=4).layers)


def test_a_model_without_hfs_key_value_cache_samples_as_before():
    from transformers import MambaConfig, MambaForCausalLM

    tok = tiny_models.tokenizer()
    torch.manual_seed(0)
    model = MambaForCausalLM(MambaConfig(vocab_size=len(tok), hidden_size=16, state_size=4, num_hidden_layers=2,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    assert kv_cache.growing_cache(model, room=4) is None
    assert len(sampling.sample(model, tok, _prompts()[:2], max_new_tokens=4, seed=0).texts) == 2
