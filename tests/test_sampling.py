"""Sampling's key/value cache (bench/models/kv_cache.py), written in place, and its decoding steps on the unfinished
rows only (bench/models/finished_rows.py): the same samples and log-probs as HF's plain loop, bit for bit."""
from __future__ import annotations

import functools

import pytest
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

import tiny_models
from bench.models import finished_rows, kv_cache, sampling


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


def _world_shaped():
    """A random model of the default world's reference's shape (hidden 128, 4 layers), the tiny tokenizer: its
    matrix products of fewer than 16 rows round differently on this machine's CPU (why ``FLOOR`` exists)."""
    import copy

    from transformers import LlamaForCausalLM

    config = copy.deepcopy(tiny_models._build()[2])
    config.update(dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                       num_key_value_heads=4))
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("shape", ["tiny", "world"])
def test_finished_rows_leave_the_batch_and_every_sample_and_log_prob_stays_the_same(monkeypatch, shape):
    model, tok = tiny_models.model() if shape == "tiny" else _world_shaped(), tiny_models.tokenizer()
    prompts = _prompts() * 10  # 80 rows in one batch, ending at different steps
    rows_run = []
    forward = type(model).forward

    @functools.wraps(forward)
    def counted(self, *args, **kw):  # counts the rows each step runs, and makes EOS likely (the tiny model's is not)
        rows_run.append(kw["input_ids"].shape[0])
        out = forward(self, *args, **kw)
        out.logits[..., tok.eos_token_id] += 4.0
        return out

    monkeypatch.setattr(type(model), "forward", counted)
    kw = dict(max_new_tokens=24, seed=7, batch_size=80)
    ours = sampling.sample(model, tok, prompts, **kw)
    assert rows_run[0] == 80 and min(rows_run) < 80  # the prompt with every row; later steps without finished ones
    assert min(rows_run) >= finished_rows.FLOOR
    monkeypatch.setattr(sampling, "growing_cache", lambda m, room: None)  # HF's loop as it is: every row, every step
    plain = sampling.sample(model, tok, prompts, **kw)
    assert ours.texts == plain.texts and ours.completion_ids == plain.completion_ids
    assert torch.equal(ours.logps, plain.logps)  # not close: equal
    assert len({len(c) for c in ours.completion_ids}) > 5


def test_the_models_own_forward_is_put_back_after_sampling_and_after_a_failure():
    model, tok = tiny_models.model(), tiny_models.tokenizer()
    sampling.sample(model, tok, _prompts() * 5, max_new_tokens=4, seed=0)
    assert "forward" not in vars(model)  # the class's forward again
    calls = []

    def own(*args, **kw):  # a forward set on the instance (as TRL sets some) is the one left afterwards
        calls.append(1)
        raise RuntimeError("boom")

    model.forward = own
    with pytest.raises(RuntimeError, match="boom"):
        sampling.sample(model, tok, _prompts() * 5, max_new_tokens=4, seed=0)
    assert vars(model)["forward"] is own and calls
    with finished_rows.skipping(model, None, tok.eos_token_id):  # no cache of ours (off the CPU): nothing replaced
        assert vars(model)["forward"] is own


