"""Rollout health metrics, named like TRL's where TRL has a name (docs/RL.md §15): rewards per function,
zero-spread groups, completion lengths (correct vs wrong), truncation and the reflection-word ("aha") rate."""

from __future__ import annotations

import math
import re
import statistics
from typing import Sequence

# Self-reflection markers of R1-Zero's "aha moment" (and of the tiny corpus' "wait, let me check").
REFLECTION = re.compile(
    r"\b(wait|let me (?:re-?)?check|let me verify|verify|double[- ]check|re-?check|re-?examine|hmm)\b",
    re.IGNORECASE,
)


# An intermediate step: a line of the thinking that states a computed value ("7+6=13 carry 1", "so x = 12").
COMPUTED_LINE = re.compile(r"=\s*-?\d", re.M)


def computed_steps(text: str) -> int:
    """Lines with a computed value before `</think>` (the whole text when it has none): reasoning that did not
    collapse to a bare answer writes at least a few."""
    thinking = text.split("</think>", 1)[0]
    return sum(1 for line in thinking.splitlines() if COMPUTED_LINE.search(line))


def has_reflection(text: str) -> bool:
    return REFLECTION.search(text) is not None


# A line that checks the result ("check: 61-10=51 ok", "verify: ..."), the tiny corpus' final self-check.
VERIFICATION_LINE = re.compile(r"^\s*(?:check|verify|verification)\b", re.IGNORECASE | re.M)
SOLUTION_STYLES = ("answer_only", "worked", "checked")


def solution_style(text: str) -> str:
    """How a completion reaches its answer: `answer_only` (no computed step before it), `worked` (steps, no
    check), `checked` (steps with a reflection phrase or a verification line). RL chooses among these, so the
    choice explains where length and the reflection rate go (docs/experiments.md, entry J)."""
    thinking = text.split("</think>", 1)[0]
    if computed_steps(thinking) == 0:
        return "answer_only"
    return "checked" if has_reflection(thinking) or VERIFICATION_LINE.search(thinking) else "worked"


def style_metrics(texts: Sequence[str], correct: Sequence[bool] | None = None) -> dict[str, float]:
    """completions/style/<style>/share, and /accuracy where correctness is known and the style occurs: which way
    of answering the policy samples, and whether it is the more accurate one under its own sampling."""
    styles = [solution_style(t) for t in texts]
    out: dict[str, float] = {}
    for style in SOLUTION_STYLES:
        picked = [i for i, s in enumerate(styles) if s == style]
        out[f"completions/style/{style}/share"] = len(picked) / len(texts) if texts else 0.0
        if correct is not None and picked:
            out[f"completions/style/{style}/accuracy"] = sum(bool(correct[i]) for i in picked) / len(picked)
    return out


def reflection_rate(texts: Sequence[str]) -> float:
    """Share of completions with at least one reflection phrase."""
    return sum(has_reflection(t) for t in texts) / len(texts) if texts else 0.0


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _std(xs: Sequence[float]) -> float:
    return statistics.pstdev(xs) if len(xs) > 1 else 0.0


def reward_metrics(total: Sequence[float], per_function: dict[str, Sequence[float | None]], group_size: int,
                   correct: Sequence[bool] | None = None) -> dict[str, float]:
    """reward (mean), reward_std (mean within-group std, as TRL), rewards/<fn>/mean|std (Nones skipped),
    frac_reward_zero_std (+ split all_correct / all_wrong when correctness is known), accuracy."""
    groups = [list(total[i:i + group_size]) for i in range(0, len(total), group_size)]
    flat = [max(g) == min(g) for g in groups]
    out = {
        "reward": _mean(list(total)),
        "reward_std": _mean([_std(g) for g in groups]),
        "frac_reward_zero_std": sum(flat) / len(groups) if groups else 0.0,
    }
    for name, values in per_function.items():
        vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if vals:
            out[f"rewards/{name}/mean"] = _mean(vals)
            out[f"rewards/{name}/std"] = _std(vals)
    if correct is not None:
        out["accuracy"] = sum(correct) / len(correct) if correct else 0.0
        cgroups = [list(correct[i:i + group_size]) for i in range(0, len(correct), group_size)]
        out["frac_reward_zero_std/all_correct"] = sum(f and all(c) for f, c in zip(flat, cgroups)) / len(groups)
        out["frac_reward_zero_std/all_wrong"] = sum(f and not any(c) for f, c in zip(flat, cgroups)) / len(groups)
    return out


def completion_metrics(texts: Sequence[str], lengths: Sequence[int], truncated: Sequence[bool],
                       correct: Sequence[bool] | None = None) -> dict[str, float]:
    """completions/{mean,min,max}_length, clipped_ratio (no EOS), mean_terminated_length,
    mean_length_{correct,wrong}, reflection_rate, and the share (and accuracy) of each solution style."""
    lengths = [int(x) for x in lengths]
    out = {
        "completions/mean_length": _mean(lengths),
        "completions/min_length": float(min(lengths)) if lengths else 0.0,
        "completions/max_length": float(max(lengths)) if lengths else 0.0,
        "completions/clipped_ratio": sum(bool(t) for t in truncated) / len(lengths) if lengths else 0.0,
        "completions/reflection_rate": reflection_rate(texts),
    }
    terminated = [n for n, t in zip(lengths, truncated) if not t]
    if terminated:
        out["completions/mean_terminated_length"] = _mean(terminated)
    if correct is not None:
        right = [n for n, c in zip(lengths, correct) if c]
        wrong = [n for n, c in zip(lengths, correct) if not c]
        if right:
            out["completions/mean_length_correct"] = _mean(right)
        if wrong:
            out["completions/mean_length_wrong"] = _mean(wrong)
    out.update(style_metrics(texts, correct))
    return out
