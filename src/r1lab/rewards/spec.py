"""A reward as configuration: a registered name, its weight in the sum and its parameters (`RewardSpec`), and
the combined reward a list of them builds, shared by RL, rejection sampling and anything else that scores."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pydantic import Field

from r1lab.config import StrictModel
from r1lab.errors import ConfigError
from r1lab.rewards.combine import combine_rewards
from r1lab.rewards.foreign import adapt_foreign
from r1lab.rewards.registry import get_reward, list_rewards


class RewardSpec(StrictModel):
    """One reward function of `r1lab.rewards` (by registered name), its weight and its parameters."""

    name: str = Field(..., description="registered reward name (r1lab reward list), or 'package.module:function' "
                                        "for a TRL / open-r1 / your own reward function")
    weight: float = Field(1.0, description="weight in the summed reward")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the reward's factory")
    columns: dict[str, str] = Field(default_factory=dict, description="imported rewards: their column name -> "
                                    "r1lab's (TRL's rewards read `solution`: {solution: answer})")
    conversational: bool = Field(False, description="imported rewards: pass completions as one-message "
                                 "conversations, as TRL's own reward functions expect")

    @property
    def imported(self) -> bool:
        return ":" in self.name and self.name not in list_rewards()


def build_reward(specs: Sequence[RewardSpec], overrides: dict[str, Callable] | None = None):
    """`r1lab.rewards.combine_rewards` over the specs; `overrides` maps names to ready functions (tests, custom code)."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"reward names must be unique, got {names}")
    bad = [s.name for s in specs if (s.columns or s.conversational) and not s.imported]
    if bad:
        raise ConfigError(f"reward {bad[0]!r}: 'columns' and 'conversational' are for imported "
                          "('module:function') rewards; r1lab's own read r1lab's columns")
    imported = {s.name: adapt_foreign(get_reward(s.name, **s.params), s.columns, s.conversational)
                for s in specs if s.imported}
    overrides = {**imported, **(overrides or {})}
    return combine_rewards({s.name: s.weight for s in specs}, {s.name: s.params for s in specs if s.params},
                           {k: v for k, v in (overrides or {}).items() if k in names})
