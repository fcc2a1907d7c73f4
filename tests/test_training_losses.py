"""One training step per registered loss through the one trainer path (bench.training.PreferenceTrainer).

For every loss in ``bench.losses.names()``: one optimizer step on a freshly initialised tiny model changes every
trainable parameter (the loss reaches every weight through TRL's forward), the reference log-probs come from the
precompute and equal the initial policy's (the first step's implicit rewards are 0), and reference-free losses
(SimPO) never run a reference pass. Catches drift in the TRL internals the trainer overrides.
"""
from __future__ import annotations

import math

import pytest
import torch
from trl import DPOTrainer

import tiny_models
from bench import losses
from bench import training as tr


def _loss(name: str):
    # eps: oracle (cDPO/rDPO configs may ask for it) resolves to a stated noise rate
    return losses.from_config({"name": name, **losses.defaults(name)}, noise_rate=0.2)


def _train_one_step(name: str, tmp_path, **trainer_kwargs):
    model = tiny_models.model()
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / name, seed=0)
    trainer = tr.PreferenceTrainer(model=model, args=args, train_dataset=tiny_models.pairs_dataset(),
                                   processing_class=tiny_models.tokenizer(), pref_loss=_loss(name), **trainer_kwargs)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    out = trainer.train()
    return trainer, model, before, out


@pytest.mark.parametrize("name", losses.names())
def test_one_step_changes_every_parameter(name, tmp_path):
    trainer, model, before, out = _train_one_step(name, tmp_path)
    assert trainer.state.global_step == 1
    assert math.isfinite(out.training_loss)
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(before[n], p.detach())]
    assert not unchanged, f"{name}: parameters not updated by one step: {unchanged}"
    logged = trainer.state.log_history[0]
    for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "entropy"):
        assert key in logged, (name, sorted(logged))
    if trainer.pref_loss.needs_reference_model:
        # reference = the initial policy: the first step's implicit rewards (logged before the update) are ~0
        assert abs(logged["rewards/chosen"]) < 1e-4 and abs(logged["rewards/rejected"]) < 1e-4, logged
        assert all(c in trainer.train_dataset.column_names for c in tr.REF_COLUMNS)


@pytest.mark.parametrize("name", [n for n in losses.names() if not _loss(n).needs_reference_model])
def test_reference_free_loss_never_runs_a_reference_pass(name, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError(f"{name} is reference-free but a reference pass ran")

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", boom)  # TRL's precompute (our override's parent)
    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", boom)  # TRL's reference forward
    trainer, model, before, _ = _train_one_step(name, tmp_path)
    assert trainer.ref_model is None
    assert not any(c in trainer.train_dataset.column_names for c in tr.REF_COLUMNS)
    assert trainer.state.global_step == 1
    assert not any(torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if p.requires_grad)


def test_simpo_is_registered_reference_free():
    assert "simpo" in losses.names() and not _loss("simpo").needs_reference_model
