"""The clipped policy loss: closed forms, on-policy identity, zero-spread groups, clipping and dual clip
(docs/RL.md §2, §4, §14)."""

import math

import pytest
import torch
from algo_toy import ToyPolicy

from r1lab.algo import group_advantages, kl_estimate, policy_loss
from r1lab.algo.aggregation import count_sequences, count_tokens

D = torch.float64


def _hand_batch():
    """Two rows; row 0 (A = +1) ratios 1.1, 1.5, 0.9; row 1 (A = -1) ratios 0.7, 1.0 and a pad."""
    old = torch.zeros(2, 3, dtype=D)
    logp = torch.log(torch.tensor([[1.1, 1.5, 0.9], [0.7, 1.0, 5.0]], dtype=D))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=D)
    adv = torch.tensor([1.0, -1.0], dtype=D)
    return logp, old, adv, mask


def test_clipped_surrogate_closed_form_per_aggregation():
    logp, old, adv, mask = _hand_batch()
    # per-token losses: row 0: -1.1, -1.2 (clipped at 1 + 0.2), -0.9; row 1: 0.8 (clipped at 1 - 0.2), 1.0
    seq = 0.5 * ((-1.1 - 1.2 - 0.9) / 3 + (0.8 + 1.0) / 2)
    tok = (-1.1 - 1.2 - 0.9 + 0.8 + 1.0) / 5
    const = (-1.1 - 1.2 - 0.9 + 0.8 + 1.0) / (2 * 10)
    for agg, want in [("seq_mean", seq), ("token_mean", tok), ("constant", const)]:
        loss, _ = policy_loss(logp, old, adv, mask, agg=agg, max_len=10)
        assert loss.item() == pytest.approx(want, abs=1e-12), agg


def test_clip_higher_and_unclipped():
    logp, old, adv, mask = _hand_batch()
    loss, _ = policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28, agg="token_mean")
    assert loss.item() == pytest.approx((-1.1 - 1.28 - 0.9 + 0.8 + 1.0) / 5)
    loss, m = policy_loss(logp, old, adv, mask, eps_low=None, eps_high=None, agg="token_mean")
    assert loss.item() == pytest.approx((-1.1 - 1.5 - 0.9 + 0.7 + 1.0) / 5)
    assert m["clip_ratio/region_mean"] == 0.0


def test_metrics_closed_form():
    logp, old, adv, mask = _hand_batch()
    _, m = policy_loss(logp, old, adv, mask)
    assert m["num_tokens"] == 5
    assert m["clip_ratio/high_mean"] == pytest.approx(1 / 5)  # 1.5 with A > 0
    assert m["clip_ratio/low_mean"] == pytest.approx(1 / 5)  # 0.7 with A < 0
    assert m["clip_ratio/region_mean"] == pytest.approx(2 / 5)
    assert m["ratio_mean"] == pytest.approx((1.1 + 1.5 + 0.9 + 0.7 + 1.0) / 5)
    assert (m["ratio_min"], m["ratio_max"]) == (pytest.approx(0.7), pytest.approx(1.5))  # the pad's 5.0 is ignored
    assert "kl" not in m


def test_kl_in_loss_adds_beta_times_k3():
    logp, old, adv, mask = _hand_batch()
    ref = logp + math.log(2.0)  # log r = log 2 everywhere: k3 = 1 - log 2
    base, _ = policy_loss(logp, old, adv, mask, agg="seq_mean")
    with_kl, m = policy_loss(logp, old, adv, mask, ref, beta=0.04, kl="k3", agg="seq_mean")
    k3 = 1 - math.log(2)
    assert with_kl.item() == pytest.approx(base.item() + 0.04 * k3)
    assert m["kl"] == pytest.approx(k3)
    # with beta 0 the KL is only reported
    no_beta, m0 = policy_loss(logp, old, adv, mask, ref, beta=0.0)
    assert no_beta.item() == base.item() and m0["kl"] == pytest.approx(k3)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, old, adv, mask, beta=0.1)


def test_on_policy_ratio_is_one_and_gradient_is_reinforce(rollout):
    """mu = 1, first update: rho == 1 exactly, nothing clipped, gradient == -sum m A grad(lp) / normaliser."""
    adv = group_advantages(rollout.rewards, rollout.group_size)
    for agg in ("seq_mean", "token_mean", "constant"):
        pol = ToyPolicy()
        logp = pol(rollout.inputs, rollout.targets)
        loss, m = policy_loss(logp, logp.detach(), adv, rollout.mask, agg=agg, max_len=8)
        assert m["ratio_min"] == 1.0 and m["ratio_max"] == 1.0
        assert m["clip_ratio/region_mean"] == 0.0
        loss.backward()
        got = pol.grads()

        ref_pol = ToyPolicy()
        lp = ref_pol(rollout.inputs, rollout.targets)
        weighted = -(adv[:, None] * lp * rollout.mask)  # REINFORCE with a group baseline
        n_tok, n_seq = count_tokens(rollout.mask), count_sequences(rollout.mask)
        if agg == "seq_mean":
            reinforce = (weighted.sum(1) / rollout.mask.sum(1)).sum() / n_seq
        elif agg == "token_mean":
            reinforce = weighted.sum() / n_tok
        else:
            reinforce = weighted.sum() / (n_seq * 8)
        reinforce.backward()
        for a, b in zip(got, ref_pol.grads()):
            assert torch.allclose(a, b, atol=1e-12), agg
        if agg == "seq_mean":  # the "loss is 0" confusion: value 0, gradient not
            assert abs(loss.item()) < 1e-12
            assert max(g.abs().max().item() for g in got) > 1e-3


