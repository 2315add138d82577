"""Assertion-style code tests (HumanEval's `check(candidate)`, MBPP's `assert` lines) run after the completion's
code in one sandboxed program, the binary and fraction variants, and `code_format`."""

from __future__ import annotations

import time

from r1lab.rewards import get_reward

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
SUB = "```python\ndef add(a, b):\n    return a - b\n```"
LOOP = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
HUMANEVAL_CHECK = ("def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n\n"
                   "check(add)\n")
MBPP = [{"code": "assert add(1, 2) == 3"}, {"code": "assert add(0, 0) == 0"}, {"code": "assert add(2, 2) == 4"}]


def test_assertion_tests_pass_fail_and_fraction():
    code = get_reward("code", workers=1)
    assert code([ADD, SUB], tests=[MBPP, MBPP]) == [1.0, 1 / 3]  # a - b passes only add(0, 0) == 0
    assert get_reward("binary_code", workers=1)([ADD, SUB], tests=[MBPP, MBPP]) == [1.0, 0.0]


def test_humaneval_style_check_and_mixed_tests():
    code = get_reward("code", workers=1)
    check = {"code": HUMANEVAL_CHECK}  # one test: the whole check(candidate) program
    assert code([ADD, SUB], tests=[check, check]) == [1.0, 0.0]
    assert code([ADD], tests=['[{"code": "assert add(1, 2) == 3"}]']) == [1.0]  # as JSON text
    mixed = [{"input": "", "output": "5"}, {"code": "assert add(2, 3) == 5"}]
    printing = "```python\ndef add(a, b):\n    return a + b\nprint(add(2, 3))\n```"
    assert code([printing], tests=[mixed]) == [1.0]  # stdin/stdout and assertion tests side by side


def test_what_cannot_be_judged_or_run():
    code = get_reward("code", workers=1)
    assert code([ADD], tests=[None]) == [None]
    assert code([ADD], tests=[[{"neither": 1}]]) == [None]
    assert code(["no code here"], tests=[MBPP]) == [0.0]
    assert code([ADD], tests=[{"code": "import sys; sys.exit(3)"}]) == [0.0]  # a non-zero exit fails the test
    assert code([ADD], tests=["assert add(1, 2) == 3"]) == [None]  # text that is not JSON: cannot judge


def test_an_infinite_loop_costs_at_most_the_wall_limit():
    code = get_reward("code", workers=1, wall_s=1.0, cpu_s=1.0)
    t0 = time.perf_counter()
    assert code([LOOP], tests=[[{"code": "add(1, 2)"}]]) == [0.0]
    assert time.perf_counter() - t0 < 5.0


def test_code_format():
    fmt = get_reward("code_format")
    good = "<think>\nplan\n</think>\n<answer>\n" + ADD + "\n</answer>"
    assert fmt([good]) == [1.0]
    assert fmt(["plan\n</think>\n<answer>\n" + ADD + "\n</answer>"], prefill=["<think>\n"]) == [1.0]  # prefilled
    assert fmt([ADD]) == [0.0]  # no think / answer blocks
    assert fmt(["<think>x</think><answer>" + ADD + ADD + "</answer>"]) == [0.0]  # two blocks
    assert fmt(["<think>x</think><answer>```js\nlet a = 1\n```</answer>"]) == [0.0]  # another language
    assert get_reward("code_format", language="js")(["<think>x</think><answer>```js\nlet a\n```</answer>"]) == [1.0]
    assert fmt(["<think>x</think><answer>```python\nunclosed</answer>"]) == [0.0]


def test_prefix_goes_in_front_so_a_body_or_a_whole_function_both_run():
    """HumanEval's stub as `prefix`: a completion may give only the body, or the whole function without the
    stub's imports; both run with the stub in front."""
    stub = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum of xs.\"\"\"\n"
    test = {"prefix": stub, "code": "assert total([1, 2, 3]) == 6\n"}
    body = "```python\n    return sum(xs)\n```"
    whole = "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```"
    wrong = "```python\ndef total(xs: List[int]) -> int:\n    return len(xs)\n```"
    code = get_reward("code", workers=1)
    assert code([body, whole, wrong], tests=[test] * 3) == [1.0, 1.0, 0.0]
    assert code([whole], tests=[{"prefix": 3, "code": "pass"}]) == [None]  # a prefix that is not text


def test_accuracy_grades_a_row_without_gold_by_its_tests():
    """One meaning of "correct": rows with tests and no answer (code tasks) are correct when every test passes."""
    accuracy = get_reward("accuracy")
    assert accuracy([ADD, SUB, "no code"], answer=[None] * 3, tests=[MBPP] * 3) == [1.0, 0.0, 0.0]
    assert accuracy([ADD], answer=[None], tests=[None]) == [None]  # neither gold nor tests: cannot judge
    assert accuracy(["<answer>3</answer>"], answer=["3"], tests=[MBPP]) == [1.0]  # a gold answer decides
