"""Thinking-time and "aha" metrics: which reflections correct something, and length per difficulty bucket.

The "aha" measured by outcome, not by the word "wait".

Counting reflection words rewards saying "wait"; what R1-Zero's "aha moment" claims is that the model catches and
fixes its own mistakes. The synthetic tasks know every intermediate value (`SyntheticTask.judge_line`), so each
reflection in a chain of thought can be classified by the step before it and the step it writes:

- **effective**: the step before was wrong, the reflection writes it right, and the final answer is correct;
- **empty**: the step before was right (or there was none) and the reflection changes nothing wrong into right
  or right into wrong: a "wait" that only repeats;
- **harmful**: a right step "corrected" into a wrong one;
- **failed**: a wrong step the reflection does not fix (or a fix that still ends in a wrong answer).
A reflection is a line with a reflection phrase (`completion_metrics.REFLECTION`); the step it writes is what
follows the phrase on that line, or the next line when nothing does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from r1lab.data.completion_metrics import REFLECTION
from r1lab.data.tasks.base import get_task
from r1lab.data.tasks.synthetic import SyntheticTask
from r1lab.data.templates import THINK_CLOSE

KINDS = ("effective", "empty", "harmful", "failed")


@dataclass(frozen=True)
class Corrections:
    effective: int = 0
    empty: int = 0
    harmful: int = 0
    failed: int = 0

    def __add__(self, other: "Corrections") -> "Corrections":
        return Corrections(*(getattr(self, k) + getattr(other, k) for k in KINDS))


def _thinking(text: str) -> str:
    end = text.find(THINK_CLOSE)
    return text if end < 0 else text[:end]


def classify_reflections(text: str, record: dict, correct: bool) -> Corrections:
    """Counts of each kind of reflection in one completion of `record` (see the module docstring); all zero
    when the record's task cannot judge its steps."""
    task = _judge(record)
    if task is None:
        return Corrections()
    lines = [line for line in _thinking(text).splitlines() if line.strip()]
    counts = dict.fromkeys(KINDS, 0)
    before: bool | None = None
    for i, line in enumerate(lines):
        phrases = list(REFLECTION.finditer(line))
        if not phrases:
            verdict = task.judge_line(record, line)
            before = verdict if verdict is not None else before
            continue
        rest = line[phrases[-1].end():].lstrip(" :,.-")  # "wait, let me check: 7+6=13" -> "7+6=13"
        after = task.judge_line(record, rest) if rest else (task.judge_line(record, lines[i + 1]) if i + 1 < len(lines) else None)
        if before is False and after is True:
            counts["effective" if correct else "failed"] += 1
        elif before is False:
            counts["failed"] += 1
        elif after is False:
            counts["harmful"] += 1
        else:
            counts["empty"] += 1
        before = after if after is not None else before
    return Corrections(**counts)


def _judge(record: dict) -> SyntheticTask | None:
    try:
        task = get_task(record["task"])
    except Exception:  # a record of an unknown or unavailable task: nothing to judge with
        return None
    return task if isinstance(task, SyntheticTask) else None


def correction_metrics(texts: Sequence[str], records: Sequence[dict], correct: Sequence[bool]) -> dict[str, float]:
    """Per completion: effective / empty / harmful / failed reflections (means over the completions)."""
    total = Corrections()
    for text, record, ok in zip(texts, records, correct):
        total = total + classify_reflections(text, record, ok)
    n = max(len(texts), 1)
    return {f"completions/{kind}_corrections" if kind == "effective" else f"completions/{kind}_reflections":
            getattr(total, kind) / n for kind in KINDS}


def first_effective(texts: Sequence[str], records: Sequence[dict], correct: Sequence[bool]) -> int | None:
    """Index of the first completion with an effective self-correction, or None."""
    for i, (text, record, ok) in enumerate(zip(texts, records, correct)):
        if ok and classify_reflections(text, record, ok).effective:
            return i
    return None


def length_by_difficulty(lengths: Sequence[int], records: Sequence[dict],
                         correct: Sequence[bool] | None = None) -> dict[str, float]:
    """Mean completion length per difficulty bucket (`completions/mean_length/difficulty=<d>`), and of the
    correct completions alone when correctness is known: whether thinking time goes to the hard problems."""
    buckets: dict[int, list[int]] = {}
    right: dict[int, list[int]] = {}
    for i, (n, record) in enumerate(zip(lengths, records)):
        d = difficulty(record)
        if d is None:
            continue
        buckets.setdefault(d, []).append(int(n))
        if correct is not None and correct[i]:
            right.setdefault(d, []).append(int(n))
    out = {f"completions/mean_length/difficulty={d}": sum(v) / len(v) for d, v in sorted(buckets.items())}
    out.update({f"completions/mean_length_correct/difficulty={d}": sum(v) / len(v) for d, v in sorted(right.items())})
    return out


def difficulty(record: dict) -> int | None:
    """The record's difficulty bucket when its task defines one (`SyntheticTask.difficulty`), else None."""
    task = _judge(record)
    if task is None:
        return None
    try:
        return int(task.difficulty(record))
    except (NotImplementedError, KeyError, TypeError, ValueError):
        return None
