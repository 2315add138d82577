"""`language_consistency` (share of CoT words in the target script) and the length rewards (DAPO Eq. 13, linear)."""

from __future__ import annotations

import pytest

from r1lab.errors import ConfigError
from r1lab.rewards import get_reward
from r1lab.rewards.language import chain_of_thought, language_share, script_of
from r1lab.rewards.length import linear_length_penalty, soft_overlong_penalty

lang = get_reward("language_consistency")


def test_scripts_of_letters():
    assert [script_of(c) for c in "aéЖλ中あア한ب"] == [
        "LATIN", "LATIN", "CYRILLIC", "GREEK", "HAN", "HIRAGANA", "KATAKANA", "HANGUL", "ARABIC",
    ]
    assert script_of("Ａ") == "LATIN"  # full-width Latin


def test_share_counts_words_by_script():
    # 4 Latin words + 1 Han run ("计算") -> 4/5 English
    assert language_share("<think>Let me 计算 this sum</think><answer>3</answer>", "en") == pytest.approx(4 / 5)
    assert language_share("<think>Let me 计算 this sum</think>", "zh") == pytest.approx(1 / 5)
    assert language_share("<think>Сначала сложим числа</think>", "ru") == 1.0
    assert language_share("<think>まず 数字を 足す</think>", "ja") == 1.0  # Han + kana both count for Japanese


def test_numbers_math_latex_and_single_letters_are_not_words():
    # only "so" and "therefore" are words; \frac, x, digits and symbols are not
    assert language_share("<think>so x = \\frac{3}{4} + 2, therefore 这个</think>", "en") == pytest.approx(2 / 3)
    assert language_share("<think>3 + 4 = 7</think><answer>7</answer>") is None  # no words: not applicable


def test_chain_of_thought_boundaries():
    assert chain_of_thought("<think>a b</think><answer>c</answer>") == "a b"
    assert chain_of_thought("<think>a b<answer>c</answer>") == "a b"  # unclosed think ends at the answer
    assert chain_of_thought("<think>a b") == "a b"
    assert chain_of_thought("a b<answer>c</answer>") == "a b"  # no think tag: before the answer


def test_reward_uses_lang_column_default_en_and_prefill():
    completions = ["Les nombres sont 3 et 4</think><answer>7</answer>", "数字是三和四</think><answer>7</answer>"]
    assert lang(completions, prefill="<think>\n") == [1.0, 0.0]  # French is Latin script: consistent with "en"
    assert lang(completions, prefill="<think>\n", lang=["fr", "zh"]) == [1.0, 1.0]
    assert lang(completions, lang=["Latin", "xx-unknown"]) == [1.0, None]


def test_answer_block_is_not_part_of_the_chain_of_thought():
    assert lang(["<think>think in English</think><answer>中文答案</answer>"]) == [1.0]


@pytest.mark.parametrize(
    "length, expected",
    [(0, 0.0), (12, 0.0), (16, 0.0), (17, -0.25), (18, -0.5), (19, -0.75), (20, -1.0), (21, -1.0), (10_000, -1.0)],
)
def test_soft_overlong_is_dapo_eq13(length, expected):
    # L_max = 20, L_cache = 4: free up to 16, linear to -1 at 20, -1 beyond
    assert soft_overlong_penalty(length, 20, 4) == pytest.approx(expected)


def test_soft_overlong_is_continuous_and_monotone():
    values = [soft_overlong_penalty(n, 100, 30) for n in range(0, 130)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert soft_overlong_penalty(70, 100, 30) == 0.0 and soft_overlong_penalty(100, 100, 30) == -1.0


def test_overlong_reward_counts_tokens_from_completion_ids_else_tokenizer_else_chars():
    overlong = get_reward("overlong", max_len=20, cache_len=4)
    assert overlong(["x", "y"], completion_ids=[list(range(18)), list(range(5))]) == [-0.5, 0.0]
    assert overlong(["a" * 19]) == [-0.75]  # characters when nothing better is known
    words = get_reward("overlong", max_len=20, cache_len=4, tokenizer=lambda text: text.split())
    assert words(["w " * 17]) == [-0.25]


def test_linear_length_penalty():
    assert linear_length_penalty(0, 100) == 0.0
    assert linear_length_penalty(50, 100, coef=0.5) == -0.25
    assert linear_length_penalty(500, 100) == -1.0
    assert get_reward("length", max_len=10)(["a" * 5]) == [-0.5]


def test_bad_length_parameters_are_config_errors():
    with pytest.raises(ConfigError):
        get_reward("overlong", max_len=10, cache_len=20)
    with pytest.raises(ConfigError):
        get_reward("overlong", max_len=10, cache_len=0)
    with pytest.raises(ConfigError):
        get_reward("length", max_len=0)
    with pytest.raises(ConfigError, match="no parameter"):
        get_reward("overlong", L_max=3)
    with pytest.raises(ConfigError, match="unknown reward"):
        get_reward("nope")
