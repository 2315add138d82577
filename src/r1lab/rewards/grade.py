"""THE grader: is an extracted answer equivalent to the gold answer? Shared by the accuracy reward and eval.

Order of checks (the first that decides wins):
1. no answer, or an answer longer than `MAX_PRED_CHARS` -> wrong (no verifier ever sees megabytes);
2. a `task` that r1lab.data knows -> the task's own verifier (`r1lab.data.verify_answer`);
3. both sides plain exact numbers (``-1,234.5``, ``3/4``, ``\\frac{3}{4}``) -> equal rationals are right, two
   different integers are wrong (fast, in-process; the common case for arithmetic tasks);
4. otherwise math-verify (sympy equivalence: LaTeX, fractions vs decimals, percentages, units in prose, ...).
Steps 2 and 4 run in the time-bounded verifier process; no verdict in time -> wrong, with `timed_out` set.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from r1lab.data.answer import exact_number, extract_answer, normalize_answer_text
from r1lab.rewards.verifier import shared_verifier

MAX_PRED_CHARS = 2_000
MAX_GOLD_CHARS = 10_000
DEFAULT_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grade:
    correct: bool
    method: str  # "no-answer" | "too-long" | "task" | "exact" | "math-verify" | "timeout" | "error"
    timed_out: bool = False


def gold_text(gold: Any) -> str:
    """The gold answer as text; a whole solution (GSM8K ``#### n``, MATH ``\\boxed{}``) reduces to its final answer."""
    text = gold if isinstance(gold, str) else json.dumps(gold) if isinstance(gold, (dict, list)) else str(gold)
    if "####" in text or "\\boxed" in text or "<answer>" in text:
        text = extract_answer(text, fallbacks=("hash",)) or text
    return text.strip()


def _verifier_call(payload: dict, timeout_s: float) -> dict | None:
    try:
        return shared_verifier().request(payload, timeout_s)
    except Exception as e:  # cannot start the verifier: score as no verdict rather than crash training
        log.warning("answer verifier unavailable: %s", e)
        return None


def grade_answer(
    pred: str | None,
    gold: Any,
    *,
    task: str | None = None,
    metadata: Any = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Grade:
    """Grade one extracted answer against gold (see module docstring). Never raises on model output."""
    if pred is None or not pred.strip():
        return Grade(False, "no-answer")
    if len(pred) > MAX_PRED_CHARS:
        return Grade(False, "too-long")
    gold_str = gold_text(gold)[:MAX_GOLD_CHARS]

    if task:
        try:
            meta = json.loads(json.dumps(metadata, default=str)) if metadata is not None else None
        except (TypeError, ValueError):
            meta = None
        reply = _verifier_call({"op": "task", "task": task if isinstance(task, (str, dict)) else str(task), "pred": pred, "gold": gold_str, "metadata": meta}, timeout_s)
        if reply is None or reply.get("timeout"):
            return Grade(False, "timeout", timed_out=True)
        if "match" in reply:
            return Grade(bool(reply["match"]), "task")
        # unknown task (or a verifier error): fall through to math equivalence

    p, g = exact_number(pred), exact_number(gold_str)
    if p is not None and g is not None:
        if p == g:
            return Grade(True, "exact")
        if p.denominator == 1 and g.denominator == 1:
            return Grade(False, "exact")

    reply = _verifier_call({"op": "math", "pred": normalize_answer_text(pred), "gold": gold_str}, timeout_s)
    if reply is None or reply.get("timeout"):
        return Grade(False, "timeout", timed_out=True)
    if "match" in reply:
        return Grade(bool(reply["match"]), "math-verify")
    return Grade(False, "error")
