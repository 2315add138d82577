"""GAE, per-token rewards, whitening and the clipped value loss (docs/RL.md §8)."""

import pytest
import torch

from r1lab.algo import gae, outcome_token_rewards, value_loss, whiten

D = torch.float64


def test_gae_three_token_closed_form():
    r = torch.tensor([[0.0, 0.0, 1.0]], dtype=D)
    v = torch.tensor([[0.5, 0.6, 0.7]], dtype=D)
    m = torch.ones(1, 3, dtype=D)
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    # d2 = 1 - 0.7 = 0.3; d1 = 0.9 * 0.7 - 0.6 = 0.03; d0 = 0.9 * 0.6 - 0.5 = 0.04
    # A2 = 0.3; A1 = 0.03 + 0.72 * 0.3 = 0.246; A0 = 0.04 + 0.72 * 0.246 = 0.21712
    assert adv[0].tolist() == pytest.approx([0.21712, 0.246, 0.3])
    assert ret[0].tolist() == pytest.approx([0.71712, 0.846, 1.0])


def test_gamma_lambda_one_is_return_minus_value():
    r = torch.tensor([[0.0, 0.0, 1.0]], dtype=D)
    v = torch.tensor([[0.5, 0.6, 0.7]], dtype=D)
    adv, ret = gae(r, v, torch.ones(1, 3, dtype=D))
    assert adv[0].tolist() == pytest.approx([0.5, 0.4, 0.3])
    assert ret[0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_masked_positions_are_skipped_and_padding_is_irrelevant():
    r = torch.tensor([[0.0, 0.0, 1.0]], dtype=D)
    v = torch.tensor([[0.5, 0.6, 0.7]], dtype=D)
    base, _ = gae(r, v, torch.ones(1, 3, dtype=D), gamma=0.9, lam=0.8)
    # left pad, a masked token in the middle (tool output), right pad: garbage there changes nothing
    r2 = torch.tensor([[9.0, 0.0, 9.0, 0.0, 1.0, 9.0]], dtype=D)
    v2 = torch.tensor([[9.0, 0.5, 9.0, 0.6, 0.7, 9.0]], dtype=D)
    m2 = torch.tensor([[0, 1, 0, 1, 1, 0]], dtype=D)
    adv, ret = gae(r2, v2, m2, gamma=0.9, lam=0.8)
    assert adv[0, [1, 3, 4]].tolist() == pytest.approx(base[0].tolist())
    assert adv[0, [0, 2, 5]].tolist() == [0.0, 0.0, 0.0] and ret[0, [0, 2, 5]].tolist() == [0.0, 0.0, 0.0]


def test_outcome_token_rewards_with_kl_in_reward():
    scores = torch.tensor([1.0, -0.5], dtype=D)
    m = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]], dtype=D)
    kl = torch.full((2, 4), 0.5, dtype=D)
    r = outcome_token_rewards(scores, m, kl, kl_coef=0.1)
    assert torch.allclose(r, torch.tensor([[-0.05, -0.05, 0.95, 0.0], [0.0, -0.05, -0.55, 0.0]], dtype=D))
    with pytest.raises(ValueError, match="unmasked"):
        outcome_token_rewards(scores, torch.zeros(2, 4))


def test_whiten_masked_statistics():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, -50.0]], dtype=D)
    m = torch.tensor([[1, 1, 0], [1, 1, 0]], dtype=D)
    w = whiten(x, m, eps=0.0)
    vals = w[m > 0]
    assert vals.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert vals.std(unbiased=False).item() == pytest.approx(1.0)
    assert w[m == 0].tolist() == [0.0, 0.0]
    unshifted = whiten(x, m, eps=0.0, shift_mean=False)
    assert unshifted[0, 0].item() == pytest.approx(1.0 / (1.25 ** 0.5))


def test_value_loss_closed_form_and_clip_fraction():
    v = torch.tensor([[1.0, 0.0, 2.0]], dtype=D, requires_grad=True)
    v_old = torch.tensor([[0.5, 0.0, 0.0]], dtype=D)
    ret = torch.tensor([[0.0, 1.0, 2.0]], dtype=D)
    m = torch.ones(1, 3, dtype=D)
    loss, metrics = value_loss(v, v_old, ret, m, clip_eps=0.2)
    # token 0: unclipped 1, clipped (0.7 - 0)^2 = 0.49 -> 1; token 1: 1 and 1 -> 1; token 2: 0 vs (0.2 - 2)^2 = 3.24
    assert loss.item() == pytest.approx(0.5 * (1 + 1 + 3.24) / 3)
    assert metrics["vf_clipfrac"] == pytest.approx(1 / 3)
    loss.backward()
    assert v.grad[0, 2].item() == 0.0  # clipped branch wins: no gradient through V
    unclipped, _ = value_loss(v, v_old, ret, m, clip_eps=None)
    assert unclipped.item() == pytest.approx(0.5 * (1 + 1 + 0) / 3)
