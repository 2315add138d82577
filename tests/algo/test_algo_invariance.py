"""Invariance of the loss and its gradient to how the step batch is split, padded and ordered
(docs/RL.md §14)."""

import pytest
import torch
from algo_toy import Rollout, ToyPolicy, make_rollout

from r1lab.algo import get_aggregation, group_advantages, list_aggregations, policy_loss
from r1lab.train.core.loop import aggregate_metrics

INVARIANT = [a for a in list_aggregations() if get_aggregation(a).invariant]
OPTIONS = [
    dict(),
    dict(beta=0.05, kl="k3", dual_clip=3.0, eps_high=0.28),
    dict(eps_low=None, eps_high=None, beta=0.1, kl="k2"),
]


def _loss(pol, ro: Rollout, adv, agg, opts):
    logp = pol(ro.inputs, ro.targets)
    loss, metrics = policy_loss(logp, ro.old_logp, adv, ro.mask, ro.ref_logp, agg=agg, max_len=8, **opts)
    return loss, metrics


def _full(ro, adv, agg, opts):
    pol = ToyPolicy()
    loss, _ = _loss(pol, ro, adv, agg, opts)
    loss.backward()
    return loss.item(), pol.grads()


def _accumulated(ro, adv, agg, opts, splits, scale=1.0, total_weight=None):
    """Gradient accumulation over `splits` (lists of row indices) as the training loop does it: each micro-batch's
    loss weighted by its count in the aggregation's normaliser over the step batch's total (all ranks' total,
    all-reduced, when given)."""
    weight = get_aggregation(agg).weight
    if total_weight is None:
        total_weight = sum(weight(ro.mask[torch.tensor(rows)]) for rows in splits)
    pol = ToyPolicy()
    total = 0.0
    for rows in splits:
        idx = torch.tensor(rows)
        loss, _ = _loss(pol, ro.rows(idx), adv[idx], agg, opts)
        share = loss * weight(ro.mask[idx]) / total_weight
        (share * scale).backward()
        total += share.item()
    return total, pol.grads()


def _assert_same(a, b):
    assert a[0] == pytest.approx(b[0], abs=1e-12)
    for x, y in zip(a[1], b[1]):
        assert torch.allclose(x, y, atol=1e-12)


@pytest.mark.parametrize("agg", INVARIANT)
@pytest.mark.parametrize("opts", OPTIONS)
def test_micro_batch_and_accumulation_invariance(agg, opts):
    ro = make_rollout(seed=1)
    adv = group_advantages(ro.rewards, ro.group_size)
    full = _full(ro, adv, agg, opts)
    B = ro.mask.shape[0]
    for splits in ([list(range(B))], [[i] for i in range(B)], [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]],
                   [[3, 7, 11], [0, 5], [1, 2, 4, 6, 8, 9, 10]]):
        _assert_same(_accumulated(ro, adv, agg, opts, splits), full)


@pytest.mark.parametrize("agg", INVARIANT)
def test_world_size_invariance(agg):
    """Ranks share the all-reduced total weight; DDP averaging times world_size is the loop's gradient sum."""
    ro = make_rollout(seed=2)
    adv = group_advantages(ro.rewards, ro.group_size)
    full = _full(ro, adv, agg, OPTIONS[1])
    B = ro.mask.shape[0]
    for world in (1, 2, 4):
        ranks = [list(range(r, B, world)) for r in range(world)]
        W = sum(get_aggregation(agg).weight(ro.mask[torch.tensor(rows)]) for rows in ranks)  # the all-reduce
        per_rank = [_accumulated(ro, adv, agg, OPTIONS[1], [rows[: 2], rows[2:]], scale=world, total_weight=W)
                    for rows in ranks]
        averaged = [sum(gs) / world for gs in zip(*(g for _, g in per_rank))]
        _assert_same((sum(l for l, _ in per_rank), averaged), full)


