"""Scoring rollouts with the reward library: weighted reward functions over completion texts + dataset columns.

A reward returns a float or None per completion (None: not applicable); the total is the weighted sum of the
applicable values (TRL's nansum), so a missing reward neither adds nor NaN-poisons the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import Field

from r1lab.config import StrictModel

ACCURACY = "accuracy"


class RewardSpec(StrictModel):
    """One reward function of `r1lab.rewards` (by registered name), its weight and its parameters."""

    name: str = Field(..., description="registered reward name (r1lab reward list)")
    weight: float = Field(1.0, description="weight in the summed reward")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters of the reward's factory")


@dataclass
class ScoredGroup:
    """One prompt and its G completions with their rewards (a unit for dynamic sampling)."""

    record: dict
    completions: list[Any]
    rewards: list[float]  # weighted total per completion
    per_function: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def correct(self) -> list[bool] | None:
        values = self.per_function.get(ACCURACY)
        return None if values is None else [v is not None and v >= 1.0 - 1e-9 for v in values]


RewardFn = Callable[..., list]


def build_reward_fns(specs: Sequence[RewardSpec], overrides: dict[str, RewardFn] | None = None) -> list[tuple[str, RewardFn, float]]:
    """(name, fn, weight) per spec; `overrides` maps names to ready functions (tests, custom code)."""
    overrides = overrides or {}
    out = []
    for spec in specs:
        if spec.name in overrides:
            fn = overrides[spec.name]
        else:
            from r1lab.rewards import get_reward

            fn = get_reward(spec.name, **spec.params)
        out.append((spec.name, fn, spec.weight))
    return out


def score_group(record: dict, completions: Sequence[Any], reward_fns: Sequence[tuple[str, RewardFn, float]],
                prefill: str = "") -> ScoredGroup:
    """Rewards of one prompt's completions; columns follow the reward API (answer, task, metadata, prefill,
    completion_ids, prompts, plus any `lang`/`tests` field of the record)."""
    n = len(completions)
    texts = [c.text for c in completions]
    columns: dict[str, Any] = {
        "answer": [record.get("answer")] * n,
        "task": [record.get("task")] * n,
        "metadata": [record.get("metadata")] * n,
        "prefill": [prefill] * n,
        "completion_ids": [list(c.token_ids) for c in completions],
        "prompts": [record.get("prompt")] * n,
    }
    for extra in ("lang", "tests"):
        if extra in record:
            columns[extra] = [record[extra]] * n
    total = [0.0] * n
    per_function: dict[str, list[float | None]] = {}
    for name, fn, weight in reward_fns:
        values = list(fn(texts, **columns))
        if len(values) != n:
            raise ValueError(f"reward {name!r} returned {len(values)} values for {n} completions")
        per_function[name] = [None if v is None else float(v) for v in values]
        for i, v in enumerate(per_function[name]):
            if v is not None and v == v:  # skip None and NaN
                total[i] += weight * v
    return ScoredGroup(record=record, completions=list(completions), rewards=total, per_function=per_function)
