"""Every loss's gradient at z = 0 relative to DPO's, and two exact identities over flip masks (docs/losses.md,
"Gradient at z = 0, relative to DPO").

Part 1. Near the reference policy (z = 0) every reference-anchored loss pushes along DPO's direction with some
scale. ``GRADIENT_TABLE`` holds that scale, derived by hand from each loss's formula at its ``conf/loss/<name>.yaml``
values; the test measures it by autograd, as the trainer does (``loss(...).mean()`` differentiated with respect to
the policy's summed log-probs of the chosen and of the rejected response), and divides by the same derivative of DPO
built on the loss's own rewards convention: ``-log sigma(z)`` with ``z = PairLoss.rewards`` (``scale * log-ratio``,
``scale`` the loss's beta, 1 where it has none; per-token where the loss is length-normalized; no reference for a
reference-free loss). So the number is ``(d loss / d z) / (-1/2)`` for ``z`` on DPO's scale, 1 for DPO itself.

Part 2. A flip swaps chosen and rejected (so ``z -> -z``). Enumerating every flip mask of a small batch exactly,
with weights ``eps^k (1 - eps)^(n - k)``: E[DPO] = cDPO(eps) on the clean labels, and E[rDPO(eps)] = clean DPO.
"""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from bench import losses
from bench.losses import PairLoss

REL = 1e-6  # relative tolerance of the gradient table (float64)
DT = torch.float64

# the batch at which z = 0: four pairs, completion lengths of the chosen and of the rejected responses
LEN_W = (10, 20, 40, 80)
LEN_L = (15, 5, 40, 100)
# the scorer margins m = s_w - s_l of the four pairs, fixed here for the losses that read scores (madpo, smdpo,
# dadpo, sppo[single]); m = -8 is beyond MADPO's reset threshold -tau = -log 999
M = (0.0, 1.0, -1.0, -8.0)
# annotator ids of the four pairs, for ncdpo[per_annotator]
ANNOTATORS = (0, 1, 0, 1)


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def madpo_w(m: float, c_max=2.0, c_min=0.5, lam=1.0, tau=6.906755, reset=True) -> float:
    """MADPO's weight w = sigma(c(|m|) m) / sigma(m), c(a) = c_min + (c_max - c_min)/(1 + k e^(lam (a - tau)))."""
    if reset and m <= -tau:
        return 1.0
    k = (c_max - 1) / (1 - c_min)
    c = c_min + (c_max - c_min) / (1 + k * math.exp(lam * (abs(m) - tau)))
    return sig(c * m) / sig(m)


