"""One rule for deriving the seed of every random stream from a run's seed, so streams never collide by accident
and a run is reproducible from its config alone."""

from __future__ import annotations

SEED_STRIDE = 1_000_003  # prime: base seeds that differ never share a stream for offsets below it
CYCLE_STRIDE = 1_009  # prime: successive rollout cycles
RANK_STRIDE = 104_729  # prime: data-parallel ranks sample different streams


def derive_seed(seed: int, index: int = 0, *, cycle: int = 0, rank: int = 0) -> int:
    """The seed of stream `index` (an epoch, a batch, a sampling round) of rollout `cycle` on `rank`."""
    return seed * SEED_STRIDE + cycle * CYCLE_STRIDE + index + RANK_STRIDE * rank
