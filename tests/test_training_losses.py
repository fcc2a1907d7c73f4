"""One training step per registered loss through the one trainer path (bench.training.PreferenceTrainer).

For every loss in ``bench.losses.names()``: one optimizer step on a freshly initialised tiny model changes every
trainable parameter (the loss reaches every weight through TRL's forward), the reference log-probs come from the
precompute and equal the initial policy's (the first step's implicit rewards are the loss's rewards at log-ratio 0:
0 for the DPO family), and reference-free losses (SimPO, ASFT, reference-free anchored DPO) never run a reference
pass. Catches drift in the TRL internals the trainer overrides.

Losses that read a scorer get ``score_chosen``/``score_rejected`` columns through ``extra_columns``; NC-DPO's flip
rate (its ``trainable_parameters()``) must be in the optimizer and learn, globally or per annotator index; a
``pair_weight`` column makes the batch loss a weighted mean.
"""
from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback
from trl import DPOTrainer

import tiny_models
from bench import losses
from bench import training as tr

# a scorer's scores for the 8 tiny pairs: non-zero margins of both signs (at a zero margin SmPO's scale is 0, SPPO
# single's targets are 0, and a pair would not move the policy at the reference)
SCORE_CHOSEN = [1.0, -0.5, 2.0, 0.25, 3.0, -1.0, 0.5, 1.5]
SCORE_REJECTED = [0.0, 1.5, -1.0, 0.75, 0.0, -2.0, 1.0, 0.25]


def _loss(name: str, **overrides):
    # eps: oracle (cDPO/rDPO configs may ask for it) resolves to a stated noise rate
    return losses.from_config({"name": name, **losses.defaults(name), **overrides}, noise_rate=0.2)


def _with_scores(loss, dataset):
    """The dataset and extra columns the loss reads: a scorer's scores for losses that need them."""
    if not loss.needs_scores:
        return dataset, ()
    dataset = dataset.add_column("score_chosen", SCORE_CHOSEN[: len(dataset)])
    dataset = dataset.add_column("score_rejected", SCORE_REJECTED[: len(dataset)])
    return dataset, ("score_chosen", "score_rejected")


def _trainer(loss, tmp_path, dataset=None, extra_columns=(), max_steps=1, **trainer_kwargs):
    model = tiny_models.model()
    args = tr.dpo_config(tiny_models.TRAIN, tmp_path / loss.name, seed=0)
    args.max_steps = max_steps
    dataset = tiny_models.pairs_dataset() if dataset is None else dataset
    dataset, score_columns = _with_scores(loss, dataset)
    trainer = tr.PreferenceTrainer(model=model, args=args, train_dataset=dataset,
                                   processing_class=tiny_models.tokenizer(), pref_loss=loss,
                                   extra_columns=tuple(score_columns) + tuple(extra_columns), **trainer_kwargs)
    return trainer, model


def _train_one_step(name: str, tmp_path, loss=None, **trainer_kwargs):
    trainer, model = _trainer(loss or _loss(name), tmp_path, **trainer_kwargs)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    out = trainer.train()
    return trainer, model, before, out


def _own_group(trainer, param):
    """The optimizer's param group holding ``param`` (a loss's own learned parameter), or None."""
    groups = [g for g in trainer.optimizer.param_groups if any(p is param for p in g["params"])]
    assert len(groups) <= 1
    return groups[0] if groups else None