# key: (params, weight on the chosen log-prob, weight on the rejected log-prob; None = the same, a margin loss).
# A key without "[...]" is a registered loss at its YAML values, and params must equal them (so that a changed YAML
# fails here, not silently); "name[...]" is a variant built with get(name, **params). A tuple is one value per pair
# of the batch above (the loss reads lengths or scores); z = 0 means policy = reference (u_w = u_l = 0), or for a
# reference-free loss equal per-token log-probs, both -log 2 (SimPO's logged margin 0; ASFT's odds P/(1-P) = 1).
GRADIENT_TABLE: dict[str, tuple[dict, float | tuple, float | tuple | None]] = {
    # -log sigma(z): d/dz = -sigma(-z) = -1/2 at 0, the unit
    "dpo": ({"beta": 0.1}, 1.0, None),
    # -(1-eps) log sigma(z) - eps log sigma(-z): d/dz = -(1-eps) sigma(-z) + eps sigma(z) = -(1 - 2 eps)/2
    "cdpo": ({"beta": 0.1, "eps": 0.1}, 1 - 2 * 0.1, None),
    # [-(1-eps) log sigma(z) + eps log sigma(-z)]/(1-2eps): d/dz = -[(1-eps) + eps]/2/(1-2eps) = -1/(2(1-2eps))
    "rdpo": ({"beta": 0.1, "eps": 0.1}, 1 / (1 - 2 * 0.1), None),
    # -log sigma(-z) - log(e^z + c): d/dz = sigma(z) - e^z/(e^z + c) = 1/2 - 1/(1 + c) = 1/2 - (1 - eps)
    "udpo": ({"beta": 0.1, "eps": 0.1}, 1 - 2 * 0.1, None),
    # c[-log sigma(z) + a sigma(-z)], c = 4a/(1+a)^2: d/dz = -c sigma(-z)(1 + a sigma(z)) = -c(1 + a/2)/2; 1.991
    "ropo": ({"beta": 0.1, "alpha": 14.0}, 4 * 14 / 15**2 * (1 + 14 * 0.5), None),
    # sigma(-z): d/dz = -sigma(z) sigma(-z) = -1/4 (rewards 0, inside the clip at +-10)
    "sympo": ({"beta": 0.1, "variant": "sigmoid", "clip": 10.0}, 0.5, None),
    # -beta' log mean exp(-l_i/beta'): pair i's DPO gradient times softmax_i(-l/beta') = 1/N (all l_i = log 2)
    "drdpo": ({"beta": 0.1, "beta_prime": 1.0}, 1.0, None),
    # max(0, 1 - z): d/dz = -1 while z < 1
    "hinge": ({"beta": 0.1}, 2.0, None),
    # (h_bar - 1/(2 tau))^2, margin h_bar (per-token, no beta): d/dh_bar = -1/tau = -10 at 0, so 2/tau = 20
    "ipo": ({"tau": 0.1}, 2 / 0.1, None),
    # -log sigma(z - gamma), z = beta(lbar_w - lbar_l) the logged margin = 0: d/dz = -sigma(gamma); 2 sigma(1) = 1.462
    "simpo": ({"beta": 2.0, "gamma": 1.0}, 2 * sig(1.0), None),
    # js: -log sigma(beta(psi(u_w) - psi(u_l))), psi = log sigma, psi'(0) = 1/2: DPO's pull, halved
    "fdpo": ({"beta": 0.1, "divergence": "js", "alpha": 0.5}, 0.5, None),
    # hard: (u_w - 1/(2beta))^2 + (u_l + 1/(2beta))^2: d/du_w = -1/beta, DPO's -beta/2: 2/beta^2 = 200
    "sppo": ({"beta": 0.1, "variant": "hard"}, 2 / 0.1**2, None),
    # -w(m) log sigma(z): d/dz = -w/2; w(0) = 1, w(1) = 1.204, w(-1) = 0.447, w(-8) = 1 (reset, m <= -tau)
    "madpo": ({"beta": 0.1, "c_max": 2.0, "c_min": 0.5, "lam": 1.0, "tau": 6.906755, "reset": True},
              tuple(madpo_w(m) for m in M), None),
    # smpo: -log sigma((2p-1) z), p = sigma(m/T): d/dz = -(2p-1)/2, i.e. 2 sigma(m) - 1 = tanh(m/2) at T = 1
    "smdpo": ({"beta": 0.1, "temperature": 1.0, "variant": "smpo"}, tuple(2 * sig(m) - 1 for m in M), None),
    # -log sigma(a_db (1 + |m|) z): d/dz = -a_db (1 + |m|)/2
    "dadpo": ({"beta": 0.1, "a_db": 1.0}, tuple(1.0 * (1 + abs(m)) for m in M), None),
    # -log[(1-eps) sigma(z) + eps sigma(-z)], eps = eps_init at the start: d/dz = -(1 - 2 eps)/2, as UDPO
    "ncdpo": ({"beta": 0.1, "eps_init": 0.1, "eps_lr": 0.01, "per_annotator": False}, 1 - 2 * 0.1, None),
    # -log sigma(z) + alpha (-c_w/|y_w|): rejected as DPO; chosen adds alpha/|y_w| to DPO's beta/2: 1 + 2 alpha/(beta |y_w|)
    "anchored": ({"beta": 0.1, "alpha": 1.0, "reference_free": False},
                 tuple(1 + 2 * 1.0 / (0.1 * n) for n in LEN_W), 1.0),
    # -(1+lam) lbar_w - lam log(1 - e^lbar_l), no margin: chosen -(1+lam) always; rejected lam e^l/(1-e^l) = lam at P 1/2
    "asft": ({"lam": 0.1}, 2 * (1 + 0.1), 2 * 0.1),
    # ---- variants (other hyperparameters; same derivations)
    "cdpo[eps=0.4]": ({"eps": 0.4}, 1 - 2 * 0.4, None),
    "rdpo[eps=0.4]": ({"eps": 0.4}, 1 / (1 - 2 * 0.4), None),
    "udpo[eps=0.4]": ({"eps": 0.4}, 1 - 2 * 0.4, None),
    "ropo[alpha=4]": ({"alpha": 4.0}, 4 * 4 / 5**2 * (1 + 4 * 0.5), None),  # 16/25 * 3 = 1.92
    "sympo[ramp]": ({"variant": "ramp"}, 1.0, None),  # clip(0.5 - 0.5 z, 0, 1): d/dz = -1/2 inside
    "drdpo[beta_prime=0.1]": ({"beta_prime": 0.1}, 1.0, None),  # still uniform softmax at z = 0
    "ipo[tau=0.5]": ({"tau": 0.5}, 2 / 0.5, None),
    "simpo[gamma=0]": ({"gamma": 0.0}, 1.0, None),  # gamma 0: plain DPO on beta-scaled per-token log-probs
    "fdpo[reverse_kl]": ({"divergence": "reverse_kl"}, 1.0, None),  # psi(u) = u
    "fdpo[forward_kl]": ({"divergence": "forward_kl"}, 1.0, None),  # psi = -e^-u, psi'(0) = 1
    "fdpo[alpha]": ({"divergence": "alpha", "alpha": 0.5}, 1.0, None),  # psi = -e^(-a u)/a, psi'(0) = 1
    # single: 0.5[(u_w - t)^2 + (u_l + t)^2], t = (sigma(m) - 1/2)/beta: d/du_w = -t, so (2 sigma(m) - 1)/beta^2
    "sppo[single]": ({"variant": "single"}, tuple((2 * sig(m) - 1) / 0.1**2 for m in M), None),
    # brain: -[p log sigma(z) + (1-p) log sigma(-z)]: d/dz = -(2p - 1)/2 as smpo
    "smdpo[brain]": ({"variant": "brain"}, tuple(2 * sig(m) - 1 for m in M), None),
    # without the reset, m = -8 weighs sigma(c(8)(-8))/sigma(-8) = 9.7: the reset is what stops it
    "madpo[reset=false]": ({"reset": False}, tuple(madpo_w(m, reset=False) for m in M), None),
    "dadpo[a_db=0.5]": ({"a_db": 0.5}, tuple(0.5 * (1 + abs(m)) for m in M), None),
    "ncdpo[per_annotator]": ({"per_annotator": True}, 1 - 2 * 0.1, None),  # every annotator starts at eps_init
    "anchored[reference_free]": ({"reference_free": True}, tuple(1 + 2 * 1.0 / (0.1 * n) for n in LEN_W), 1.0),
    "asft[lam=1]": ({"lam": 1.0}, 2 * (1 + 1.0), 2 * 1.0),
}


