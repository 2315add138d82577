"""Group-relative and leave-one-out advantages against closed forms (docs/RL.md §2, §14)."""

import math

import pytest
import torch

from r1lab.algo import (
    get_advantage,
    group_advantages,
    list_advantages,
    rloo_advantages,
    zero_spread_groups,
)

R = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0], dtype=torch.float64)


def test_group_scale_bessel_closed_form():
    adv = group_advantages(R, 4, scale="group", eps=0.0, std_unbiased=True)
    # group 1: mean 0.25, Bessel std sqrt((0.5625 + 3 * 0.0625) / 3) = 0.5
    # group 2: mean 5, Bessel std sqrt(20 / 3)
    s2 = math.sqrt(20 / 3)
    expected = [1.5, -0.5, -0.5, -0.5, -3 / s2, -1 / s2, 1 / s2, 3 / s2]
    assert adv.tolist() == pytest.approx(expected, abs=1e-12)


def test_group_scale_population_std_and_eps():
    adv = group_advantages(R, 4, scale="group", eps=0.1, std_unbiased=False)
    s1, s2 = math.sqrt(0.75 / 4), math.sqrt(5.0)
    expected = [0.75 / (s1 + 0.1)] + [-0.25 / (s1 + 0.1)] * 3 + [d / (s2 + 0.1) for d in (-3, -1, 1, 3)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-12)


def test_batch_scale_uses_group_mean_and_batch_std():
    adv = group_advantages(R, 4, scale="batch", eps=0.0, std_unbiased=True)
    s = float(R.std(unbiased=True))
    expected = [d / s for d in (0.75, -0.25, -0.25, -0.25, -3, -1, 1, 3)]
    assert adv.tolist() == pytest.approx(expected, abs=1e-12)


def test_no_scale_is_centred_rewards():
    adv = group_advantages(R, 4, scale="none")
    assert adv.tolist() == [0.75, -0.25, -0.25, -0.25, -3.0, -1.0, 1.0, 3.0]


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_zero_spread_groups_get_exactly_zero(scale):
    # 0.1 * 3 / 3 != 0.1 in floating point: r - mean is ~1e-17 and /(std + eps) would amplify it
    r = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7, 0.0, 1.0, 0.5], dtype=torch.float32)
    adv = group_advantages(r, 3, scale=scale, eps=1e-6)
    assert torch.equal(adv[:6], torch.zeros(6))
    assert (adv[6:] != 0).sum() == 2
    assert zero_spread_groups(r, 3).tolist() == [True, True, False]


def test_group_mean_zero_and_affine_invariance():
    g = torch.Generator().manual_seed(1)
    r = torch.rand(32, generator=g, dtype=torch.float64)
    adv = group_advantages(r, 8, eps=0.0)
    assert adv.reshape(4, 8).mean(1).abs().max() < 1e-12
    adv2 = group_advantages(3.0 * r - 7.0, 8, eps=0.0)
    assert torch.allclose(adv, adv2, atol=1e-10)


def test_rloo_closed_form_and_relation_to_centred():
    adv = rloo_advantages(R, 4)
    assert adv[:4].tolist() == pytest.approx([1.0, -1 / 3, -1 / 3, -1 / 3])
    assert adv[4].item() == pytest.approx(2.0 - 6.0)  # others: (4 + 6 + 8) / 3
    assert torch.allclose(adv, group_advantages(R, 4, scale="none") * 4 / 3)
    assert torch.equal(rloo_advantages(torch.full((4,), 0.3), 2), torch.zeros(4))


def test_registry_and_input_checks():
    assert {"grpo", "rloo"} <= set(list_advantages())
    assert get_advantage("rloo") is rloo_advantages
    with pytest.raises(KeyError, match="unknown advantage"):
        get_advantage("nope")
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="NaN"):
        group_advantages(torch.tensor([0.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(torch.zeros(4), 2, scale="global")
