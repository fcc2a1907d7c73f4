"""The embedded world on any causal LM (``data=world model=local``/``smollm2_135m``, bench/world/pretrained.py): the
reference policy is the given model after a short SFT on world text, the pairs are its own samples labelled by the
gold reward, and a chat model sees prompts as user turns. Tested on a small local chat model of the same shape as
SmolLM2 (a Llama with a chat template), so no hub and no minutes-long forward passes."""
from __future__ import annotations

import json

import pytest

from conftest import run_bench

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SMALL_WORLD = ["data.n_train_prompts=24", "data.n_rm_prompts=8", "data.n_val_prompts=8", "data.n_eval_prompts=6",
               "data.eval_samples_per_prompt=1", "data.max_new_tokens=16", "eval.max_new_tokens=16",
               "train.max_steps=2", "train.batch_size=4", "model.sft.steps=150", "model.sft.batch_size=16",
               "model.sft.lr=3e-3"]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.world import rules as world
    from bench.world import tiny_lm

    folder = tmp_path_factory.mktemp("chat_lm")
    texts = [p + "\n" + r for p, r in world.sft_corpus(400, 0)] + ["<|user|><|assistant|>"]
    tokenizer = tiny_lm.build_tokenizer(texts, 500)
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _world(chat_model, root):
    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose

    parts = build_parts(compose(["data=world", "model=local", f"model.path={chat_model}", *SMALL_WORLD]))
    return data_mod.load(parts.data, parts.model, str(root / ".cache"))


@pytest.mark.slow
def test_a_chat_model_world_has_conversational_pairs_of_its_own_samples(chat_model, tmp_path):
    from bench.world import rules as world

    d = _world(chat_model, tmp_path)
    meta = d.meta["world"]
    assert meta["chat"] is True and meta["reference_path"] == "reference" and meta["n_eval_prompts"] == 6
    assert len(d.train) > 0 and len(d.eval_prompts) == 6
    row = d.train[0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    # labelled by the gold reward of the plain texts: chosen scores strictly higher
    for r in d.train:
        text = r["prompt"][0]["content"]
        assert world.gold_reward(text, r["chosen"][0]["content"]) == r["gold_chosen"] > r["gold_rejected"]
    assert (tmp_path / ".cache" / "world").exists() and d.model_path.endswith("reference")
    again = _world(chat_model, tmp_path)  # cached: the same world, not rebuilt
    assert again.fingerprint == d.fingerprint and again.train["pair_id"] == d.train["pair_id"]


@pytest.mark.slow
def test_a_cell_on_a_pretrained_world_scores_gold(chat_model, tmp_path):
    run_bench("data=world", "model=local", f"model.path={chat_model}", *SMALL_WORLD, root=tmp_path)
    rec = json.loads(next((tmp_path / "results" / "cells").glob("*/record.json")).read_text())
    assert rec["status"] == "ok" and rec["model"] == "local"
    for key in ("gold_reward", "gold_reward_ref", "gold_win_rate", "implicit_acc", "kl"):
        assert key in rec["metrics"], key


def test_the_tiny_world_is_keyed_as_before():
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.world.build import world_key

    p = build_parts(compose([]))
    assert world_key(p.data, p.model) == "addb75872ff05e36"  # the default world: new options left it as it was


@pytest.mark.parametrize("overrides, message", [
    (["data=hf", "data.path=x.jsonl", "model=tiny"], "the tiny model is the embedded world's own reference policy"),
    (["data=hf", "data.path=x.jsonl", "model=smollm2_135m", "model.sft.steps=5"], "model.sft.steps=5 with data=hf"),
])
def test_model_mistakes_fail_at_start_up(overrides, message):
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.core.options import ConfigError

    with pytest.raises(ConfigError) as e:
        build_parts(compose(overrides))
    assert message in str(e.value)