def _base(key: str) -> str:
    return key.split("[")[0]


def _build(key: str) -> PairLoss:
    params = GRADIENT_TABLE[key][0]
    loss = losses.get(key) if "[" not in key else losses.get(_base(key), **params)
    if loss.needs_annotators:
        loss.set_annotators(["a", "b"])
    return loss


def _at_zero(loss: PairLoss):
    """Leaf log-probs (chosen, rejected) and the trainer's six arguments and extras, at z = 0 for ``loss``."""
    lw, ll = torch.tensor(LEN_W, dtype=DT), torch.tensor(LEN_L, dtype=DT)
    cw = -math.log(2) * lw  # per-token log-prob -log 2
    cl = -math.log(2) * ll if loss.length_normalized or loss.needs_reference_model else cw.clone()
    cw, cl = cw.clone().requires_grad_(True), cl.clone().requires_grad_(True)
    ref = (cw.detach().clone(), cl.detach().clone()) if loss.needs_reference_model else (None, None)
    args = (cw, cl, *ref, lw, ll)
    extras = {}
    if loss.needs_scores:
        extras["score_chosen"] = torch.tensor(M, dtype=DT)
        extras["score_rejected"] = torch.zeros(len(M), dtype=DT)
    if loss.needs_annotators:
        extras["annotator_idx"] = torch.tensor(ANNOTATORS)
    return cw, cl, args, (extras if loss.uses_extras else None)


