"""DAPO dynamic sampling and overlong filtering (docs/RL.md §6, §14)."""

import random

import pytest
import torch

from r1lab.algo import fill_batch, has_reward_spread, mask_truncated


def _sampler(seed: int, per_round: int, p_flat: float, group_size: int = 4):
    rng = random.Random(seed)
    calls = []

    def sample(round_index: int):
        calls.append(round_index)
        groups = []
        for k in range(per_round):
            if rng.random() < p_flat:
                rewards = [rng.choice([0.0, 1.0, 0.25])] * group_size
            else:
                rewards = [float(rng.random() < 0.5) for _ in range(group_size - 1)] + [0.5]
            groups.append({"id": (round_index, k), "rewards": rewards})
        return groups

    return sample, calls


@pytest.mark.parametrize("seed", range(5))
def test_keeps_batch_size_and_never_emits_zero_spread(seed):
    sample, calls = _sampler(seed, per_round=8, p_flat=0.6)
    res = fill_batch(sample, n_groups=8, max_rounds=50)
    assert res.ok and len(res.groups) == 8
    assert all(has_reward_spread(g["rewards"]) for g in res.groups)
    assert res.rounds == len(calls) and calls == list(range(res.rounds))
    assert res.sampled == 8 * res.rounds == len(res.groups) + res.dropped + res.surplus
    ids = [g["id"] for g in res.groups]
    assert ids == sorted(ids)  # sampling order is kept


def test_reports_failure_when_rounds_run_out():
    sample, calls = _sampler(0, per_round=4, p_flat=1.0)
    res = fill_batch(sample, n_groups=2, max_rounds=3)
    assert not res.ok and res.groups == [] and res.rounds == 3 and res.dropped == 12
    assert "0/2 groups after 3 round(s)" in res.describe(2)


def test_attribute_rewards_and_custom_accessor():
    class Group:
        def __init__(self, r):
            self.rewards = r

    res = fill_batch(lambda i: [Group([1, 1]), Group([0, 1])], n_groups=1, max_rounds=1)
    assert res.ok and res.groups[0].rewards == [0, 1] and res.dropped == 1
    res = fill_batch(lambda i: [(0.0, 0.3)], n_groups=1, max_rounds=1, rewards_of=lambda g: g)
    assert res.ok


def test_spread_is_exact_and_rewards_must_be_finite():
    assert not has_reward_spread([0.1, 0.1, 0.1])
    assert not has_reward_spread([1.0])
    assert has_reward_spread([0.1, 0.1 + 1e-12])
    with pytest.raises(ValueError, match="finite"):
        has_reward_spread([0.0, float("nan")])
    with pytest.raises(ValueError):
        fill_batch(lambda i: [], n_groups=0, max_rounds=1)


def test_mask_truncated_zeroes_whole_rows():
    m = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=torch.float32)
    out = mask_truncated(m, torch.tensor([False, True, False]))
    assert out.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert mask_truncated(m.bool(), torch.tensor([True, False, False])).tolist() == [
        [False, False, False], [True, True, True], [True, False, False]]
