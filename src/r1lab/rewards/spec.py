"""A reward as configuration: a registered name, its weight in the sum and its parameters (`RewardSpec`), and
the combined reward a list of them builds, shared by RL, rejection sampling and anything else that scores."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pydantic import Field

from r1lab.config import StrictModel
from r1lab.rewards.combine import combine_rewards


class RewardSpec(StrictModel):
    """One reward function of `r1lab.rewards` (by registered name), its weight and its parameters."""

    name: str = Field(..., description="registered reward name (r1lab reward list)")
    weight: float = Field(1.0, description="weight in the summed reward")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the reward's factory")


def build_reward(specs: Sequence[RewardSpec], overrides: dict[str, Callable] | None = None):
    """`r1lab.rewards.combine_rewards` over the specs; `overrides` maps names to ready functions (tests, custom code)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"reward names must be unique, got {names}")
    return combine_rewards({s.name: s.weight for s in specs}, {s.name: s.params for s in specs if s.params},
                           {k: v for k, v in (overrides or {}).items() if k in names})