def _call(loss: PairLoss, args, extras) -> torch.Tensor:
    return loss(*args, extras=extras) if loss.uses_extras else loss(*args)  # as bench/training/trainer.py


def _relative_weights(loss: PairLoss) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) per pair: d mean-loss / d log-prob over the same for DPO on the loss's own rewards."""
    cw, cl, args, extras = _at_zero(loss)
    gw, gl = torch.autograd.grad(_call(loss, args, extras).mean(), (cw, cl))
    chosen, rejected = PairLoss.rewards(loss, *args)  # the base class's: scale * log-ratio, DPO's convention
    z = chosen - rejected
    assert torch.equal(z, torch.zeros_like(z)), f"{loss.name}: the test point is not at z = 0: {z}"
    rw, rl = torch.autograd.grad((-F.logsigmoid(z)).mean(), (cw, cl))
    return gw / rw, gl / rl


def _expected(value) -> torch.Tensor:
    return torch.tensor(value if isinstance(value, tuple) else (value,) * len(LEN_W), dtype=DT)


def _assert_rel(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    # relative 1e-6; zeros (a scorer margin of 0 gives no push) are compared absolutely
    torch.testing.assert_close(got, expected, rtol=REL, atol=1e-12, msg=lambda m: f"{what}: {m}")


def test_every_registered_loss_has_a_row():
    rows = {k for k in GRADIENT_TABLE if "[" not in k}
    missing = sorted(set(losses.names()) - rows)
    assert not missing, f"registered losses without a row in GRADIENT_TABLE (derive their weight at z = 0): {missing}"
    assert not rows - set(losses.names()), f"rows for losses no longer registered: {sorted(rows - set(losses.names()))}"
    assert {_base(k) for k in GRADIENT_TABLE} <= set(losses.names())


@pytest.mark.parametrize("name", [k for k in GRADIENT_TABLE if "[" not in k])
def test_table_assumes_the_yaml_values(name):
    # each row is derived at the values of conf/loss/<name>.yaml: a changed YAML must be re-derived
    assert losses.get(name).params == GRADIENT_TABLE[name][0]


def test_dpo_gradient_in_z_is_minus_one_half():
    z = torch.zeros(3, dtype=DT, requires_grad=True)
    (g,) = torch.autograd.grad(losses.get("dpo").loss_of_margin(z).sum(), z)
    assert torch.equal(g, torch.full_like(g, -0.5))
    # and through the log-probs: beta/2 per pair of the mean over N pairs
    dpo = losses.get("dpo", beta=0.3)
    cw, cl, args, _ = _at_zero(dpo)
    gw, gl = torch.autograd.grad(dpo(*args).mean(), (cw, cl))
    torch.testing.assert_close(gw, torch.full_like(gw, -0.3 / 2 / len(LEN_W)), rtol=1e-15, atol=0)
    torch.testing.assert_close(gl, -gw, rtol=1e-15, atol=0)


@pytest.mark.parametrize("key", list(GRADIENT_TABLE))
def test_gradient_at_zero_relative_to_dpo(key):
    _, chosen, rejected = GRADIENT_TABLE[key]
    loss = _build(key)
    rel_w, rel_l = _relative_weights(loss)
    _assert_rel(rel_w, _expected(chosen), f"{key}, chosen")
    _assert_rel(rel_l, _expected(chosen if rejected is None else rejected), f"{key}, rejected")


@pytest.mark.parametrize("key", list(GRADIENT_TABLE))
def test_diagnostics_grad_weight_agrees(key):
    """``diagnostics()["grad_weight"]`` (-d loss/d own margin) times d own margin / d z gives the table's value."""
    loss = _build(key)
    if type(loss).forward is not PairLoss.forward:  # not a function of a margin: no grad_weight
        assert "grad_weight" not in loss.diagnostics(*_at_zero(loss)[2])
        pytest.skip(f"{key}: not a function of its margin (forward is its own)")
    cw, cl, args, extras = _at_zero(loss)
    diag = loss.diagnostics(*args, extras=extras)  # every loss's diagnostics take extras (None: it reads none)
    # the chain factor from DPO's z to the loss's own margin (psi'(u) for f-DPO, 1 for the others)
    (own,) = torch.autograd.grad(loss.rewards(*args)[0].sum(), cw)
    (dpo,) = torch.autograd.grad(PairLoss.rewards(loss, *args)[0].sum(), cw)
    _assert_rel(2 * diag["grad_weight"] * own / dpo, _expected(GRADIENT_TABLE[key][1]), key)


# ---------------------------------------------------------------------------------------------------------------
# exact identities over all flip masks


def _noisy_batch(n: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c, r = -20 + 5 * torch.randn(n, generator=g, dtype=DT), -20 + 5 * torch.randn(n, generator=g, dtype=DT)
    rc, rr = c - 10 * torch.randn(n, generator=g, dtype=DT), r - 10 * torch.randn(n, generator=g, dtype=DT)
    return c, r, rc, rr


def _flip_expectation(loss: PairLoss, batch, eps: float) -> torch.Tensor:
    """Per-pair E[loss] over every flip mask, mask weight eps^k (1-eps)^(n-k); a flip swaps chosen and rejected."""
    c, r, rc, rr = batch
    n = len(c)
    total, weight = torch.zeros(n, dtype=DT), 0.0
    for mask in itertools.product((False, True), repeat=n):
        f = torch.tensor(mask)
        k = sum(mask)
        w = eps**k * (1 - eps) ** (n - k)
        flipped = (torch.where(f, r, c), torch.where(f, c, r), torch.where(f, rr, rc), torch.where(f, rc, rr))
        total = total + w * loss(*flipped)
        weight += w
    assert abs(weight - 1) <= 1e-12
    return total


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.4])
def test_dpo_averaged_over_flips_is_cdpo(eps):
    batch = _noisy_batch()
    z = losses.get("dpo").margin(*batch)
    assert (z > 0.5).any() and (z < -0.5).any(), z  # margins of order 1, both signs
    noisy_dpo = _flip_expectation(losses.get("dpo"), batch, eps)
    cdpo = losses.get("cdpo", eps=eps)(*batch)
    torch.testing.assert_close(noisy_dpo, cdpo, rtol=0, atol=1e-12)
    assert abs(noisy_dpo.mean().item() - cdpo.mean().item()) <= 1e-12
    # not by accident: at another eps the two differ by (eps' - eps) z per pair
    wrong = losses.get("cdpo", eps=eps / 2)(*batch)
    assert (noisy_dpo - wrong).abs().max() > 1e-3
    torch.testing.assert_close(wrong - noisy_dpo, -(eps / 2) * z, rtol=0, atol=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.4])
def test_rdpo_averaged_over_flips_is_clean_dpo(eps):
    batch = _noisy_batch()
    clean = losses.get("dpo")(*batch)
    noisy_rdpo = _flip_expectation(losses.get("rdpo", eps=eps), batch, eps)
    torch.testing.assert_close(noisy_rdpo, clean, rtol=0, atol=1e-12)
    assert abs(noisy_rdpo.mean().item() - clean.mean().item()) <= 1e-12
    # not by accident: rDPO corrected for the wrong rate is biased
    for wrong_eps in (eps / 2, min(eps + 0.05, 0.45)):
        biased = _flip_expectation(losses.get("rdpo", eps=wrong_eps), batch, eps)
        assert (biased - clean).abs().max() > 1e-3, wrong_eps
