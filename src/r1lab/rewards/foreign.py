"""Reward functions written for TRL or open-r1, called the way they expect.

Their signature is r1lab's (``fn(completions, **columns)``), but two conventions differ: TRL's own rewards read
conversational completions (``[{"role": "assistant", "content": ...}]``) and name the gold column `solution`
where r1lab's records say `answer`. `adapt_foreign` bridges both, and puts the template's prefill (``<think>\\n``)
back in front of each completion, as r1lab's own rewards do, so a format check sees the whole R1 block.
"""

from __future__ import annotations

from typing import Any, Mapping

from r1lab.rewards.registry import RewardFn, with_prefill


def adapt_foreign(fn: RewardFn, columns: Mapping[str, str] | None = None, conversational: bool = False) -> RewardFn:
    """`fn` called with prefilled completions (as one-message conversations when `conversational`) and with
    each ``columns[their_name] = our_name`` column passed under their name as well."""
    renames = dict(columns or {})

    def foreign(completions, prefill=None, **kwargs: Any) -> list:
        texts = with_prefill(completions, prefill)
        given = [[{"role": "assistant", "content": t}] for t in texts] if conversational else texts
        for theirs, ours in renames.items():
            kwargs[theirs] = kwargs.get(ours)
        return list(fn(given, **kwargs))

    foreign.__name__ = getattr(fn, "__name__", "foreign")
    return foreign
