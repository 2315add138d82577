"""Scoring rollouts with the reward library: weighted reward functions over completion texts + dataset columns.

A reward returns a float or None per completion (None: not applicable); `r1lab.rewards.combine_rewards` sums the
applicable values with their weights (TRL's nansum) and keeps every component for the per-function metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from r1lab.rewards.columns import record_columns

ACCURACY = "accuracy"


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


def score_group(record: dict, completions: Sequence[Any], reward: Any, prefill: str = "") -> ScoredGroup:
    """Rewards of one prompt's completions; columns follow the reward API (answer, task, metadata, prefill,
    completion_ids, prompts, plus any `lang`/`tests` field of the record). A completion no reward applies
    to scores 0."""
    n = len(completions)
    texts = [c.text for c in completions]
    columns = record_columns(record, n, prefill=prefill, prompts=record.get("prompt"))
    columns["completion_ids"] = [list(c.token_ids) for c in completions]
    breakdown = reward.score(texts, **columns)
    total = [0.0 if v is None else float(v) for v in breakdown.total]
    per_function = {name: [None if v is None else float(v) for v in vals] for name, vals in breakdown.components.items()}
    return ScoredGroup(record=record, completions=list(completions), rewards=total, per_function=per_function)