def test_local_token_mean_is_flagged_and_not_invariant():
    assert get_aggregation("token_mean_local").invariant is False
    ro = make_rollout(seed=1)
    adv = group_advantages(ro.rewards, ro.group_size)
    full = _full(ro, adv, "token_mean_local", {})
    split = _accumulated(ro, adv, "token_mean_local", {}, [[0, 1], list(range(2, 12))])
    assert abs(split[0] - full[0]) > 1e-4


def _repad(ro: Rollout, width: int, left: bool, garbage: float = 123.0) -> Rollout:
    """Move every row's tokens into a wider tensor, right- or left-aligned, padding with garbage."""
    B, T = ro.mask.shape
    out = {k: torch.full((B, width), garbage, dtype=torch.float64) for k in ("mask", "old_logp", "ref_logp")}
    ids = {k: torch.zeros((B, width), dtype=torch.long) for k in ("inputs", "targets")}
    out["mask"].zero_()
    for i in range(B):
        n = int(ro.mask[i].sum())
        dst = slice(width - n, width) if left else slice(0, n)
        for k in out:
            out[k][i, dst] = getattr(ro, k)[i, :n]
        for k in ids:
            ids[k][i, dst] = getattr(ro, k)[i, :n]
    return Rollout(ids["inputs"], ids["targets"], out["mask"], out["old_logp"], out["ref_logp"], ro.rewards, ro.group_size)


@pytest.mark.parametrize("agg", INVARIANT)
def test_padding_alignment_and_order_invariance(agg):
    ro = make_rollout(seed=4)
    adv = group_advantages(ro.rewards, ro.group_size)
    full = _full(ro, adv, agg, OPTIONS[1])
    T = ro.mask.shape[1]
    _assert_same(_full(_repad(ro, T + 5, left=False), adv, agg, OPTIONS[1]), full)
    _assert_same(_full(_repad(ro, T + 3, left=True), adv, agg, OPTIONS[1]), full)
    # permute whole groups and the rows inside each group
    G = ro.group_size
    order = [g * G + j for g in (2, 0, 3, 1) for j in reversed(range(G))]
    idx = torch.tensor(order)
    _assert_same(_full(ro.rows(idx), adv[idx], agg, OPTIONS[1]), full)


def test_fully_masked_rows_are_as_if_absent():
    """Overlong-filtered rows leave the numerator and both normalisers (docs/RL.md §14)."""
    ro = make_rollout(seed=5)
    adv = group_advantages(ro.rewards, ro.group_size)
    keep = torch.tensor([i for i in range(12) if i not in (4, 9)])
    masked = ro.rows(torch.arange(12))
    masked.mask = ro.mask.clone()
    masked.mask[[4, 9]] = 0
    for agg in INVARIANT:
        _assert_same(_full(masked, adv, agg, OPTIONS[0]), _full(ro.rows(keep), adv[keep], agg, OPTIONS[0]))


def test_constant_normaliser_uses_max_len_not_width():
    ro = make_rollout(seed=6)
    adv = group_advantages(ro.rewards, ro.group_size)
    a = _full(ro, adv, "constant", {})
    b = _full(_repad(ro, 20, left=False), adv, "constant", {})
    _assert_same(a, b)
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(ro.old_logp, ro.old_logp, adv, ro.mask, agg="constant")


def test_merged_micro_batch_metrics_equal_full_batch_metrics():
    """The loop's metric merge (token-weighted for token_mean) gives the full batch's metrics."""
    ro = make_rollout(seed=1)
    adv = group_advantages(ro.rewards, ro.group_size)
    opts = dict(beta=0.05, kl="k3", dual_clip=3.0)
    _, full = _loss(ToyPolicy(), ro, adv, "token_mean", opts)
    parts, weights = [], []
    for rows in ([0, 5, 7], [1, 2, 3, 4], [6, 8, 9, 10, 11]):
        idx = torch.tensor(rows)
        parts.append(_loss(ToyPolicy(), ro.rows(idx), adv[idx], "token_mean", opts)[1])
        weights.append(get_aggregation("token_mean").weight(ro.mask[idx]))
    merged = aggregate_metrics(parts, weights)
    assert merged.keys() == full.keys()
    for key in full:
        assert merged[key] == pytest.approx(full[key], abs=1e-12), key
