"""THE answer extractor: which part of a completion is the answer, and the exact-number canonical form."""

from __future__ import annotations

from fractions import Fraction

import pytest

from r1lab.data.answer import exact_number, last_boxed
from r1lab.rewards import canonical_answer, extract_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>2+2</think>\n<answer>4</answer>", "4"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last block wins
        ("<answer>\n  7  \n</answer>", "7"),
        ("<answer>so \\boxed{9} it is</answer>", "9"),  # a boxed answer inside the block
        ("<answer>3</answer> \\boxed{5}", "3"),  # the answer block beats a later box
        ("work \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # last box, nested braces
        ("\\fbox{8}", "8"),
        ("\\boxed {6}", "6"),
        ("steps\n#### 1,234", "1,234"),
        ("<answer>5", None),  # unclosed block, no fallback
        ("\\boxed{unclosed", None),
        ("<answer>   </answer>", None),
        ("", None),
    ],
)
def test_extraction_rule(text, expected):
    assert extract_answer(text) == expected


def test_fallbacks_are_tried_in_order_and_can_be_switched_off():
    text = "The answer is 12.\nSo 3 + 9 = 12, final 12"
    assert extract_answer(text) is None
    assert extract_answer(text, fallbacks=("answer_is",)) == "12"
    assert extract_answer(text, fallbacks=("last_number",)) == "12"
    assert extract_answer("#### 4\nthe answer is 5", fallbacks=("answer_is", "hash")) == "5"
    assert extract_answer("#### 4", fallbacks=()) is None
    with pytest.raises(ValueError):
        extract_answer("x", fallbacks=("nope",))


def test_non_text_yields_no_answer():
    assert extract_answer(None) is None
    assert extract_answer(42) is None


def test_unclosed_box_after_a_closed_one_falls_back_to_the_closed_one():
    assert last_boxed("\\boxed{3} and \\boxed{4") == "3"


@pytest.mark.parametrize(
    "text, value",
    [
        ("72", Fraction(72)),
        ("-1,234.5", Fraction(-24690, 20)),
        ("\u22123", Fraction(-3)),
        ("3/4", Fraction(3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("-\\dfrac{1}{2}", Fraction(-1, 2)),
        ("$1{,}000$", Fraction(1000)),
        ("\\boxed{5}.", Fraction(5)),
        (".5", Fraction(1, 2)),
        ("1/0", None),
        ("x+1", None),
        ("1,00", None),  # not a thousands grouping
        ("9" * 100, None),  # beyond the exact-number digit cap
    ],
)
def test_exact_numbers(text, value):
    assert exact_number(text) == value


def test_canonical_answer_groups_spellings_of_one_number():
    keys = {canonical_answer(a) for a in ["0.5", "1/2", "\\frac{1}{2}", "$\\frac{2}{4}$", " .50 "]}
    assert keys == {"1/2"}
    assert canonical_answer("x  +  1") == canonical_answer("x + 1")
    assert canonical_answer(None) is None and canonical_answer("  ") is None


def test_megabytes_of_text_are_handled_in_linear_time():
    import time

    huge = "<answer>" * 200_000 + "\\boxed{" * 200_000 + "x" * 2_000_000
    start = time.monotonic()
    extract_answer(huge, fallbacks=("hash", "answer_is", "last_number"))
    assert time.monotonic() - start < 5
