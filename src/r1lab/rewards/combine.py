"""Weighted sums of rewards that keep every component for logging (R1 sums accuracy and language consistency).

`combine_rewards({"accuracy": 1.0, "format": 0.5})` returns a reward function (same TRL signature) whose
total for a completion is Σ weight·value over the components that apply to it; components returning None
are left out (NaN-aware, as TRL's nansum), and a completion no component applies to totals None.
`.score(...)` returns the totals together with every component's values (thread-safe); calling the
function also stores that breakdown in `.last` for a logger to read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from r1lab.errors import ConfigError
from r1lab.rewards.registry import RewardFn, get_reward


@dataclass(frozen=True)
class RewardBreakdown:
    total: list[float | None]
    components: dict[str, list[float | None]]
    weights: dict[str, float]

    def means(self) -> dict[str, float]:
        """Mean of each component and of the total over the completions it applies to (NaN if none), for logs."""
        out = {}
        for name, values in [*self.components.items(), ("total", self.total)]:
            applicable = [v for v in values if v is not None]
            out[name] = sum(applicable) / len(applicable) if applicable else math.nan
        return out


def weighted_total(values: list[float | None], weights: list[float]) -> float | None:
    terms = [w * v for v, w in zip(values, weights) if v is not None]
    return sum(terms) if terms else None


class CombinedReward:
    def __init__(self, components: Mapping[str, RewardFn], weights: Mapping[str, float]):
        self.components = dict(components)
        self.weights = {name: float(weights[name]) for name in self.components}
        self.last: RewardBreakdown | None = None
        self.__name__ = "+".join(self.components)

    def score(self, completions, **columns: Any) -> RewardBreakdown:
        values = {name: list(fn(completions, **columns)) for name, fn in self.components.items()}
        for name, vs in values.items():
            if len(vs) != len(completions):
                raise ValueError(f"reward {name!r} returned {len(vs)} values for {len(completions)} completions")
        names = list(values)
        totals = [
            weighted_total([values[n][i] for n in names], [self.weights[n] for n in names]) for i in range(len(completions))
        ]
        return RewardBreakdown(total=totals, components=values, weights=dict(self.weights))

    def __call__(self, completions, **columns: Any) -> list[float | None]:
        breakdown = self.score(completions, **columns)
        self.last = breakdown
        return breakdown.total


def combine_rewards(
    spec: Mapping[str, float],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    functions: Mapping[str, Callable] | None = None,
) -> CombinedReward:
    """Weighted combination. `spec`: name -> weight; `params`: name -> `get_reward` parameters;
    `functions`: name -> a reward function to use instead of the registry (e.g. an open-r1 reward)."""
    if not spec:
        raise ConfigError("combine_rewards: the reward spec is empty")
    params = dict(params or {})
    functions = dict(functions or {})
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ConfigError(f"combine_rewards: parameters given for rewards not in the spec: {', '.join(unknown)}")
    components = {}
    for name, weight in spec.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
            raise ConfigError(f"combine_rewards: weight of {name!r} must be a finite number, got {weight!r}")
        components[name] = functions[name] if name in functions else get_reward(name, **params.get(name, {}))
    return CombinedReward(components, spec)
