"""Contiguous sharding: the ranks' shares partition 0..n-1 in order, differ in size by at most one, and are the
identity in a single process (what makes gathered rollouts and metrics equal the single-process ones)."""

from __future__ import annotations

import pytest

from r1lab.dist import DistConfig, setup_data_parallel, shard_range
from r1lab.dist.data_parallel import DataParallel


@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (7, 2), (8, 4), (5, 3), (3, 8)])
def test_shards_partition_the_rows_in_order(n, world):
    shares = [shard_range(n, r, world) for r in range(world)]
    assert [i for s in shares for i in s] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_single_process_is_untouched():
    assert shard_range(5) == range(5)
    assert setup_data_parallel(DistConfig()) is None  # no torchrun: the loop runs as before


def test_global_micro_batch_rows_are_split_by_rank():
    import torch

    dp = DataParallel(DistConfig())
    dp.rank, dp.world = 1, 2
    batch = {"input_ids": torch.arange(10).view(5, 2), "labels": torch.arange(10).view(5, 2), "scale": torch.tensor(3.0)}
    mine = dp.shard_batch(object(), batch)
    assert mine["input_ids"].tolist() == [[6, 7], [8, 9]] and mine["scale"] == 3.0