def _check_one_step(name, trainer, model, before, out):
    assert trainer.state.global_step == 1
    assert math.isfinite(out.training_loss)
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(before[n], p.detach())]
    assert not unchanged, f"{name}: parameters not updated by one step: {unchanged}"
    logged = trainer.state.log_history[0]
    for key in ("loss", "rewards/margins", "rewards/accuracies", "logps/chosen", "entropy"):
        assert key in logged, (name, sorted(logged))
    loss = trainer.pref_loss
    if loss.needs_reference_model:
        # reference = the initial policy: the first step's implicit rewards (logged before the update) are the
        # loss's rewards at log-ratio 0 (0 for the DPO family; beta * psi(0) for f-DPO), and the margins ~0
        zero, one = torch.zeros(1), torch.ones(1)
        at_ref = [v.item() for v in loss.rewards(zero, zero, zero, zero, one, one)]
        assert abs(logged["rewards/chosen"] - at_ref[0]) < 1e-4, logged
        assert abs(logged["rewards/rejected"] - at_ref[1]) < 1e-4, logged
        assert abs(logged["rewards/margins"]) < 1e-4, logged
        assert all(c in trainer.train_dataset.column_names for c in tr.REF_COLUMNS)
    for own in loss.trainable_parameters():  # NC-DPO's flip rate: in the optimizer with its own step size
        group = _own_group(trainer, own)
        assert group is not None and group["lr"] == loss.param_lr and group["weight_decay"] == 0.0, name


@pytest.mark.parametrize("name", losses.names())
def test_one_step_changes_every_parameter(name, tmp_path):
    _check_one_step(name, *_train_one_step(name, tmp_path))


VARIANTS = [("fdpo", {"divergence": "reverse_kl"}), ("fdpo", {"divergence": "forward_kl"}),
            ("fdpo", {"divergence": "alpha", "alpha": 0.3}), ("anchored", {"reference_free": True}),
            ("sppo", {"variant": "single"}), ("smdpo", {"variant": "brain"}), ("madpo", {"reset": False})]


@pytest.mark.parametrize("name,overrides", VARIANTS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in VARIANTS])
def test_one_step_non_default_variants(name, overrides, tmp_path):
    loss = _loss(name, **overrides)
    assert all(loss.params[k] == v for k, v in overrides.items())
    _check_one_step(name, *_train_one_step(name, tmp_path, loss=loss))


REFERENCE_FREE = [(n, {}) for n in losses.names() if not _loss(n).needs_reference_model]
REFERENCE_FREE.append(("anchored", {"reference_free": True}))


