"""The dataset columns a reward function receives for one record's completions, built in one place.

TRL's convention: every column is a list with one entry per completion (here the record's value repeated), passed
as keyword arguments next to the completions. Rewards read `answer`, `task`, `metadata`, `prefill` (the text the
prompt already ends with, e.g. `<think>\\n`), and `lang` / `tests` where the record has them.
"""

from __future__ import annotations

from typing import Any

OPTIONAL_FIELDS = ("lang", "tests")


def record_columns(record: dict, n: int, *, prefill: str = "", **extra: Any) -> dict[str, list[Any]]:
    """Columns for `n` completions of `record`; `extra` values (one per call) are repeated the same way."""
    columns: dict[str, list[Any]] = {
        "answer": [record.get("answer")] * n,
        "task": [record.get("task")] * n,
        "metadata": [record.get("metadata")] * n,
        "prefill": [prefill] * n,
    }
    for name in OPTIONAL_FIELDS:
        if name in record:
            columns[name] = [record[name]] * n
    for name, value in extra.items():
        columns[name] = [value] * n
    return columns
