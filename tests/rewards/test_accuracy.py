"""`accuracy`: answer equivalence (not string match), with true AND false pairs per answer kind."""

from __future__ import annotations

import threading
import time

import pytest

from r1lab.rewards import get_reward, grade_answer, reset_timeout_counts, timeout_counts

# (text inside <answer>…</answer>, gold, equivalent?)
EQUIVALENCE = [
    # integers
    ("72", "72", True),
    ("72", "73", False),
    ("072", "72", True),
    ("7", "72", False),
    (" 72 ", "72", True),
    ("72.", "72", True),
    # signs
    ("-3", "-3", True),
    ("\u22123", "-3", True),  # unicode minus sign
    ("3", "-3", False),
    ("-3", "3", False),
    ("+5", "5", True),
    ("$-\\frac{1}{2}$", "-0.5", True),
    ("\\frac{1}{2}", "-0.5", False),
    # decimals
    ("0.5", "0.5", True),
    ("0.50", "0.5", True),
    (".5", "0.5", True),
    ("0.05", "0.5", False),
    ("3.14", "3.14", True),
    ("3.15", "3.14", False),
    ("2.0", "2", True),
    # thousands separators
    ("1,000", "1000", True),
    ("1000", "1,000", True),
    ("1,234,567", "1234567", True),
    ("1,234,568", "1234567", False),
    ("10,000", "1000", False),
    ("$1{,}000$", "1000", True),
    # fractions
    ("3/4", "0.75", True),
    ("3/4", "0.7", False),
    ("6/8", "3/4", True),
    ("1/3", "2/6", True),
    ("1/3", "1/4", False),
    # LaTeX fractions
    ("\\frac{3}{4}", "0.75", True),
    ("\\dfrac{3}{4}", "3/4", True),
    ("\\tfrac{1}{2}", "0.5", True),
    ("$\\frac{3}{4}$", "\\frac{6}{8}", True),
    ("\\frac{4}{3}", "0.75", False),
    ("\\frac{1}{2}", "\\frac{1}{3}", False),
    ("\\frac12", "0.5", True),
    # \boxed{}
    ("\\boxed{42}", "42", True),
    ("The result is \\boxed{42}.", "42", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{41}", "42", False),
    ("$\\boxed{1,000}$", "1000", True),
    # answers inside prose, with simple units
    ("The answer is 42.", "42", True),
    ("She has 18 apples.", "18", True),
    ("She has 17 apples.", "18", False),
    ("It costs $18.", "18", True),
    ("5 cm", "5", True),
    ("6 cm", "5", False),
    ("10\\%", "10", True),
    ("10%", "0.1", True),
    ("20%", "0.1", False),
    # algebra and symbolic forms
    ("\\sqrt{4}", "2", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\sqrt{2}", "2", False),
    ("x = 5", "5", True),
    ("\\pi", "\\pi", True),
    ("2\\pi", "\\pi", False),
    ("x^2 + 2x + 1", "(x+1)^2", True),
    ("x^2 + 1", "(x+1)^2", False),
    # non-answers
    ("", "5", False),
    ("banana", "5", False),
]


@pytest.mark.parametrize("answer, gold, expected", EQUIVALENCE)
def test_answer_equivalence(answer, gold, expected):
    accuracy = get_reward("accuracy")
    assert accuracy([f"<think>work</think>\n<answer>{answer}</answer>"], answer=[gold]) == [float(expected)]


def test_at_least_fifty_cases_with_both_verdicts():
    assert len(EQUIVALENCE) >= 50
    assert sum(e for *_, e in EQUIVALENCE) >= 20 and sum(not e for *_, e in EQUIVALENCE) >= 20


def test_missing_gold_is_not_applicable_and_missing_answer_scores_zero():
    accuracy = get_reward("accuracy")
    assert accuracy(["<answer>5</answer>", "no answer here", "<answer>5</answer>"], answer=["5", "5", None]) == [1.0, 0.0, None]


def test_conversational_completions_and_prefill():
    accuracy = get_reward("accuracy")
    conversation = [[{"role": "assistant", "content": "reasoning</think>\n<answer>12</answer>"}]]
    assert accuracy(conversation, answer=["12"], prefill=["<think>\n"]) == [1.0]


def test_gold_given_as_a_whole_solution_reduces_to_its_final_answer():
    accuracy = get_reward("accuracy")
    assert accuracy(["<answer>72</answer>"], answer=["48/2 = 24 clips in May.\n48+24 = 72\n#### 72"]) == [1.0]
    assert accuracy(["<answer>1/2</answer>"], answer=["so the answer is $\\boxed{\\frac{1}{2}}$"]) == [1.0]


def test_gsm8k_fallback_is_configurable():
    text = "so 3 + 4 = 7\n#### 7"
    assert get_reward("accuracy")([text], answer=["7"]) == [1.0]
    assert get_reward("accuracy", fallbacks=())([text], answer=["7"]) == [0.0]
    assert get_reward("accuracy", fallbacks=("last_number",))(["I think it is 7"], answer=["7"]) == [1.0]


def test_task_column_falls_back_to_math_verify_for_unknown_tasks():
    accuracy = get_reward("accuracy")
    assert accuracy(["<answer>0.5</answer>"], answer=["1/2"], task=["no-such-task-kind"]) == [1.0]


def test_runs_in_worker_threads():
    """math-verify's signal time-out fails outside the main thread; ours must not."""
    accuracy = get_reward("accuracy")
    results = []
    worker = threading.Thread(target=lambda: results.append(accuracy(["<answer>\\frac{1}{2}</answer>"], answer=["0.5"])))
    worker.start()
    worker.join(60)
    assert results == [[1.0]]


def test_uninterruptible_sympy_work_times_out_scores_zero_and_is_counted():
    reset_timeout_counts()
    accuracy = get_reward("accuracy", timeout_s=0.5)
    start = time.monotonic()
    scores = accuracy(["<answer>it is $10^{10^{10}}$ exactly</answer>", "<answer>5</answer>"], answer=["5", "5"])
    assert scores == [0.0, 1.0]
    assert time.monotonic() - start < 10
    assert timeout_counts().get("accuracy") == 1


def test_grade_reports_how_it_decided():
    assert grade_answer("1,000", "1000").method == "exact"
    assert grade_answer("7", "8").method == "exact"
    assert grade_answer("\\sqrt{4}", "2").method == "math-verify"
    assert grade_answer(None, "2").method == "no-answer"
    assert grade_answer("1" * 5000, "2").method == "too-long"


def test_known_tasks_are_graded_by_their_own_verifier():
    from r1lab.data import load_task

    for record in load_task("arith?operands=2", "test", 3, 0) + load_task("rg:basic_arithmetic", "test", 2, 0):
        right = grade_answer(str(record["answer"]), record["answer"], task=record["task"], metadata=record["metadata"])
        wrong = grade_answer("123456789", record["answer"], task=record["task"], metadata=record["metadata"])
        assert (right.correct, right.method) == (True, "task")
        assert (wrong.correct, wrong.method) == (False, "task")
    accuracy = get_reward("accuracy")
    record = load_task("arith?operands=2", "test", 1, 0)[0]
    assert accuracy([f"<answer>{record['answer']}</answer>", "<answer>-1</answer>"], answer=[record["answer"]] * 2,
                    task=[record["task"]] * 2, metadata=[record["metadata"]] * 2) == [1.0, 0.0]
