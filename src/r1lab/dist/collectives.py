"""Small collectives the stages need: sums of Python numbers, gathering Python objects (rollouts, metrics)
in rank order, and contiguous sharding of rows. Each is the identity in a single process."""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

from r1lab.dist.env import is_initialized, rank, world_size

T = TypeVar("T")


def all_reduce_sum(value: float) -> float:
    """Σ over ranks of a Python number (in float64, so counts up to 2^53 stay exact)."""
    if not is_initialized():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item())


def gather_objects(local: Sequence[T]) -> list[T]:
    """Every rank's list, concatenated in rank order, on every rank (picklable items only)."""
    if not is_initialized():
        return list(local)
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, list(local))
    return [item for part in parts for item in part]


def broadcast_object(obj: T, src: int = 0) -> T:
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard_range(n: int, rank_: int | None = None, world: int | None = None) -> range:
    """Rank `rank_`'s contiguous share of n items; shares differ in size by at most one, earlier ranks first.

    Concatenating the shares of ranks 0..W-1 gives 0..n-1 in order, which is what makes gathered results equal
    to the single-process ones.
    """
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return range(start, start + base + (1 if r < extra else 0))


def shard_list(items: Sequence[T]) -> list[T]:
    return [items[i] for i in shard_range(len(items))]