@pytest.mark.parametrize("name,overrides", REFERENCE_FREE, ids=[f"{n}{'-free' if o else ''}" for n, o in REFERENCE_FREE])
def test_reference_free_loss_never_runs_a_reference_pass(name, overrides, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError(f"{name} is reference-free but a reference pass ran")

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", boom)  # TRL's precompute (our override's parent)
    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", boom)  # TRL's reference forward
    loss = _loss(name, **overrides)
    assert not loss.needs_reference_model
    trainer, model, before, _ = _train_one_step(name, tmp_path, loss=loss)
    assert trainer.ref_model is None
    assert not any(c in trainer.train_dataset.column_names for c in tr.REF_COLUMNS)
    assert trainer.state.global_step == 1
    assert not any(torch.equal(before[n], p.detach()) for n, p in model.named_parameters() if p.requires_grad)


def test_simpo_is_registered_reference_free():
    assert "simpo" in losses.names() and not _loss("simpo").needs_reference_model


class _RecordRates(TrainerCallback):
    """NC-DPO's learned rates after every optimizer step."""

    def __init__(self, loss):
        self.loss, self.rates = loss, []

    def on_step_end(self, args, state, control, **kwargs):
        self.rates.append(0.5 * torch.sigmoid(self.loss.theta.detach().clone()))


def test_ncdpo_learns_its_flip_rate(tmp_path):
    """The flip rate's logit is in the optimizer (own lr, no decay) and moves. At the first step the policy is its
    reference, so z = 0 on every pair and d loss / d eps = -(s(-z) - s(z)) / (...) = 0: the rate cannot move yet.
    Once the policy has fitted the (clean) labels, z > 0 and the likelihood asks for fewer flips: eps falls."""
    loss = _loss("ncdpo")
    eps0 = loss.eps_init
    trainer, _ = _trainer(loss, tmp_path, max_steps=3)
    record = _RecordRates(loss)
    trainer.add_callback(record)
    trainer.train()
    assert trainer.state.global_step == 3
    group = _own_group(trainer, loss.theta)
    assert group is not None and group["lr"] == loss.eps_lr and group["weight_decay"] == 0.0
    assert len(record.rates) == 3
    first, last = record.rates[0].item(), record.rates[-1].item()
    assert abs(first - eps0) < 1e-4  # the step at z ~ 0 leaves it (almost) where it started
    margins = [h["rewards/margins"] for h in trainer.state.log_history if "rewards/margins" in h]
    assert margins[-1] > 0  # the policy now separates the pairs as labelled ...
    assert last < eps0 - 1e-4  # ... so the learned flip rate falls
    assert abs(loss.learned()["eps"] - last) < 1e-7


def test_ncdpo_per_annotator_learns_one_rate_per_annotator_index(tmp_path):
    loss = _loss("ncdpo", per_annotator=True)
    loss.set_annotators(["ann_a", "ann_b", "ann_c"])  # as bench.cell.extras.with_annotators does
    idx = [0, 1, 0, 1, 0, 1, 0, 1]  # nobody's pairs are ann_c's
    dataset = tiny_models.pairs_dataset().add_column("annotator_idx", idx)
    trainer, _ = _trainer(loss, tmp_path, dataset=dataset, extra_columns=("annotator_idx",), max_steps=3)
    trainer.train()
    (theta,) = loss.trainable_parameters()
    assert theta.shape == (3,) and _own_group(trainer, theta) is not None
    rates = loss.learned()["eps"]
    assert list(rates) == ["ann_a", "ann_b", "ann_c"]
    eps0 = loss.eps_init
    assert abs(rates["ann_a"] - eps0) > 1e-4 and abs(rates["ann_b"] - eps0) > 1e-4  # their pairs moved them
    assert rates["ann_a"] != rates["ann_b"]  # from different pairs
    assert abs(rates["ann_c"] - eps0) < 1e-7  # no pair of ann_c: no gradient, no decay, no move


def test_pair_weight_makes_the_loss_a_weighted_mean(tmp_path):
    """``pair_weight`` (a method's per-pair weights) reaches the batch: the batch loss is sum(w l) / sum(w)."""
    loss = _loss("asft")  # reference-free, and its per-pair values differ at the initial policy (DPO's are all log 2)
    recorded = []
    forward = loss.forward

    def recording(*args, **kwargs):
        out = forward(*args, **kwargs)
        recorded.append(out.detach().clone())
        return out

    loss.forward = recording
    weights = [0.0] * 8
    weights[5] = 1.0
    dataset = tiny_models.pairs_dataset().add_column("pair_weight", weights)
    trainer, model = _trainer(loss, tmp_path, dataset=dataset, extra_columns=("pair_weight",))
    batch = next(iter(trainer.get_train_dataloader()))
    assert "pair_weight" in batch  # carried into the batch (and stripped before the forward, or it would fail)
    w = batch["pair_weight"]
    with torch.no_grad():
        value = trainer.compute_loss(model, batch).item()
    per_pair = recorded[-1]
    assert per_pair.shape == (8,) and per_pair.std() > 1e-3  # the pairs' losses differ, so the mean is not it
    assert abs(value - per_pair[w == 1].item()) < 1e-5  # weight 0 on all but one pair: that pair's loss
    assert abs(value - per_pair.mean().item()) > 1e-4
    # general weights
    batch["pair_weight"] = torch.tensor([0.5, 2.0, 0.0, 1.0, 3.0, 0.25, 0.0, 1.0])
    with torch.no_grad():
        value = trainer.compute_loss(model, batch).item()
    w = batch["pair_weight"]
    assert abs(value - ((recorded[-1] * w).sum() / w.sum()).item()) < 1e-5
    # and a training step runs on it
    trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(trainer.state.log_history[0]["loss"])
