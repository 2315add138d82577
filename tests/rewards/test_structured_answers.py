"""Lists, sets, tuples and intervals are graded whole, the way math-verify grades their LaTeX form: unordered for
sets and solution lists, ordered for tuples and intervals, never by a single element (issue 18's grading bug:
`\\boxed{3}` used to be correct against `2, 3`)."""

from __future__ import annotations

import pytest

from r1lab.data.answer import extract_answer
from r1lab.rewards import get_reward
from r1lab.rewards.grade import grade_answer

CASES = [  # (predicted answer text, gold answer, correct)
    (r"\boxed{3}", "2, 3", False),
    (r"\boxed{1, 2, 3, 4, 5}", "5", False),
    (r"\boxed{3, 2}", r"\{2, 3\}", True),
    (r"\boxed{2, 3}", "2, 3", True),
    (r"\boxed{3, 2}", "2, 3", True),  # a list of all solutions is unordered
    (r"\boxed{-1, 1}", "1, -1", True),
    (r"\boxed{2}", "-1, 2", False),
    (r"\boxed{(1, 2)}", "(1, 2)", True),
    (r"\boxed{(2, 1)}", "(1, 2)", False),  # tuples are ordered
    (r"\boxed{[0, 1)}", "[0, 1)", True),
    (r"\boxed{[0, 1]}", "[0, 1)", False),  # intervals keep their ends
    (r"\boxed{(0, 1]}", "(0,1]", True),
    (r"\boxed{1}", "(0, 1]", False),
    (r"\boxed{1,000}", "1000", True),  # a thousands separator is still one number
    (r"\boxed{12}", "12", True),
]


@pytest.mark.parametrize("completion, gold, correct", CASES)
def test_structured_answers_are_graded_whole(completion, gold, correct):
    assert grade_answer(extract_answer(completion), gold).correct is correct


def test_the_accuracy_reward_agrees():
    completions = [f"<answer>{c}</answer>" for c, _, _ in CASES]
    golds = [g for _, g, _ in CASES]
    assert get_reward("accuracy")(completions, answer=golds) == [float(ok) for _, _, ok in CASES]
