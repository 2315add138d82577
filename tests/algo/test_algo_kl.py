"""KL estimators k1/k2/k3 (docs/RL.md §3, §14)."""

import math

import pytest
import torch

from r1lab.algo import kl_estimate


def test_closed_form_values():
    lp = torch.tensor([math.log(0.5)], dtype=torch.float64)
    ref = torch.tensor([math.log(0.25)], dtype=torch.float64)  # log r = log 0.5
    assert kl_estimate(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_estimate(lp, ref, "k2").item() == pytest.approx(0.5 * math.log(2) ** 2)
    assert kl_estimate(lp, ref, "k3").item() == pytest.approx(0.5 - 1 + math.log(2))


def test_k3_nonnegative_and_zero_iff_equal():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(1000, generator=g, dtype=torch.float64) * 3
    ref = torch.randn(1000, generator=g, dtype=torch.float64) * 3
    k3 = kl_estimate(lp, ref, "k3")
    assert (k3 >= 0).all() and (k3 > 0).all()
    assert torch.equal(kl_estimate(lp, lp.clone(), "k3"), torch.zeros(1000, dtype=torch.float64))
    assert (kl_estimate(lp, ref, "k1") < 0).any()  # k1 can be negative, k3 cannot


def test_k3_is_clamped():
    lp = torch.tensor([0.0, 0.0])
    ref = torch.tensor([50.0, -50.0])
    k3 = kl_estimate(lp, ref, "k3")
    assert k3[0].item() == 10.0  # log r clamped to 20: exp(20) - 21, then the value clamped to 10
    assert k3[1].item() == 10.0  # log r clamped to -20: exp(-20) + 19, clamped to 10


def test_estimators_average_to_the_true_kl():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    true_kl = float((p * (p / q).log()).sum())
    g = torch.Generator().manual_seed(0)
    idx = torch.multinomial(p, 200_000, replacement=True, generator=g)
    lp, ref = p.log()[idx], q.log()[idx]
    for kind in ("k1", "k3"):  # unbiased estimators
        assert kl_estimate(lp, ref, kind).mean().item() == pytest.approx(true_kl, rel=0.02)


def test_k3_gradient_is_one_minus_r_times_grad_logp():
    lp = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([-1.5, -0.5], dtype=torch.float64)
    kl_estimate(lp, ref, "k3").sum().backward()
    r = torch.exp(ref - lp.detach())
    assert torch.allclose(lp.grad, 1 - r)


def test_unknown_kind():
    with pytest.raises(ValueError, match="k1"):
        kl_estimate(torch.zeros(1), torch.zeros(1), "k4")
