"""Thinking-time and "aha" metrics on hand-built completions: which reflections fix a wrong step (effective), change
nothing (empty), break a right step (harmful) or fail to fix one; length per difficulty bucket; correct vs wrong."""

from __future__ import annotations

import pytest

from r1lab.data import load_task
from r1lab.data.tasks import get_task
from r1lab.data.thinking_metrics import (
    Corrections,
    classify_reflections,
    correction_metrics,
    difficulty,
    first_effective,
    length_by_difficulty,
)

TASK = "column_add?digits=2"


def record(a: int, b: int) -> dict:
    return {"task": get_task(TASK).name, "prompt": f"{a}+{b}=?", "answer": str(a + b), "metadata": {"operands": [a, b]}}


def think(*lines: str, answer: str = "85") -> str:
    return "<think>\n" + "\n".join(lines) + f"\n</think>\n<answer>\n{answer}\n</answer>"


R = record(47, 38)


@pytest.mark.parametrize("lines, correct, expected", [
    (("7+8=14", "wait, let me check: 7+8=15 carry 1", "4+3+1=8"), True, Corrections(effective=1)),
    (("7+8=14", "wait, let me check: 7+8=15 carry 1", "4+3+1=8"), False, Corrections(failed=1)),  # wrong answer
    (("7+8=15 carry 1", "wait, let me check: 7+8=15 carry 1", "4+3+1=8"), True, Corrections(empty=1)),
    (("7+8=15 carry 1", "hmm, let me verify", "4+3+1=8"), True, Corrections(empty=1)),  # a word, nothing checked
    (("7+8=15 carry 1", "wait, let me check: 7+8=16 carry 1"), False, Corrections(harmful=1)),
    (("7+8=14", "wait, let me check: 7+8=13 carry 1"), False, Corrections(failed=1)),
    (("7+8=14", "wait", "7+8=15 carry 1", "4+3+1=8"), True, Corrections(effective=1)),  # the fix on the next line
    (("7+8=15 carry 1", "4+3+1=8"), True, Corrections()),
])
def test_reflections_are_classified_by_the_steps_around_them(lines, correct, expected):
    assert classify_reflections(think(*lines), R, correct) == expected


def test_reflections_after_the_think_block_and_unknown_tasks_are_not_counted():
    text = think("7+8=14") + "\nwait, let me check: 7+8=15 carry 1"
    assert classify_reflections(text, R, True) == Corrections()
    assert classify_reflections(think("x=1", "wait, let me check: x=2"), {"task": "rg:basic_arithmetic", "metadata": {}},
                                True) == Corrections()


def test_batch_metrics_and_the_first_effective_example():
    texts = [think("7+8=15 carry 1", "4+3+1=8"), think("7+8=14", "wait, let me check: 7+8=15 carry 1", "4+3+1=8"),
             think("7+8=15 carry 1", "wait, let me check: 7+8=15 carry 1")]
    metrics = correction_metrics(texts, [R] * 3, [True, True, True])
    assert metrics == {"completions/effective_corrections": 1 / 3, "completions/empty_reflections": 1 / 3,
                       "completions/harmful_reflections": 0.0, "completions/failed_reflections": 0.0}
    assert first_effective(texts, [R] * 3, [True, True, True]) == 1
    assert first_effective(texts, [R] * 3, [True, False, True]) is None


def test_length_per_difficulty_bucket_and_correct_only():
    easy, hard = record(12, 34), record(47, 38)  # no carry / one carry
    assert (difficulty(easy), difficulty(hard)) == (0, 1)
    out = length_by_difficulty([10, 20, 30, 50], [easy, easy, hard, hard], [True, False, True, True])
    assert out == {"completions/mean_length/difficulty=0": 15.0, "completions/mean_length/difficulty=1": 40.0,
                   "completions/mean_length_correct/difficulty=0": 10.0,
                   "completions/mean_length_correct/difficulty=1": 40.0}
    assert difficulty({"task": "no_such_task", "metadata": {}}) is None
    proof = load_task("proof?depth=3", "test", 1)[0]
    assert difficulty(proof) == 3


# ---- solution styles: which way of answering RL selects -------------------------------------------------------

def test_solution_style_tells_a_bare_answer_from_worked_steps_and_from_checked_steps():
    from r1lab.data.completion_metrics import solution_style

    assert solution_style(think("", answer="85")) == "answer_only"
    assert solution_style(think("7+8=15 carry 1", "4+3+1=8")) == "worked"
    assert solution_style(think("7+8=14 carry 1", "wait, let me check: 7+8=15 carry 1", "4+3+1=8")) == "checked"
    assert solution_style(think("7+8=15 carry 1", "4+3+1=8", "check: 85-38=47 ok")) == "checked"
    # words after the thinking do not make a solution checked
    assert solution_style(think("7+8=15 carry 1", "4+3+1=8") + " wait") == "worked"


def test_style_metrics_give_each_styles_share_and_its_own_accuracy():
    from r1lab.data.completion_metrics import style_metrics

    texts = [think("", answer="85"), think("", answer="84"), think("7+8=15 carry 1", "4+3+1=8"),
             think("7+8=15 carry 1", "4+3+1=8", "check: 85-38=47 ok")]
    m = style_metrics(texts, [True, False, False, True])
    assert m["completions/style/answer_only/share"] == pytest.approx(0.5)
    assert m["completions/style/worked/share"] == pytest.approx(0.25)
    assert m["completions/style/checked/share"] == pytest.approx(0.25)
    assert m["completions/style/answer_only/accuracy"] == pytest.approx(0.5)
    assert m["completions/style/worked/accuracy"] == 0.0 and m["completions/style/checked/accuracy"] == 1.0
    # without correctness only the shares; a style that never occurs has a share of 0 and no accuracy
    plain = style_metrics(texts[:2])
    assert plain["completions/style/answer_only/share"] == 1.0 and plain["completions/style/checked/share"] == 0.0
    assert not any(k.endswith("/accuracy") for k in plain)
