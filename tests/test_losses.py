"""Golden-value and property tests for the loss registry (bench/losses/).

Expected values are computed by hand from the formulas in docs/losses.md with plain ``math``
(never by calling the code under test). Inputs are float64 so that 1e-6 is a meaningful tolerance.
"""
from __future__ import annotations

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
from bench.losses import HyperparameterError, LossContractError, UnknownNameError

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
    }
    assert {n: losses.get(n).params for n in losses.names()} == expected


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


def _trl_compute_loss(loss_type, beta, label_smoothing, c, r, rc, rr):
    """Call TRL 1.16's own DPOTrainer._compute_loss on a stub trainer and model returning the given log-probs."""
    from trl.trainer.dpo_trainer import DPOTrainer

    n, width = len(c), 3
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
        ld_alpha=None, precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=[loss_type],
        loss_weights=[1.0], beta=beta, label_smoothing=label_smoothing, use_weighting=False,
        aux_loss_enabled=False, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1,
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
        out = losses.get(name)(c, r, rc, rr, lc, lr)
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
        assert set(cfg) - {"name"} == set(type(loss).hyperparameters), stem
        assert loss.name == stem and loss.label and isinstance(loss.params, dict)
        assert isinstance(loss.needs_reference_model, bool) and isinstance(loss.length_normalized, bool)
        assert "#" in (CONF / f"{stem}.yaml").read_text(), f"{stem}.yaml should cite its source in a comment"


def test_unknown_name_did_you_mean():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'dpo'") as err:
        losses.get("dpoo")
    assert "simpo" in str(err.value)  # lists the valid choices
    with pytest.raises(UnknownNameError, match=r"'simpo'"):
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
    with pytest.raises(HyperparameterError, match="noise_rate"):
        losses.from_config({"name": "rdpo", "eps": "oracle"})
    with pytest.raises(HyperparameterError, match=r"oracle.*0\.5|0\.5.*oracle"):  # rDPO cannot take noise 0.5
        losses.from_config({"name": "rdpo", "eps": "oracle"}, noise_rate=0.5)
    with pytest.raises(HyperparameterError, match="from_config"):
        losses.get("rdpo", eps="oracle")


def test_bad_hyperparameters_name_field_and_range():
    with pytest.raises(HyperparameterError, match=r"beta=0.*\(0, inf\)"):
        losses.get("dpo", beta=0)
    with pytest.raises(HyperparameterError, match=r"beta='0.1'.*not a number"):
        losses.get("dpo", beta="0.1")
    with pytest.raises(HyperparameterError, match="not a number"):
        losses.get("dpo", beta=True)
    with pytest.raises(HyperparameterError, match=r"eps=0.5.*\[0, 0.5\).*1 - 2\*eps"):
        losses.get("rdpo", eps=0.5)
    with pytest.raises(HyperparameterError, match=r"eps=-0.1.*\[0, 0.5\]"):
        losses.get("cdpo", eps=-0.1)
    with pytest.raises(HyperparameterError, match=r"alpha=0"):
        losses.get("ropo", alpha=0)
    with pytest.warns(UserWarning, match="alpha > 2"):
        losses.get("ropo", alpha=1.5)
    with pytest.raises(HyperparameterError, match=r"tau=-1"):
        losses.get("ipo", tau=-1)
    with pytest.raises(HyperparameterError, match=r"unknown hyperparameter\(s\) beta; valid: tau"):
        losses.get("ipo", beta=0.1)
    with pytest.raises(HyperparameterError, match=r"unknown hyperparameter\(s\) gamma_beta_ratio; valid: beta, gamma"):
        losses.get("simpo", gamma_beta_ratio=0.5)
    with pytest.raises(HyperparameterError, match=r"variant='relu'.*'sigmoid' or 'ramp'"):
        losses.get("sympo", variant="relu")
    with pytest.raises(HyperparameterError, match=r"beta_prime=0"):
        losses.get("drdpo", beta_prime=0.0)
    with pytest.raises(HyperparameterError, match="missing hyperparameter 'beta'"):
        losses.DPO()  # built-in defaults come from the YAML, through get()


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
    hyperparameters = {"beta": losses.BETA, "g": losses.Param(default=2.0, low=0.0)}

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
    rdpo = losses.from_config({"_target_": "bench.losses.RDPO", "beta": 0.1, "eps": "oracle"}, noise_rate=0.25)
    assert rdpo.params["eps"] == 0.25 and rdpo.eps_source == "oracle"
    # the user's own validation errors surface as such
    with pytest.raises(HyperparameterError, match="g=-1"):
        losses.from_config({"_target_": f"{__name__}.FocalDPO", "beta": 0.5, "g": -1}, noise_rate=0.0)
    with pytest.raises(LossContractError, match=r"missing needs_reference_model, length_normalized, params, "
                                                r"rewards\(\), diagnostics\(\)"):
        losses.from_config({"_target_": f"{__name__}.NotALoss"}, noise_rate=0.0)
