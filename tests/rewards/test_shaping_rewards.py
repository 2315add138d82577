"""Length and style shaping rewards against their closed forms: `cosine` (arXiv 2502.03373 Eq. 1), `kimi_length`
(Kimi k1.5 §2.3.1), `reasoning_steps` (open-r1) and `repetition_penalty` (arXiv 2502.03373 §4.4), including the
cases open-r1's own suite checks (n-grams of 1 to 6 words, empty text, mixed case, text without spaces, groups of
equal and different lengths, correct / wrong / mixed groups, rows without a gold answer)."""

from __future__ import annotations

import math
import time

import pytest

from r1lab.errors import ConfigError
from r1lab.rewards import get_reward
from r1lab.rewards.length import cosine_length_value, kimi_length_values
from r1lab.rewards.style import count_steps, repetition_value, words

RIGHT, WRONG = "<answer>3</answer>", "<answer>4</answer>"


# ---- cosine ---------------------------------------------------------------------------------------------------
def expected_cosine(length: int, correct: bool, max_len: int = 100) -> float:
    lo, hi = (0.5, 1.0) if correct else (-0.5, -1.0)
    return lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * min(length, max_len) / max_len))


@pytest.mark.parametrize("length", [0, 1, 25, 50, 99, 100, 250])
def test_cosine_closed_form(length):
    for correct in (True, False):
        got = cosine_length_value(length, correct, 100, min_correct=0.5, max_correct=1.0, min_wrong=-1.0,
                                  max_wrong=-0.5)
        assert got == pytest.approx(expected_cosine(length, correct), abs=1e-12)
    # the ends: short right answers earn most, short wrong answers lose most
    assert cosine_length_value(0, True, 100, min_correct=0.5, max_correct=1.0, min_wrong=-1, max_wrong=-0.5) == 1.0
    assert cosine_length_value(0, False, 100, min_correct=0.5, max_correct=1.0, min_wrong=-1, max_wrong=-0.5) == -1.0


def test_cosine_reward_grades_then_scales_by_token_length():
    reward = get_reward("cosine", max_len=100)
    ids = [[7] * 10, [7] * 80, [7] * 10, [7] * 5]
    got = reward([RIGHT, RIGHT, WRONG, RIGHT], answer=["3", "3", "3", None], completion_ids=ids)
    assert got[:3] == pytest.approx([expected_cosine(10, True), expected_cosine(80, True), expected_cosine(10, False)])
    assert got[3] is None  # no gold answer: cannot judge
    assert got[0] > got[1] > 0 > got[2]
    with pytest.raises(ConfigError, match="max_len"):
        get_reward("cosine", max_len=0)
    with pytest.raises(ConfigError, match="min_value_correct"):
        get_reward("cosine", min_value_correct=1.0, max_value_correct=0.5)


# ---- kimi_length ---------------------------------------------------------------------------------------------
def test_kimi_values_closed_form():
    # lengths 10, 20, 30: lambda = 0.5, 0, -0.5; wrong answers keep only the non-positive part
    assert kimi_length_values([10, 20, 30], [True, True, True]) == pytest.approx([0.5, 0.0, -0.5])
    assert kimi_length_values([10, 20, 30], [False, False, False]) == pytest.approx([0.0, 0.0, -0.5])
    assert kimi_length_values([10, 20, 30], [True, False, True]) == pytest.approx([0.5, 0.0, -0.5])
    assert kimi_length_values([7, 7, 7], [True, False, True]) == [0.0, 0.0, 0.0]  # same lengths: no signal


def test_kimi_length_groups_by_prompt_and_skips_rows_without_gold():
    reward = get_reward("kimi_length")
    comps = [RIGHT, RIGHT, WRONG, RIGHT, WRONG]
    ids = [[1] * 10, [1] * 30, [1] * 20, [1] * 50, [1] * 5]
    got = reward(comps, completion_ids=ids, answer=["3", "3", "3", None, "3"], prompts=["p", "p", "p", "q", "q"])
    assert got[:3] == pytest.approx([0.5, -0.5, 0.0])  # group p: 10, 30, 20
    assert got[3] is None and got[4] == 0.0  # group q: one judged row, a range of zero


# ---- reasoning_steps -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, steps", [
    ("Step 1: add\nStep 2: carry\nStep 3: done", 3),
    ("First, add. Second, carry. Next, check. Finally, answer.", 4),
    ("1. add\n2. carry\n- check\n* answer", 4),
    ("The answer is 4.", 0),
    ("", 0),
    ("step 1: lower case does not count", 0),
])
def test_reasoning_steps_counts_markers(text, steps):
    assert count_steps(text) == steps
    assert get_reward("reasoning_steps")([text]) == [min(1.0, steps / 3)]


# ---- computed_steps ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, steps", [
    ("7+6=13 carry 1\n1+2+1=4\n</think>\n<answer>\n43\n</answer>", 2),  # the answer block does not count
    ("so x = -4, then\ny=x\nz = 12", 2),  # a value, not an equation between names
    ("</think>\n<answer>\n5=5\n</answer>", 0),
    ("", 0),
])
def test_computed_steps_counts_lines_with_a_value_inside_the_thinking(text, steps):
    from r1lab.data.completion_metrics import computed_steps

    assert computed_steps(text) == steps
    assert get_reward("computed_steps")([text]) == [min(1.0, steps)]
    assert get_reward("computed_steps", target=4)([text]) == [steps / 4]
    with pytest.raises(ConfigError, match="target"):
        get_reward("computed_steps", target=0)


# ---- repetition_penalty ---------------------------------------------------------------------------------------
def expected_repetition(tokens: list[str], n: int, max_penalty: float = -1.0) -> float:
    if len(tokens) < n:
        return 0.0
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return max_penalty * (1 - len(set(grams)) / len(grams))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_repetition_of_n_grams_of_one_to_six_words(n):
    text = "the quick brown fox jumps over " * 4  # 24 words, a 6-word cycle
    got = get_reward("repetition_penalty", ngram_size=n, max_penalty=-1.0)([text])[0]
    assert got == pytest.approx(expected_repetition(text.split(), n))
    assert got < 0


def test_repetition_edge_cases():
    reward = get_reward("repetition_penalty", ngram_size=2, max_penalty=-0.5)
    assert reward(["", "one", "no words repeat here"]) == [0.0, 0.0, 0.0]
    assert reward(["A b a B a b"])[0] == pytest.approx(-0.5 * (1 - 2 / 5))  # case-insensitive
    # text without spaces: every character is a word, by script or by the `lang` column
    assert words("我爱你我爱你") == list("我爱你我爱你")
    assert reward(["我爱你我爱你"])[0] == pytest.approx(-0.5 * (1 - 3 / 5))
    assert reward(["abab"], lang=["zh"]) == [0.0]  # one latin token, still one word
    with pytest.raises(ConfigError, match="max_penalty"):
        get_reward("repetition_penalty", max_penalty=0.5)


def test_style_rewards_are_bounded_on_hostile_input():
    huge = ("Step 1: " + "x " * 50 + "\n") * 20_000  # ~2 MB
    t0 = time.perf_counter()
    get_reward("reasoning_steps")([huge])
    repetition_value(huge, 3, -1.0)
    assert time.perf_counter() - t0 < 10