def test_zero_spread_group_gives_zero_gradient(rollout):
    adv = group_advantages(rollout.rewards, rollout.group_size)
    flat = rollout.rows(slice(0, rollout.group_size))  # the group whose rewards are all 0.1
    pol = ToyPolicy()
    for agg in ("seq_mean", "token_mean"):
        pol.zero_grad()
        logp = pol(flat.inputs, flat.targets)
        loss, _ = policy_loss(logp, flat.old_logp, adv[: rollout.group_size], flat.mask, agg=agg)
        loss.backward()
        assert loss.item() == 0.0
        assert all(torch.count_nonzero(g) == 0 for g in pol.grads())


def test_clipped_tokens_have_zero_gradient_and_fractions_match():
    g = torch.Generator().manual_seed(3)
    B, T = 16, 9
    old = torch.randn(B, T, generator=g, dtype=D)
    logp = (old + 0.5 * torch.randn(B, T, generator=g, dtype=D)).requires_grad_()
    adv = torch.randn(B, generator=g, dtype=D)
    mask = (torch.rand(B, T, generator=g) > 0.2).to(D)
    loss, m = policy_loss(logp, old, adv, mask, eps_low=0.2, eps_high=0.28, agg="token_mean")
    loss.backward()
    ratio = torch.exp(logp.detach() - old)
    a = adv[:, None].expand(B, T)
    low = (ratio < 0.8) & (a < 0) & (mask > 0)
    high = (ratio > 1.28) & (a > 0) & (mask > 0)
    assert low.any() and high.any()
    assert torch.count_nonzero(logp.grad[low | high]) == 0
    assert torch.count_nonzero(logp.grad[mask == 0]) == 0
    assert (logp.grad[~(low | high) & (mask > 0)] != 0).all()
    n = mask.sum()
    assert m["clip_ratio/low_mean"] == pytest.approx(float(low.sum() / n))
    assert m["clip_ratio/high_mean"] == pytest.approx(float(high.sum() / n))
    assert m["clip_ratio/region_mean"] == pytest.approx(float((low | high).sum() / n))


def test_dual_clip_caps_negative_advantage_loss():
    old = torch.zeros(1, 4, dtype=D)
    logp = torch.log(torch.tensor([[0.5, 2.0, 5.0, 10.0]], dtype=D)).requires_grad_()
    adv = torch.tensor([-2.0], dtype=D)
    mask = torch.ones(1, 4, dtype=D)
    loss, m = policy_loss(logp, old, adv, mask, dual_clip=3.0, agg="token_mean")
    # per token max(-rho A, -clip(rho) A) = 1.6, 4, 10, 20, then capped at -c A = 6: 1.6, 4, 6, 6
    assert loss.item() == pytest.approx((1.6 + 4 + 6 + 6) / 4)
    loss.backward()
    assert logp.grad[0, 2:].abs().max() == 0  # capped tokens carry no gradient
    assert logp.grad[0, 1] != 0
    assert m["clip_ratio/dual_mean"] == pytest.approx(0.5)
    # positive advantages are never capped
    loss_pos, _ = policy_loss(logp.detach(), old, -adv, mask, dual_clip=3.0, agg="token_mean")
    assert loss_pos.item() == pytest.approx(-2 * (0.5 + 1.2 + 1.2 + 1.2) / 4)
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(logp, old, adv, mask, dual_clip=1.0)


def test_per_token_advantages_and_bias_corrected_kl():
    logp, old, _, mask = _hand_batch()
    adv_tok = torch.tensor([[1.0, 0.0, 2.0], [-1.0, 0.5, 9.0]], dtype=D)
    loss, _ = policy_loss(logp, old, adv_tok, mask, agg="token_mean")
    assert loss.item() == pytest.approx((-1.1 + 0.0 - 1.8 + 0.8 - 0.5) / 5)
    ref = logp + math.log(2.0)
    k3 = 1 - math.log(2)
    plain, _ = policy_loss(logp, old, adv_tok, mask, ref, beta=1.0, agg="token_mean")
    corrected, _ = policy_loss(logp, old, adv_tok, mask, ref, beta=1.0, agg="token_mean", kl_ratio_correction=True)
    assert plain.item() == pytest.approx(loss.item() + k3)
    assert corrected.item() == pytest.approx(loss.item() + k3 * (1.1 + 1.5 + 0.9 + 0.7 + 1.0) / 5)


def test_bf16_inputs_computed_in_fp32():
    logp, old, adv, mask = _hand_batch()
    loss, _ = policy_loss(logp.to(torch.bfloat16), old.to(torch.bfloat16), adv, mask)
    assert loss.dtype == torch.float32


def test_kl_metric_matches_estimator(rollout):
    adv = group_advantages(rollout.rewards, rollout.group_size)
    lp = ToyPolicy()(rollout.inputs, rollout.targets).detach()
    _, m = policy_loss(lp, rollout.old_logp, adv, rollout.mask, rollout.ref_logp, beta=0.1, kl="k2")
    k2 = kl_estimate(lp, rollout.ref_logp, "k2")
    assert m["kl"] == pytest.approx(float((k2 * rollout.mask).sum() / rollout.mask.sum()))
