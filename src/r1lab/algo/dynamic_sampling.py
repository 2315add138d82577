"""DAPO dynamic sampling (docs/RL.md §6): keep only groups whose rewards differ, sampling more rounds
until the batch holds exactly the target number of groups.

A group whose rewards are all equal (all right or all wrong) has zero advantage everywhere: it costs
compute and shrinks the effective batch. The filter is pure; generating the groups is the caller's
`sample_fn(round_index)`, so the same helper serves the RL stage and the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

G = TypeVar("G")


def _default_rewards(group: Any) -> Sequence[float]:
    return group.rewards if hasattr(group, "rewards") else group["rewards"]


def has_reward_spread(rewards: Sequence[float]) -> bool:
    """True when the rewards are not all identical (exact comparison, like `zero_spread_groups`)."""
    vals = [float(r) for r in rewards]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"group rewards must be finite numbers, got {vals}")
    return len(vals) > 1 and max(vals) != min(vals)


@dataclass
class FillResult(Generic[G]):
    """`groups` holds exactly n_groups (in sampling order) when `ok`; fewer otherwise."""

    groups: list[G] = field(default_factory=list)
    ok: bool = False
    rounds: int = 0
    sampled: int = 0  # groups generated over all rounds
    dropped: int = 0  # zero-spread groups discarded
    surplus: int = 0  # valid groups generated beyond the target and discarded

    def describe(self, n_groups: int) -> str:
        return (
            f"dynamic sampling kept {len(self.groups)}/{n_groups} groups after {self.rounds} round(s): "
            f"{self.sampled} sampled, {self.dropped} had zero reward spread"
        )


def fill_batch(
    sample_fn: Callable[[int], Sequence[G]],
    n_groups: int,
    max_rounds: int,
    rewards_of: Callable[[G], Sequence[float]] = _default_rewards,
) -> FillResult[G]:
    """Call `sample_fn(0), sample_fn(1), ...` (each returns a list of groups) until `n_groups` groups with
    non-zero reward spread are collected or `max_rounds` rounds are spent; never returns a zero-spread group.
    """
    if n_groups < 1 or max_rounds < 1:
        raise ValueError(f"n_groups and max_rounds must be >= 1, got {n_groups} and {max_rounds}")
    result: FillResult[G] = FillResult()
    for round_index in range(max_rounds):
        batch = list(sample_fn(round_index))
        result.rounds += 1
        result.sampled += len(batch)
        for group in batch:
            if not has_reward_spread(rewards_of(group)):
                result.dropped += 1
            elif len(result.groups) < n_groups:
                result.groups.append(group)
            else:
                result.surplus += 1
        if len(result.groups) == n_groups:
            result.ok = True
            break
    return result
