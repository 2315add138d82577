"""Evaluation metrics (docs/RL.md §12): unbiased pass@k, majority vote (maj@k / cons@k), bootstrap intervals.

Pure functions over counts and answers; the runner (`r1lab.eval.runner`) feeds them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from r1lab.data.answer import DEFAULT_FALLBACKS, canonical_answer, extract_answer
from r1lab.rewards.grade import grade_answer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) from n samples of which c are correct: 1 − C(n−c, k)/C(n, k).

    Computed in the stable product form 1 − Π_{i=n−c+1..n} (1 − k/i) (no huge binomials); pass@1 = c/n.
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k needs integers, got n={n!r}, c={c!r}, k={k!r}")
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def majority_vote(keys: Sequence[str | None]) -> int | None:
    """Index of the first sample carrying the most frequent non-None key; ties go to the key seen first;
    None when no sample has a key (unparseable answers never win)."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    for i, key in enumerate(keys):
        if key is not None and counts[key] == best:
            return i
    return None  # unreachable


def maj_at_k(
    completions: Sequence[str],
    gold: Any,
    k: int | None = None,
    *,
    task: Any = None,
    metadata: Any = None,
    fallbacks: Sequence[str] = DEFAULT_FALLBACKS,
    grade: Callable[[str, Any], bool] | None = None,
) -> float:
    """maj@k of one problem: 1.0 if the majority answer of the first k completions is correct, else 0.0.

    Answers are extracted with the reward extractor and grouped by `canonical_answer` (spellings of one
    exact number vote together); the winner is graded with the reward grader (or `grade(answer, gold)`).
    """
    window = list(completions)[: k if k is not None else len(completions)]
    answers = [extract_answer(text, tuple(fallbacks)) for text in window]
    winner = majority_vote([canonical_answer(a) for a in answers])
    if winner is None:
        return 0.0
    if grade is not None:
        return float(bool(grade(answers[winner], gold)))
    return float(grade_answer(answers[winner], gold, task=task, metadata=metadata).correct)


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap (1 − alpha) interval of the mean, resampling problems with replacement.

    Seeded, so the same scores always give the same interval; (nan, nan) for no values.
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))  # [B, m]
    means = x[idx].mean(axis=1)  # [B]
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def default_ks(n: int) -> list[int]:
    """k values worth reporting for n samples: 1, powers of two below n, and n."""
    ks = {1, n}
    k = 2
    while k < n:
        ks.add(k)
        k *= 2
    return sorted(ks)
