"""Golden-value and property tests for the loss registry (bench/losses/).

Expected values are computed by hand from the formulas in docs/losses.md (docs/seed_methods.md, "Notes", for the
seed-paper losses) with plain ``math`` (never by calling the code under test). Inputs are float64 so that 1e-6 is a
meaningful tolerance.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from bench import losses
from bench.core.options import ConfigError, Param, option

CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"
TOL = 1e-6

# four pairs: summed log-probs (policy, reference) and completion lengths
C = [-10.0, -22.5, -7.25, -31.0]  # policy, chosen
R = [-12.0, -20.0, -9.5, -30.0]  # policy, rejected
RC = [-11.0, -21.0, -8.0, -35.0]  # reference, chosen
RR = [-11.5, -21.5, -9.0, -26.0]  # reference, rejected
LC = [4, 9, 3, 12]
LR = [6, 10, 4, 10]
# per-pair log-ratio margins h: 1.5, -3.0, 1.25, 8.0
H = [(c - rc) - (r - rr) for c, r, rc, rr in zip(C, R, RC, RR)]


# a scorer's per-response scores for the same pairs: margins m = s_w - s_l of 1, -2, 3 and 0
SC = [1.0, -0.5, 2.0, 0.25]
SR = [0.0, 1.5, -1.0, 0.25]
M = [a - b for a, b in zip(SC, SR)]
UW = [c - rc for c, rc in zip(C, RC)]  # per-response log-ratios: 1, -1.5, 0.75, 4
UL = [r - rr for r, rr in zip(R, RR)]  # -0.5, 1.5, -0.5, -4


def scores(sc=SC, sr=SR, dtype=torch.float64):
    return {"score_chosen": torch.tensor(sc, dtype=dtype), "score_rejected": torch.tensor(sr, dtype=dtype)}


def args(dtype=torch.float64, requires_grad=False):
    t = lambda xs: torch.tensor(xs, dtype=dtype)  # noqa: E731
    c, r = t(C), t(R)
    if requires_grad:
        c.requires_grad_(True)
        r.requires_grad_(True)
    return c, r, t(RC), t(RR), torch.tensor(LC), torch.tensor(LR)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def close(got, expected, tol=TOL):
    got = [float(v) for v in (got.detach() if isinstance(got, torch.Tensor) else got)]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert abs(g - e) <= tol, (got, expected)


# ---------------------------------------------------------------------------------------------------------------
# golden values, one per loss


def test_dpo_golden():
    z = [0.5 * h for h in H]
    close(losses.get("dpo", beta=0.5)(*args()), [-math.log(sig(v)) for v in z])


def test_ipo_golden_length_normalized():
    tau = 0.1
    hbar = [(c - rc) / lc - (r - rr) / lr for c, r, rc, rr, lc, lr in zip(C, R, RC, RR, LC, LR)]
    loss = losses.get("ipo", tau=tau)
    assert loss.length_normalized and loss.needs_reference_model
    close(loss(*args()), [(hb - 1 / (2 * tau)) ** 2 for hb in hbar])
    # rewards are the unscaled per-token log-ratios, so the logged margin is h_bar
    cr, rr = loss.rewards(*args())
    close(cr - rr, hbar)


def test_cdpo_golden():
    beta, eps = 0.5, 0.2
    z = [beta * h for h in H]
    expected = [-(1 - eps) * math.log(sig(v)) - eps * math.log(sig(-v)) for v in z]
    close(losses.get("cdpo", beta=beta, eps=eps)(*args()), expected)


def test_rdpo_golden():
    beta, eps = 0.5, 0.2
    z = [beta * h for h in H]
    expected = [((1 - eps) * -math.log(sig(v)) - eps * -math.log(sig(-v))) / (1 - 2 * eps) for v in z]
    close(losses.get("rdpo", beta=beta, eps=eps)(*args()), expected)


def test_ropo_golden_and_label():
    beta, a = 0.5, 14.0
    z = [beta * h for h in H]
    expected = [4 * a / (1 + a) ** 2 * (-math.log(sig(v)) + a * sig(-v)) for v in z]
    loss = losses.get("ropo", beta=beta, alpha=a)
    close(loss(*args()), expected)
    assert loss.label == "ROPO (loss only)"


def test_simpo_golden():
    beta, gamma = 2.0, 0.5
    u = [beta * c / lc - beta * r / lr - gamma for c, r, lc, lr in zip(C, R, LC, LR)]
    loss = losses.get("simpo", beta=beta, gamma=gamma)
    close(loss(*args()), [-math.log(sig(v)) for v in u])
    cr, rr = loss.rewards(*args())
    close(cr, [beta * c / lc for c, lc in zip(C, LC)])
    close(rr, [beta * r / lr for r, lr in zip(R, LR)])


def test_hinge_golden():
    z = [0.5 * h for h in H]  # the last pair has z = 4 > 1: loss 0
    close(losses.get("hinge", beta=0.5)(*args()), [max(0.0, 1 - v) for v in z])


def test_drdpo_golden_value_and_gradient():
    beta, bp = 0.5, 0.5
    z = [beta * h for h in H]
    l = [-math.log(sig(v)) for v in z]
    batch = -bp * math.log(sum(math.exp(-li / bp) for li in l) / len(l))
    loss = losses.get("drdpo", beta=beta, beta_prime=bp)
    assert loss.batch_level
    c, r, rc, rr, lc, lr = args(requires_grad=True)
    per_pair = loss(c, r, rc, rr, lc, lr)
    close(per_pair, [batch] * len(l))
    assert abs(per_pair.mean().item() - batch) <= TOL
    # d L / d chosen_logps_i = softmax_i(-l/beta') * (-sigma(-z_i)) * beta
    per_pair.mean().backward()
    total = sum(math.exp(-li / bp) for li in l)
    close(c.grad, [math.exp(-li / bp) / total * -sig(-zi) * beta for li, zi in zip(l, z)])
    close(r.grad, [-(math.exp(-li / bp) / total * -sig(-zi) * beta) for li, zi in zip(l, z)])
    diag = loss.diagnostics(*args())
    close(diag["pair_weight"], [len(l) * math.exp(-li / bp) / total for li in l])
    close(diag["grad_weight"], [len(l) * math.exp(-li / bp) / total * sig(-zi) for li, zi in zip(l, z)])


@pytest.mark.parametrize("variant", ["sigmoid", "ramp"])
def test_sympo_golden_with_clipping(variant):
    beta, clip = 0.5, 1.0
    cw = [max(-clip, min(clip, beta * (c - rc))) for c, rc in zip(C, RC)]
    cl = [max(-clip, min(clip, beta * (r - rr))) for r, rr in zip(R, RR)]
    z = [a - b for a, b in zip(cw, cl)]  # the last pair: rewards 2 and -2 clip to 1 and -1
    if variant == "sigmoid":
        expected = [sig(-v) for v in z]
    else:
        expected = [min(1.0, max(0.0, 0.5 - 0.5 * v)) for v in z]
    loss = losses.get("sympo", beta=beta, variant=variant, clip=clip)
    close(loss(*args()), expected)
    assert loss.label == f"SymPO ({variant})"
    close(loss.diagnostics(*args())["clipped"], [0.0, 0.0, 0.0, 1.0])
    # clip off: plain beta * h
    noclip = losses.get("sympo", beta=beta, variant="sigmoid", clip=None)
    close(noclip(*args()), [sig(-beta * h) for h in H])


def test_udpo_golden_and_eps0_is_dpo():
    beta, eps = 0.5, 0.2
    c = eps / (1 - eps)
    z = [beta * h for h in H]
    expected = [-math.log((math.exp(v) + c) / (math.exp(v) + 1)) for v in z]
    close(losses.get("udpo", beta=beta, eps=eps)(*args()), expected)
    close(losses.get("udpo", beta=beta, eps=0.0)(*args()), [-math.log(sig(v)) for v in z])


def test_paper_defaults_from_yaml():
    expected = {
        "dpo": {"beta": 0.1},
        "ipo": {"tau": 0.1},
        "cdpo": {"beta": 0.1, "eps": 0.1},
        "rdpo": {"beta": 0.1, "eps": 0.1},
        "ropo": {"beta": 0.1, "alpha": 14.0},
        "simpo": {"beta": 2.0, "gamma": 1.0},
        "hinge": {"beta": 0.1},
        "drdpo": {"beta": 0.1, "beta_prime": 1.0},
        "sympo": {"beta": 0.1, "variant": "sigmoid", "clip": 10.0},
        "udpo": {"beta": 0.1, "eps": 0.1},
        "fdpo": {"beta": 0.1, "divergence": "js", "alpha": 0.5},
        "anchored": {"beta": 0.1, "alpha": 1.0, "reference_free": False},
        "asft": {"lam": 0.1},
        "ncdpo": {"beta": 0.1, "eps_init": 0.1, "eps_lr": 0.01, "per_annotator": False},
        "sppo": {"beta": 0.1, "variant": "hard"},
        "madpo": {"beta": 0.1, "c_max": 2.0, "c_min": 0.5, "lam": 1.0, "reset": True},  # tau: below
        "smdpo": {"beta": 0.1, "temperature": 1.0, "variant": "smpo"},
        "dadpo": {"beta": 0.1, "a_db": 1.0},
    }
    got = {n: dict(losses.get(n).params) for n in losses.names()}
    tau = got["madpo"].pop("tau")
    assert got == expected
    # the MADPO notebook's tau is log(0.999/0.001) = log(999) = 6.906755; the YAML's 6.907755 is log(1000)
    assert abs(tau - math.log(999)) < 1.5e-3


def test_madpo_default_tau_is_log_999():
    assert abs(losses.get("madpo").tau - math.log(999)) < 1e-6


# ---------------------------------------------------------------------------------------------------------------
# properties


def test_cdpo_eps0_equals_dpo_values_and_gradients():
    a, b = args(requires_grad=True), args(requires_grad=True)
    la, lb = losses.get("cdpo", beta=0.5, eps=0.0)(*a), losses.get("dpo", beta=0.5)(*b)
    assert torch.allclose(la, lb, atol=1e-12)
    la.mean().backward()
    lb.mean().backward()
    assert torch.allclose(a[0].grad, b[0].grad, atol=1e-12) and torch.allclose(a[1].grad, b[1].grad, atol=1e-12)


def test_rdpo_equals_trl_robust_transcription():
    # TRL 1.16 DPOTrainer._compute_loss, loss_type == "robust" (label_smoothing = eps), transcribed:
    beta, eps = 0.5, 0.3
    c, r, rc, rr, _, _ = args()
    delta = (c - rc) - (r - rr)
    clean = -(1 - eps) * F.logsigmoid(beta * delta)
    flipped = -eps * F.logsigmoid(-beta * delta)
    trl = (clean - flipped) / (1 - 2 * eps)
    assert torch.allclose(losses.get("rdpo", beta=beta, eps=eps)(*args()), trl, atol=1e-12)


def _trl_compute_loss(loss_type, beta, label_smoothing, c, r, rc, rr, loss_weights=None, **config):
    """Call TRL 1.16's own DPOTrainer._compute_loss on a stub trainer and model returning the given log-probs.

    ``loss_type`` may be a list (TRL's weighted sum of losses, with ``loss_weights``); ``config`` sets further
    attributes TRL reads from its config (``f_divergence_type``, ``f_alpha_divergence_coef``). Each sequence has 2
    completion tokens, the first holding the whole log-prob (TRL's ``sft`` term averages over those tokens).
    """
    from trl.trainer.dpo_trainer import DPOTrainer

    n, width = len(c), 3
    loss_types = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    n_types = len(loss_types)
    per_token = torch.zeros(2 * n, width - 1, dtype=c.dtype)
    per_token[:, 0] = torch.cat([c, r])  # summed over the sequence by TRL
    outputs = SimpleNamespace(
        log_probs=per_token, entropy=torch.zeros_like(per_token), mean_logits=torch.zeros_like(per_token),
        is_top1=torch.zeros_like(per_token, dtype=torch.bool),
    )

    class StubModel:
        training = True

        def __call__(self, **kwargs):
            return outputs

    model = StubModel()
    stub = SimpleNamespace(
        model=model, accelerator=SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x),
        ld_alpha=None, precompute_ref_logps=True, loss_types=loss_types, loss_weights=loss_weights or [1.0] * n_types,
        beta=beta, label_smoothing=label_smoothing, use_weighting=False,
        aux_loss_enabled=False, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
        **{"f_divergence_type": "reverse_kl", "f_alpha_divergence_coef": 0.5, **config},
    )
    ones = torch.ones(2 * n, width, dtype=torch.long)
    inputs = {"input_ids": ones, "attention_mask": ones, "completion_mask": ones,
              "ref_chosen_logps": rc, "ref_rejected_logps": rr}
    return DPOTrainer._compute_loss(stub, model, inputs, return_outputs=False)


def test_rdpo_equals_trl_robust_called():
    """rDPO == TRL 1.16's loss_type="robust", computed by TRL's own code, per pair and for the batch mean."""
    beta, eps = 0.5, 0.3
    c, r, rc, rr, lc, lr = args()
    ours = losses.get("rdpo", beta=beta, eps=eps)(c, r, rc, rr, lc, lr)
    for i in range(len(c)):
        s = slice(i, i + 1)
        trl = _trl_compute_loss("robust", beta, eps, c[s], r[s], rc[s], rr[s])
        assert abs(trl.item() - ours[i].item()) <= TOL
    assert abs(_trl_compute_loss("robust", beta, eps, c, r, rc, rr).item() - ours.mean().item()) <= TOL
    # and the stub is faithful: TRL's sigmoid loss through the same path is our DPO
    dpo = losses.get("dpo", beta=beta)(c, r, rc, rr, lc, lr).mean().item()
    assert abs(_trl_compute_loss("sigmoid", beta, 0.0, c, r, rc, rr).item() - dpo) <= TOL


def test_effective_gradient_weights_closed_form():
    beta, eps, a = 0.5, 0.2, 14.0
    z = [beta * h for h in H]
    cases = {
        losses.get("dpo", beta=beta): [sig(-v) for v in z],
        losses.get("cdpo", beta=beta, eps=eps): [(1 - eps) * sig(-v) - eps * sig(v) for v in z],
        losses.get("rdpo", beta=beta, eps=eps): [((1 - eps) * sig(-v) + eps * sig(v)) / (1 - 2 * eps) for v in z],
        losses.get("ropo", beta=beta, alpha=a): [4 * a / (1 + a) ** 2 * sig(-v) * (1 + a * sig(v)) for v in z],
    }
    for loss, expected in cases.items():
        with torch.no_grad():  # diagnostics must work inside the trainer's no_grad logging
            diag = loss.diagnostics(*args())
        close(diag["margin"], z)
        close(diag["grad_weight"], expected)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5, 3.0, 14.0, 100.0, 1e4])
def test_ropo_gradient_magnitude_at_most_one(alpha):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpha <= 2 warns (the paper requires alpha > 2)
        loss = losses.get("ropo", beta=1.0, alpha=alpha)
    z = torch.linspace(-60, 60, 4801, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss.loss_of_margin(z).sum(), z)
    assert grad.abs().max().item() <= 1.0 + 1e-12
    if alpha >= 1:  # the bound is attained at sigma(z) = (a-1)/(2a)
        assert grad.abs().max().item() > 0.999
    # and for confidently "wrong" pairs it falls to 4a/(1+a)^2, where DPO's is 1
    assert abs(grad[0].item() + 4 * alpha / (1 + alpha) ** 2) <= 1e-9


def test_simpo_ignores_reference_logprobs():
    loss = losses.get("simpo")
    assert loss.needs_reference_model is False and loss.length_normalized
    c, r, rc, rr, lc, lr = args()
    base = loss(c, r, None, None, lc, lr)
    assert torch.equal(base, loss(c, r, rc, rr, lc, lr))
    assert torch.equal(base, loss(c, r, rc * 3 - 7, rr + 100, lc, lr))
    untouchable = object()  # any arithmetic on it would raise
    assert torch.equal(base, loss(c, r, untouchable, untouchable, lc, lr))
    assert torch.equal(loss.rewards(c, r, None, None, lc, lr)[0], loss.rewards(c, r, rc, rr, lc, lr)[0])
    loss.diagnostics(c, r, None, None, lc, lr)


def test_ipo_optimum_margin_is_one_over_two_tau():
    for tau in (0.1, 0.5, 2.0):
        loss = losses.get("ipo", tau=tau)
        target = 1 / (2 * tau)
        # one pair whose length-normalized margin is exactly the target: chosen log-ratio 4*target over 4 tokens
        c = torch.tensor([4 * target], dtype=torch.float64, requires_grad=True)
        zero = torch.zeros(1, dtype=torch.float64)
        out = loss(c, zero, zero, zero, torch.tensor([4]), torch.tensor([2]))
        (grad,) = torch.autograd.grad(out.sum(), c)
        assert abs(out.item()) <= 1e-12 and abs(grad.item()) <= 1e-12
        # minimize over h_bar on a grid: the argmin is the target
        hs = torch.linspace(target - 3, target + 3, 6001, dtype=torch.float64)
        assert abs(hs[loss.loss_of_margin(hs).argmin()].item() - target) <= 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_drdpo_tends_to_mean_dpo_as_beta_prime_grows(dtype):
    a = args(dtype=dtype)
    dpo = losses.get("dpo", beta=0.5)(*a).mean().item()
    gaps = [abs(losses.get("drdpo", beta=0.5, beta_prime=bp)(*a).mean().item() - dpo) for bp in (1.0, 10.0, 1e3, 1e8)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3 and gaps[3] <= TOL
    # small beta': no overflow, tends to the smallest DPO loss
    l_min = losses.get("dpo", beta=0.5)(*a).min().item()
    tiny = losses.get("drdpo", beta=0.5, beta_prime=1e-3)(*a)
    assert torch.isfinite(tiny).all() and abs(tiny[0].item() - l_min) < 0.01


@pytest.mark.parametrize("variant", ["sigmoid", "ramp"])
def test_sympo_is_symmetric(variant):
    loss = losses.get("sympo", variant=variant)
    z = torch.linspace(-30, 30, 1201, dtype=torch.float64)
    assert torch.allclose(loss.loss_of_margin(z) + loss.loss_of_margin(-z), torch.ones_like(z), atol=1e-12)
    # through the full call: swapping chosen and rejected gives 1 - loss (the clip is symmetric too)
    c, r, rc, rr, lc, lr = args()
    assert torch.allclose(loss(c, r, rc, rr, lc, lr) + loss(r, c, rr, rc, lr, lc), torch.ones(4, dtype=torch.float64))


def test_every_loss_backpropagates_and_keeps_dtype():
    for name in losses.names():
        c, r, rc, rr, lc, lr = args(dtype=torch.float32, requires_grad=True)
        loss = losses.get(name)
        kw = {"extras": scores(dtype=torch.float32)} if loss.uses_extras else {}
        out = loss(c, r, rc, rr, lc, lr, **kw)
        assert out.shape == (4,) and out.dtype == torch.float32, name
        out.mean().backward()
        assert c.grad is not None and torch.isfinite(c.grad).all() and c.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------------------------
# registry, configs and errors


def test_yaml_and_registry_agree():
    files = {p.stem: OmegaConf.to_container(OmegaConf.load(p)) for p in CONF.glob("*.yaml")}
    assert set(files) == set(losses.names())
    for stem, cfg in files.items():
        assert cfg["name"] == stem
        loss = losses.get(stem)
        assert set(cfg) - {"name", "defaults"} == {f.name for f in dataclasses.fields(type(loss).Options)}, stem  # defaults: Hydra's list
        if loss.needs_scores:  # a loss that reads scores by default picks a scorer, or every cell would fail
            assert any("scorer" in str(entry) for entry in cfg.get("defaults", [])), stem
        assert loss.name == stem and loss.label and isinstance(loss.params, dict)
        assert isinstance(loss.needs_reference_model, bool) and isinstance(loss.length_normalized, bool)
        assert "#" in (CONF / f"{stem}.yaml").read_text(), f"{stem}.yaml should cite its source in a comment"


def test_unknown_name_did_you_mean():
    with pytest.raises(ConfigError, match=r"Did you mean 'dpo'") as err:
        losses.get("dpoo")
    assert "simpo" in str(err.value)  # lists the valid choices
    with pytest.raises(ConfigError, match=r"'simpo'"):
        losses.from_config({"name": "simppo"}, noise_rate=0.1)


def test_eps_oracle_resolution():
    loss = losses.from_config({"name": "rdpo", "eps": "oracle"}, noise_rate=0.2)
    assert loss.params == {"beta": 0.1, "eps": 0.2} and loss.eps_source == "oracle"
    loss = losses.from_config(OmegaConf.create({"name": "cdpo", "beta": 0.2, "eps": "oracle"}), noise_rate=0.4)
    assert loss.params == {"beta": 0.2, "eps": 0.4} and loss.eps_source == "oracle"
    assert losses.from_config({"name": "cdpo", "eps": 0.3}, noise_rate=0.4).eps_source == "fixed"
    assert losses.from_config({"name": "cdpo"}, noise_rate=0.4).eps_source == "fixed"  # the YAML's number
    assert losses.get("cdpo").eps_source == "fixed"
    assert losses.from_config({"name": "dpo"}, noise_rate=0.4).eps_source is None
    with pytest.raises(ConfigError, match="noise_rate"):
        losses.from_config({"name": "rdpo", "eps": "oracle"})
    with pytest.raises(ConfigError, match=r"oracle.*0\.5|0\.5.*oracle"):  # rDPO cannot take noise 0.5
        losses.from_config({"name": "rdpo", "eps": "oracle"}, noise_rate=0.5)
    with pytest.raises(ConfigError, match="from_config"):
        losses.get("rdpo", eps="oracle")


def test_bad_hyperparameters_name_field_and_range():
    with pytest.raises(ConfigError, match=r"beta=0.*\(0, inf\)"):
        losses.get("dpo", beta=0)
    with pytest.raises(ConfigError, match=r"beta='0.1'.*not a number"):
        losses.get("dpo", beta="0.1")
    with pytest.raises(ConfigError, match="not a number"):
        losses.get("dpo", beta=True)
    with pytest.raises(ConfigError, match=r"eps=0.5.*\[0, 0.5\).*1 - 2\*eps"):
        losses.get("rdpo", eps=0.5)
    with pytest.raises(ConfigError, match=r"eps=-0.1.*\[0, 0.5\]"):
        losses.get("cdpo", eps=-0.1)
    with pytest.raises(ConfigError, match=r"alpha=0"):
        losses.get("ropo", alpha=0)
    with pytest.warns(UserWarning, match="alpha > 2"):
        losses.get("ropo", alpha=1.5)
    with pytest.raises(ConfigError, match=r"tau=-1"):
        losses.get("ipo", tau=-1)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'beta'.*Valid hyperparameters: tau\."):
        losses.get("ipo", beta=0.1)
    with pytest.raises(ConfigError, match=r"unknown hyperparameter 'gamma_beta_ratio'.*Valid hyperparameters: beta, gamma\."):
        losses.get("simpo", gamma_beta_ratio=0.5)
    with pytest.raises(ConfigError, match=r"variant='relu'.*'sigmoid' or 'ramp'"):
        losses.get("sympo", variant="relu")
    with pytest.raises(ConfigError, match=r"beta_prime=0"):
        losses.get("drdpo", beta_prime=0.0)
    with pytest.raises(ConfigError, match="missing hyperparameter 'beta'"):
        losses.KIND.lookup("dpo")()  # built-in defaults come from the YAML, through get()


def test_missing_inputs_are_clear():
    c, r, rc, rr, lc, lr = args()
    with pytest.raises(ValueError, match="ref_chosen_logps is None"):
        losses.get("dpo")(c, r, None, None, lc, lr)
    with pytest.raises(ValueError, match="chosen_lengths is None"):
        losses.get("ipo")(c, r, rc, rr, None, None)
    losses.get("dpo")(c, r, rc, rr, None, None)  # lengths unused by DPO


# ---------------------------------------------------------------------------------------------------------------
# a user's own loss, plugged in through config without editing the project


class FocalDPO(losses.PairLoss):
    """A user loss: DPO down-weighted on pairs it already gets right."""

    name, label = "focal_dpo", "focal DPO"
    needs_reference_model, length_normalized = True, False

    class Options(losses.PairLoss.Options):
        g: float = option("the focusing exponent", Param(low=0.0), default=2.0)

    def loss_of_margin(self, z):
        return -((1 - torch.sigmoid(z)) ** self.g) * F.logsigmoid(z)


class NotALoss:
    name = "broken"

    def __call__(self, *a):
        return a[0]


def test_user_loss_via_target():
    cfg = {"_target_": f"{__name__}.FocalDPO", "name": "focal_dpo", "beta": 0.5}
    loss = losses.from_config(cfg, noise_rate=0.3)
    assert loss.params == {"beta": 0.5, "g": 2.0} and loss.eps_source is None and loss.label == "focal DPO"
    z = [0.5 * h for h in H]
    close(loss(*args()), [(1 - sig(v)) ** 2 * -math.log(sig(v)) for v in z])
    assert set(loss.diagnostics(*args())) == {"margin", "grad_weight"}
    # a built-in class through _target_ also works, with oracle eps
    rdpo = losses.from_config({"_target_": "bench.losses.robust.RDPO", "beta": 0.1, "eps": "oracle"}, noise_rate=0.25)
    assert rdpo.params["eps"] == 0.25 and rdpo.eps_source == "oracle"
    # the user's own validation errors surface as such
    with pytest.raises(ConfigError, match="g=-1"):
        losses.from_config({"_target_": f"{__name__}.FocalDPO", "beta": 0.5, "g": -1}, noise_rate=0.0)
    with pytest.raises(ConfigError, match=r"missing needs_reference_model, length_normalized, params, "
                                                r"rewards\(\), diagnostics\(\)"):
        losses.from_config({"_target_": f"{__name__}.NotALoss"}, noise_rate=0.0)


# ---------------------------------------------------------------------------------------------------------------
# losses from the seed papers (bench/losses/seed.py, bench/losses/scored.py; docs/seed_methods.md, "Notes")

TOL32 = 1e-5  # float32 inputs (TRL's alpha-divergence path has no float64 clamp)
TRL_DIVERGENCE = {"reverse_kl": "reverse_kl", "forward_kl": "forward_kl", "js": "js_divergence",
                  "alpha": "alpha_divergence"}


def nls(v):
    """-log sigma(v), by hand."""
    return -math.log(sig(v))


def psi_by_hand(divergence, alpha, u):
    """f'(e^u) of the paper (Wang et al. 2024, table 1), up to an additive constant."""
    if divergence == "reverse_kl":
        return u
    if divergence == "forward_kl":
        return -math.exp(-u)
    if divergence == "js":
        return math.log(sig(u))
    return -math.exp(-alpha * u) / alpha


@pytest.mark.parametrize("divergence,alpha", [("reverse_kl", 0.5), ("forward_kl", 0.5), ("js", 0.5), ("alpha", 0.5),
                                              ("alpha", 0.3), ("alpha", 0.8)])
def test_fdpo_golden(divergence, alpha):
    beta = 0.5
    loss = losses.get("fdpo", beta=beta, divergence=divergence, alpha=alpha)
    pw = [psi_by_hand(divergence, alpha, u) for u in UW]
    pl = [psi_by_hand(divergence, alpha, u) for u in UL]
    close(loss(*args()), [nls(beta * (a - b)) for a, b in zip(pw, pl)])
    cr, rr = loss.rewards(*args())
    close(cr, [beta * a for a in pw])
    close(rr, [beta * b for b in pl])
    assert loss.label == f"f-DPO ({divergence})" and loss.needs_reference_model


def test_fdpo_reverse_kl_equals_dpo_values_and_gradients():
    a, b = args(requires_grad=True), args(requires_grad=True)
    la = losses.get("fdpo", beta=0.5, divergence="reverse_kl", alpha=0.3)(*a)
    lb = losses.get("dpo", beta=0.5)(*b)
    assert torch.allclose(la, lb, atol=1e-12)
    la.mean().backward()
    lb.mean().backward()
    assert torch.allclose(a[0].grad, b[0].grad, atol=1e-12) and torch.allclose(a[1].grad, b[1].grad, atol=1e-12)


@pytest.mark.parametrize("divergence,alpha", [("reverse_kl", 0.5), ("forward_kl", 0.5), ("js", 0.5), ("alpha", 0.5),
                                              ("alpha", 0.3), ("alpha", 0.8)])
def test_fdpo_equals_trl_f_divergence_called(divergence, alpha):
    """f-DPO == TRL 1.16's sigmoid loss with f_divergence_type, computed by TRL's own code; TRL's alpha-divergence
    coefficient is 1 - the paper's alpha (TRL: (e^((a-1)u) - 1)/(a-1); the paper: (1 - e^(-alpha u))/alpha)."""
    beta = 0.5
    c, r, rc, rr, lc, lr = args(dtype=torch.float32)
    ours = losses.get("fdpo", beta=beta, divergence=divergence, alpha=alpha)(c, r, rc, rr, lc, lr)
    trl_config = {"f_divergence_type": TRL_DIVERGENCE[divergence], "f_alpha_divergence_coef": 1 - alpha}
    for i in range(len(c)):
        s = slice(i, i + 1)
        trl = _trl_compute_loss("sigmoid", beta, 0.0, c[s], r[s], rc[s], rr[s], **trl_config)
        assert abs(trl.item() - ours[i].item()) <= TOL32, (i, trl.item(), ours[i].item())
    assert abs(_trl_compute_loss("sigmoid", beta, 0.0, c, r, rc, rr, **trl_config).item()
               - ours.mean().item()) <= TOL32
    if divergence == "alpha" and alpha != 0.5:
        # the conventions differ: TRL's coefficient set to the paper's alpha is another loss
        other = _trl_compute_loss("sigmoid", beta, 0.0, c, r, rc, rr, f_divergence_type="alpha_divergence",
                                  f_alpha_divergence_coef=alpha)
        assert abs(other.item() - ours.mean().item()) > 1e-2


def test_anchored_golden_and_reference_free():
    beta, alpha = 0.5, 0.7
    nll = [-c / lc for c, lc in zip(C, LC)]  # per-token mean NLL of the chosen response
    loss = losses.get("anchored", beta=beta, alpha=alpha)
    assert loss.needs_reference_model and loss.label == "anchored DPO"
    close(loss(*args()), [nls(beta * h) + alpha * n for h, n in zip(H, nll)])
    close(losses.get("anchored", beta=beta, alpha=0.0)(*args()), [nls(beta * h) for h in H])  # alpha 0: DPO
    free = losses.get("anchored", beta=beta, alpha=alpha, reference_free=True)
    assert not free.needs_reference_model and free.label == "anchored DPO (reference-free)"
    expected = [nls(beta * (c - r)) + alpha * n for c, r, n in zip(C, R, nll)]
    c, r, rc, rr, lc, lr = args()
    close(free(c, r, None, None, lc, lr), expected)
    close(free(c, r, rc * 3 - 7, rr + 100, lc, lr), expected)  # the reference is never read
    with pytest.raises(ValueError, match="chosen_lengths is None"):
        loss(c, r, rc, rr, None, None)


def test_anchored_equals_trl_sigmoid_plus_sft_called():
    """Anchored DPO == TRL 1.16's loss_type=["sigmoid", "sft"] with loss_weights [1, alpha] (TRL 1.x's RPO)."""
    beta, alpha = 0.5, 0.7
    c, r, rc, rr, _, _ = args()
    two = torch.full((4,), 2)  # the stub's completions have 2 tokens each
    ours = losses.get("anchored", beta=beta, alpha=alpha)(c, r, rc, rr, two, two)
    for i in range(len(c)):
        s = slice(i, i + 1)
        trl = _trl_compute_loss(["sigmoid", "sft"], beta, 0.0, c[s], r[s], rc[s], rr[s], loss_weights=[1.0, alpha])
        assert abs(trl.item() - ours[i].item()) <= TOL
    trl = _trl_compute_loss(["sigmoid", "sft"], beta, 0.0, c, r, rc, rr, loss_weights=[1.0, alpha])
    assert abs(trl.item() - ours.mean().item()) <= TOL


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_asft_golden_reference_free_and_pointwise(lam):
    # the stated form: -log P_w - lam [log sigma(rho_w) + log sigma(-rho_l)], rho = log(P/(1-P)), P = e^(lbar)
    pw = [math.exp(c / lc) for c, lc in zip(C, LC)]
    pl = [math.exp(r / lr) for r, lr in zip(R, LR)]
    rho = lambda p: math.log(p / (1 - p))  # noqa: E731
    expected = [-math.log(a) - lam * (math.log(sig(rho(a))) + math.log(sig(-rho(b)))) for a, b in zip(pw, pl)]
    loss = losses.get("asft", lam=lam)
    assert not loss.needs_reference_model and loss.length_normalized
    c, r, rc, rr, lc, lr = args()
    close(loss(c, r, None, None, lc, lr), expected)
    assert torch.equal(loss(c, r, None, None, lc, lr), loss(c, r, rc * 3 - 7, rr + 100, lc, lr))
    cw, cl = loss.rewards(c, r, None, None, lc, lr)
    close(cw, [c / lc for c, lc in zip(C, LC)])
    close(cl, [r / lr for r, lr in zip(R, LR)])
    # pointwise: a sum of a chosen term and a rejected term, so swapping rejected responses between pairs keeps
    # the total (no margin between the two responses enters the loss)
    perm = [1, 0, 3, 2]
    swapped = loss(c, r[perm], None, None, lc, lr[perm])
    assert abs(swapped.sum().item() - loss(c, r, None, None, lc, lr).sum().item()) <= TOL


def ncdpo_by_hand(eps, z):
    return -math.log((1 - eps) * sig(z) + eps * sig(-z))


def test_ncdpo_golden_at_its_initial_rate_and_learned():
    beta, eps = 0.5, 0.2
    loss = losses.get("ncdpo", beta=beta, eps_init=eps)
    assert abs(loss.learned()["eps"] - eps) <= 1e-7 and set(loss.learned()) == {"eps"}
    close(loss(*args()), [ncdpo_by_hand(eps, beta * h) for h in H])
    assert loss.label == "NC-DPO (learned rate)" and not loss.uses_extras
    assert loss.param_lr == losses.defaults("ncdpo")["eps_lr"]
    (theta,) = loss.trainable_parameters()
    assert isinstance(theta, torch.nn.Parameter) and theta.requires_grad and theta.shape == (1,)


def test_ncdpo_flip_rate_gradient_and_zero_at_zero_margin():
    beta, eps = 0.5, 0.2
    loss = losses.get("ncdpo", beta=beta, eps_init=eps)
    loss(*args()).sum().backward()
    (theta,) = loss.trainable_parameters()
    # d/d eps of -log[(1-eps) s(z) + eps s(-z)] = -(s(-z) - s(z)) / [...]; d eps / d theta = eps (1 - 2 eps)
    expected = sum(-(sig(-beta * h) - sig(beta * h)) / ((1 - eps) * sig(beta * h) + eps * sig(-beta * h))
                   for h in H) * eps * (1 - 2 * eps)
    assert abs(theta.grad.item() - expected) <= TOL
    # at z = 0 (the policy is its reference: the first step) the likelihood does not depend on eps at all
    theta.grad = None
    zero = torch.zeros(4, dtype=torch.float64)
    loss(zero, zero, zero, zero).sum().backward()
    assert abs(theta.grad.item()) <= 1e-12


def test_ncdpo_at_a_fixed_rate_is_udpo_plus_a_constant():
    """UDPO = -log(s(z) + c s(-z)), c = eps/(1-eps) = NC-DPO + log(1 - eps): the same gradients in the policy."""
    ncdpo = losses.get("ncdpo", beta=0.5, eps_init=0.2)
    eps = ncdpo.learned()["eps"]  # 0.2 as the float32 parameter holds it
    udpo = losses.get("udpo", beta=0.5, eps=eps)
    a, b = args(requires_grad=True), args(requires_grad=True)
    la, lb = ncdpo(*a), udpo(*b)
    assert torch.allclose(la - lb, torch.full_like(la, -math.log(1 - eps)), atol=1e-12)
    la.sum().backward()
    lb.sum().backward()
    assert torch.allclose(a[0].grad, b[0].grad, atol=1e-12) and torch.allclose(a[1].grad, b[1].grad, atol=1e-12)
    # and it is not cDPO's (1-eps)(-log s(z)) + eps(-log s(-z)), which is the same bound only at eps = 0
    cdpo = losses.get("cdpo", beta=0.5, eps=eps)(*args())
    assert (cdpo - la.detach() > 1e-3).all()  # Jensen: cDPO's mixture of logs bounds the log of the mixture


def _theta_for(rates):
    return torch.tensor([math.log(2 * e / (1 - 2 * e)) for e in rates])  # eps = 0.5 sigmoid(theta)


def test_ncdpo_per_annotator_rates():
    beta, rates = 0.5, [0.05, 0.2, 0.4]
    loss = losses.get("ncdpo", beta=beta, per_annotator=True)
    assert loss.needs_annotators and loss.uses_extras and loss.label == "NC-DPO (learned rate, per annotator)"
    loss.set_annotators(["ann_a", "ann_b", "ann_c"])
    (theta,) = loss.trainable_parameters()
    assert theta.shape == (3,) and theta.requires_grad
    assert all(abs(e - 0.1) <= 1e-7 for e in loss.learned()["eps"].values())  # each starts at eps_init
    with torch.no_grad():
        theta.copy_(_theta_for(rates))
    idx = [0, 2, 1, 2]
    out = loss(*args(), extras={"annotator_idx": torch.tensor(idx)})
    close(out, [ncdpo_by_hand(rates[i], beta * h) for i, h in zip(idx, H)])
    learned = loss.learned()["eps"]
    assert list(learned) == ["ann_a", "ann_b", "ann_c"]
    assert all(abs(learned[k] - e) <= 1e-6 for k, e in zip(learned, rates))
    # the gradient reaches only the rates of the annotators in the batch
    out.sum().backward()
    assert theta.grad[0] != 0 and theta.grad[1] != 0 and theta.grad[2] != 0
    theta.grad = None
    loss(*args(), extras={"annotator_idx": torch.tensor([0, 0, 2, 2])}).sum().backward()
    assert theta.grad[1].item() == 0.0 and theta.grad[0] != 0 and theta.grad[2] != 0
    with pytest.raises(ValueError, match=r"loss 'ncdpo'.*extras is None"):
        loss(*args())
    with pytest.raises(ConfigError, match="no annotator ids"):
        losses.get("ncdpo", per_annotator=True).set_annotators([])
    # a global rate ignores annotators
    glob = losses.get("ncdpo", beta=beta)
    glob.set_annotators(["ann_a", "ann_b"])
    assert glob.trainable_parameters()[0].shape == (1,) and isinstance(glob.learned()["eps"], float)


def test_sppo_hard_golden_and_equals_trl_called():
    beta = 0.5
    loss = losses.get("sppo", beta=beta, variant="hard")
    assert not loss.needs_scores and loss.label == "SPPO (hard)"
    expected = [(uw - 0.5 / beta) ** 2 + (ul + 0.5 / beta) ** 2 for uw, ul in zip(UW, UL)]
    c, r, rc, rr, lc, lr = args()
    ours = loss(c, r, rc, rr, lc, lr)
    close(ours, expected)
    for i in range(len(c)):
        s = slice(i, i + 1)
        assert abs(_trl_compute_loss("sppo_hard", beta, 0.0, c[s], r[s], rc[s], rr[s]).item() - expected[i]) <= TOL
    assert abs(_trl_compute_loss("sppo_hard", beta, 0.0, c, r, rc, rr).item() - ours.mean().item()) <= TOL
    cw, cl = loss.rewards(*args())
    close(cw, [beta * u for u in UW])
    close(cl, [beta * u for u in UL])


def test_sppo_single_golden_and_p1_is_half_the_hard_loss():
    beta = 0.5
    loss = losses.get("sppo", beta=beta, variant="single")
    assert loss.needs_scores and loss.label == "SPPO (single)"
    t = [(sig(m) - 0.5) / beta for m in M]
    expected = [0.5 * ((uw - ti) ** 2 + (ul + ti) ** 2) for uw, ul, ti in zip(UW, UL, t)]
    close(loss(*args(), extras=scores()), expected)
    # p = sigma(100) = 1 in float64: the hard loss's targets, at half its value
    certain = loss(*args(), extras=scores([100.0] * 4, [0.0] * 4))
    hard = losses.get("sppo", beta=beta, variant="hard")(*args())
    assert torch.allclose(certain, 0.5 * hard, atol=1e-12)
    # p = 1/2 (a tie): both log-ratios are pulled to 0
    close(loss(*args(), extras=scores([0.3] * 4, [0.3] * 4)), [0.5 * (uw ** 2 + ul ** 2) for uw, ul in zip(UW, UL)])


def madpo_weight_by_hand(m, c_max=2.0, c_min=0.5, lam=1.0, tau=math.log(999), reset=True):
    a = abs(m)
    c = c_min + (c_max - c_min) / (1 + (c_max - 1) / (1 - c_min) * math.exp(lam * (a - tau)))
    if reset and m <= -tau:
        return 1.0
    return sig(c * m) / sig(m)


def test_madpo_weights_at_the_documented_margins():
    ms = [-8.0, -6.0, -3.0, -1.0, 0.0, 1.0, 3.0]
    documented = [1.00, 0.14, 0.06, 0.45, 1.00, 1.20, 1.05]  # docs/seed_methods.md and the brief, to 2 digits
    by_hand = [madpo_weight_by_hand(m) for m in ms]
    assert all(abs(h - d) <= 0.006 for h, d in zip(by_hand, documented)), by_hand
    mt = torch.tensor(ms, dtype=torch.float64)
    close(losses.get("madpo", tau=math.log(999)).weight(mt), by_hand)
    close(losses.get("madpo").weight(mt), by_hand, tol=1e-5)  # the YAML's tau: log(999) to 6 decimals
    # without the reset, strong disagreement is up-weighted (c < 1 there) instead of reset to 1
    close(losses.get("madpo", tau=math.log(999), reset=False).weight(mt[:1]), [madpo_weight_by_hand(-8, reset=False)])
    assert madpo_weight_by_hand(-8, reset=False) > 9


def test_madpo_golden_and_limit_is_dpo():
    beta = 0.5
    loss = losses.get("madpo", beta=beta, tau=math.log(999))
    close(loss(*args(), extras=scores()), [madpo_weight_by_hand(m) * nls(beta * h) for m, h in zip(M, H)])
    # c_max = c_min = 1 is outside the valid ranges (c_max > 1 > c_min); as both tend to 1 the weight tends to 1
    near = losses.get("madpo", beta=beta, c_max=1 + 1e-9, c_min=1 - 1e-9, reset=False)
    close(near(*args(), extras=scores()), [nls(beta * h) for h in H])
    # a tie (m = 0) has weight 1 whatever c
    close(loss(*args(), extras=scores([0.7] * 4, [0.7] * 4)), [nls(beta * h) for h in H])


@pytest.mark.parametrize("variant", ["smpo", "brain"])
def test_smdpo_golden_and_certain_scorer_is_dpo(variant):
    beta, temp = 0.5, 2.0
    loss = losses.get("smdpo", beta=beta, temperature=temp, variant=variant)
    assert loss.label == f"smoothed DPO ({variant})"
    p = [sig(m / temp) for m in M]
    z = [beta * h for h in H]
    if variant == "smpo":
        expected = [nls((2 * pi - 1) * zi) for pi, zi in zip(p, z)]
    else:
        expected = [pi * nls(zi) + (1 - pi) * nls(-zi) for pi, zi in zip(p, z)]
    close(loss(*args(), extras=scores()), expected)
    # a scorer margin -> +inf: p = 1, DPO at the loss's beta
    dpo = losses.get("dpo", beta=beta)(*args())
    assert torch.allclose(loss(*args(), extras=scores([1e3] * 4, [0.0] * 4)), dpo, atol=1e-12)


def test_smdpo_brain_is_cdpo_with_per_pair_eps():
    """BRAIn's soft label is cDPO with eps = 1 - p per pair; where the scorer disagrees (p < 1/2, so 1 - p is
    outside cDPO's [0, 0.5]) it is cDPO with eps = p on the pair seen from the other side."""
    beta, temp = 0.5, 2.0
    out = losses.get("smdpo", beta=beta, temperature=temp, variant="brain")(*args(), extras=scores())
    c, r, rc, rr, lc, lr = args()
    for i, m in enumerate(M):
        p = sig(m / temp)
        if p >= 0.5:
            expected = losses.get("cdpo", beta=beta, eps=1 - p)(c, r, rc, rr, lc, lr)[i]
        else:
            expected = losses.get("cdpo", beta=beta, eps=p)(r, c, rr, rc, lr, lc)[i]
        assert abs(expected.item() - out[i].item()) <= TOL
    assert min(M) < 0 <= max(M)  # both branches ran


def test_dadpo_golden():
    beta, a_db = 0.5, 0.5
    loss = losses.get("dadpo", beta=beta, a_db=a_db)
    close(loss(*args(), extras=scores()), [nls(a_db * (1 + abs(m)) * beta * h) for m, h in zip(M, H)])
    # a_db 1 and a tie: DPO
    close(losses.get("dadpo", beta=beta, a_db=1.0)(*args(), extras=scores([0.2] * 4, [0.2] * 4)),
          [nls(beta * h) for h in H])


SCORED_BY_HAND = {  # (name, params): the per-pair loss as a function of (z, m), by hand
    ("madpo", ()): lambda z, m: madpo_weight_by_hand(m) * nls(z),
    ("smdpo", (("variant", "smpo"),)): lambda z, m: nls((2 * sig(m) - 1) * z),
    ("smdpo", (("variant", "brain"),)): lambda z, m: sig(m) * nls(z) + (1 - sig(m)) * nls(-z),
    ("dadpo", ()): lambda z, m: nls((1 + abs(m)) * z),
}


@pytest.mark.parametrize("key", list(SCORED_BY_HAND), ids=lambda k: k[0] + "".join(f"-{v}" for _, v in k[1]))
def test_scored_loss_seen_from_the_other_side(key):
    """Swapping chosen/rejected AND their scores (a flip, with the scores flipping with the responses) gives the loss
    of margin -z at scorer margin -m; SmPO and BRAIn are symmetric: a flipped pair's loss is unchanged."""
    name, params = key
    beta = 0.5
    loss = losses.get(name, beta=beta, **dict(params), **({"tau": math.log(999)} if name == "madpo" else {}))
    f = SCORED_BY_HAND[key]
    c, r, rc, rr, lc, lr = args()
    close(loss(c, r, rc, rr, lc, lr, extras=scores()), [f(beta * h, m) for h, m in zip(H, M)])
    flipped = loss(r, c, rr, rc, lr, lc, extras=scores(SR, SC))
    close(flipped, [f(-beta * h, -m) for h, m in zip(H, M)])
    if name == "smdpo":
        close(flipped, [f(beta * h, m) for h, m in zip(H, M)])


def test_sppo_single_is_symmetric_under_a_flip():
    loss = losses.get("sppo", beta=0.5, variant="single")
    c, r, rc, rr, lc, lr = args()
    assert torch.allclose(loss(c, r, rc, rr, lc, lr, extras=scores()),
                          loss(r, c, rr, rc, lr, lc, extras=scores(SR, SC)), atol=1e-12)


@pytest.mark.parametrize("name,params", [("sppo", {"variant": "single"}), ("madpo", {}), ("smdpo", {}),
                                         ("smdpo", {"variant": "brain"}), ("dadpo", {})])
def test_scored_losses_hold_scores_constant_and_need_extras(name, params):
    loss = losses.get(name, **params)
    assert loss.needs_scores and loss.uses_extras
    ex = scores()
    for v in ex.values():
        v.requires_grad_(True)
    c, r, rc, rr, lc, lr = args(requires_grad=True)
    loss(c, r, rc, rr, lc, lr, extras=ex).sum().backward()
    assert c.grad.abs().sum() > 0 and all(v.grad is None for v in ex.values())  # weights/targets are detached
    with pytest.raises(ValueError, match=rf"loss '{name}': extras is None.*set a scorer"):
        loss(*args())


def test_seed_losses_gradient_weights_closed_form():
    beta = 0.5
    z = [beta * h for h in H]
    ex = scores()
    cases = {
        losses.get("ncdpo", beta=beta, eps_init=0.2): [
            (1 - 2 * 0.2) * sig(v) * sig(-v) / ((1 - 0.2) * sig(v) + 0.2 * sig(-v)) for v in z],
        losses.get("dadpo", beta=beta, a_db=1.0): [(1 + abs(m)) * sig(-(1 + abs(m)) * v) for v, m in zip(z, M)],
        losses.get("smdpo", beta=beta, variant="smpo"): [(2 * sig(m) - 1) * sig(-(2 * sig(m) - 1) * v)
                                                         for v, m in zip(z, M)],
        losses.get("madpo", beta=beta, tau=math.log(999)): [madpo_weight_by_hand(m) * sig(-v) for v, m in zip(z, M)],
        losses.get("fdpo", beta=beta, divergence="js", alpha=0.5): None,  # margin beta (psi(u_w) - psi(u_l))
    }
    for loss, expected in cases.items():
        with torch.no_grad():
            diag = loss.diagnostics(*args(), extras=ex) if loss.uses_extras else loss.diagnostics(*args())
        if expected is None:
            zz = [beta * (math.log(sig(a)) - math.log(sig(b))) for a, b in zip(UW, UL)]
            close(diag["margin"], zz)
            close(diag["grad_weight"], [sig(-v) for v in zz])
        else:
            close(diag["margin"], z)
            close(diag["grad_weight"], expected, tol=1e-5)


def test_seed_losses_bad_hyperparameters():
    with pytest.raises(ConfigError, match=r"divergence='kl' is not a valid choice.*'reverse_kl' or "
                                                  r"'forward_kl' or 'js' or 'alpha'"):
        losses.get("fdpo", divergence="kl")
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ConfigError, match=rf"loss 'fdpo': alpha={bad!r} is out of range.*\(0, 1\)"):
            losses.get("fdpo", divergence="alpha", alpha=bad)
    for bad in (1.0, 1.5):
        with pytest.raises(ConfigError, match=rf"loss 'madpo': c_min={bad!r} is out of range.*\[0, 1\)"):
            losses.get("madpo", c_min=bad)
    with pytest.raises(ConfigError, match=r"loss 'madpo': c_max=1.0 is out of range.*\(1, inf\)"):
        losses.get("madpo", c_max=1.0)
    for bad in (0.0, 0.5, 0.7):
        with pytest.raises(ConfigError, match=rf"loss 'ncdpo': eps_init={bad!r} is out of range.*\(0, 0.5\)"):
            losses.get("ncdpo", eps_init=bad)
    with pytest.raises(ConfigError, match=r"variant='soft' is not a valid choice.*'hard' or 'single'"):
        losses.get("sppo", variant="soft")
    with pytest.raises(ConfigError, match=r"variant='smooth'.*'smpo' or 'brain'"):
        losses.get("smdpo", variant="smooth")
    with pytest.raises(ConfigError, match=r"temperature=0"):
        losses.get("smdpo", temperature=0)
    with pytest.raises(ConfigError, match=r"a_db=0"):
        losses.get("dadpo", a_db=0)
    with pytest.raises(ConfigError, match=r"lam=-0.1"):
        losses.get("asft", lam=-0.1)
    with pytest.raises(ConfigError, match=r"alpha=-1"):
        losses.get("anchored", alpha=-1)