@pytest.mark.parametrize("shape", ["tiny", "world"])
def test_scoring_in_slices_from_the_responses_on_gives_the_whole_batches_log_probs_bit_for_bit(monkeypatch, shape):
    """Slices of a batch, and logits only from the first response token on: the plain way's values, equal."""
    model, tok = tiny_models.model() if shape == "tiny" else _world_shaped(), tiny_models.tokenizer()
    prompts = _prompts() * 6
    responses = [" ".join(["x y z"] * (i % 7)) + f" answer {i}" for i in range(len(prompts))]
    with monkeypatch.context() as plain:
        plain.setattr(sampling, "CPU_TOKENS", 10**9)  # each batch in one forward pass
        plain.setattr(sampling, "_keeps_logits", lambda m: False)  # logits at every position
        whole = sampling.sequence_logps(model, tok, prompts, responses, batch_size=16)
    passes = []
    forward = type(model).forward

    @functools.wraps(forward)
    def counted(self, *args, **kw):
        passes.append((kw["input_ids"].shape, kw.get("logits_to_keep")))
        return forward(self, *args, **kw)

    monkeypatch.setattr(type(model), "forward", counted)
    monkeypatch.setattr(sampling, "CPU_TOKENS", 60)  # a few rows a pass
    sliced = sampling.sequence_logps(model, tok, prompts, responses, batch_size=16)
    assert len(passes) > 3 * len(range(0, len(prompts), 16)) and min(s[0] for s, _ in passes) < 16
    assert all(1 < keep < s[1] for s, keep in passes)  # the prompts' positions (less the last) were not projected
    assert torch.equal(sliced, whole)  # not close: equal


def _plainly(monkeypatch, fn):
    """``fn()`` scored the plain way: each batch in one pass, logits at every position."""
    with monkeypatch.context() as plain:
        plain.setattr(sampling, "CPU_TOKENS", 10**9)
        plain.setattr(sampling, "_keeps_logits", lambda m: False)
        return fn()


def test_long_prompts_short_responses_and_empty_prompts_score_as_the_plain_way(monkeypatch):
    """Slices of one or two rows of long prompts with responses of one or two tokens (a logit product of few rows if
    sizes were not kept apart), and a sequence scored from its first token: equal to the plain way."""
    model, tok = _world_shaped(), tiny_models.tokenizer()
    prompts = [(_prompts()[0] + " ") * 14] * 18  # about 570 tokens: one row a slice of 1,024 tokens
    responses = ["x" if i % 2 else "" for i in range(len(prompts))]
    got = sampling.sequence_logps(model, tok, prompts, responses, batch_size=16)
    assert torch.equal(got, _plainly(monkeypatch, lambda: sampling.sequence_logps(model, tok, prompts, responses,
                                                                                  batch_size=16)))
    ids = tok("a b c", add_special_tokens=False)["input_ids"]
    args = ([[]] * 10 + [ids[:1]] * 10, [ids] * 10 + [ids[1:]] * 10, tok.pad_token_id)
    assert torch.equal(sampling.token_logps(model, *args), _plainly(monkeypatch, lambda: sampling.token_logps(model, *args)))


def test_a_prompt_taken_in_chunks_or_a_cache_with_more_than_keys_samples_as_hfs_loop(monkeypatch):
    import copy

    model, tok = _world_shaped(), copy.deepcopy(tiny_models.tokenizer())
    tok.pad_token = tok.eos_token  # as load_causal_lm sets it for a tokenizer without one: padding reads as an end
    forward = type(model).forward

    @functools.wraps(forward)
    def ends_often(self, *args, **kw):
        out = forward(self, *args, **kw)
        out.logits[..., tok.eos_token_id] += 4.0
        return out

    monkeypatch.setattr(type(model), "forward", ends_often)
    model.generation_config.prefill_chunk_size = 4  # the prompt in several forward calls
    kw = dict(max_new_tokens=16, seed=3, batch_size=80)
    ours = sampling.sample(model, tok, _prompts() * 10, **kw)
    with monkeypatch.context() as plain:
        plain.setattr(sampling, "growing_cache", lambda m, room: None)
        theirs = sampling.sample(model, tok, _prompts() * 10, **kw)
    assert ours.texts == theirs.texts and torch.equal(ours.logps, theirs.logps)

    class Recurrent(DynamicLayer):  # a layer with state besides keys and values (linear attention's): rows stay
        pass

    model.generation_config.prefill_chunk_size = None
    cache = kv_cache.growing_cache(model, room=4)
    with finished_rows.skipping(model, cache, tok.eos_token_id):
        assert isinstance(model.forward, finished_rows._Skipping)
    cache.layers[0] = Recurrent()
    with finished_rows.skipping(model, cache, tok.eos_token_id):
        assert "forward" not in vars(model)
