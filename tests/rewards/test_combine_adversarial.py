"""Weighted combinations keep each component; every reward survives adversarial text within bounded time."""

from __future__ import annotations

import math
import time

import pytest

from r1lab.errors import ConfigError
from r1lab.rewards import combine_rewards, get_reward, list_rewards, register_reward


def test_weighted_total_and_components_are_kept():
    combined = combine_rewards({"accuracy": 1.0, "format": 0.5})
    completions = ["<think>r</think><answer>4</answer>", "<answer>4</answer>", "<think>r</think><answer>5</answer>"]
    breakdown = combined.score(completions, answer=["4", "4", "4"])
    assert breakdown.components == {"accuracy": [1.0, 1.0, 0.0], "format": [1.0, 0.0, 1.0]}
    assert breakdown.total == [1.5, 1.0, 0.5]
    assert combined(completions, answer=["4", "4", "4"]) == [1.5, 1.0, 0.5]
    assert combined.last.components["format"] == [1.0, 0.0, 1.0]  # readable by a logger after the call
    assert breakdown.means() == {"accuracy": pytest.approx(2 / 3), "format": pytest.approx(2 / 3), "total": 1.0}


def test_none_components_are_left_out_of_the_total():
    combined = combine_rewards({"accuracy": 2.0, "language_consistency": 1.0})
    completions = ["<think>3 + 4</think><answer>7</answer>", "<think>add them</think><answer>7</answer>"]
    breakdown = combined.score(completions, answer=[None, "7"])
    assert breakdown.components["accuracy"] == [None, 1.0]
    assert breakdown.components["language_consistency"] == [None, 1.0]  # no words in the first CoT
    assert breakdown.total == [None, 3.0]
    assert math.isnan(combine_rewards({"accuracy": 1.0}).score(["x"], answer=[None]).means()["accuracy"])


def test_parameters_and_foreign_functions():
    def open_r1_style_len(completions, **kwargs):  # any TRL / open-r1 reward plugs in
        return [float(len(c)) for c in completions]

    combined = combine_rewards(
        {"overlong": 1.0, "mine": 0.1}, params={"overlong": {"max_len": 8, "cache_len": 4}}, functions={"mine": open_r1_style_len}
    )
    assert combined(["aaaaaa", "aa"]) == [pytest.approx(-0.5 + 0.6), pytest.approx(0.2)]


def test_combination_errors_are_config_errors():
    with pytest.raises(ConfigError):
        combine_rewards({})
    with pytest.raises(ConfigError):
        combine_rewards({"accuracy": float("nan")})
    with pytest.raises(ConfigError):
        combine_rewards({"accuracy": 1.0}, params={"format": {}})
    with pytest.raises(ConfigError):
        combine_rewards({"no_such_reward": 1.0})


def test_registering_a_plain_function():
    @register_reward("test_constant_half")
    def half(completions, **_):
        return [0.5] * len(completions)

    assert "test_constant_half" in list_rewards()
    fn = get_reward("test_constant_half")
    assert fn(["a", "b"]) == [0.5, 0.5] and fn.__name__ == "test_constant_half"


ADVERSARIAL = {
    "huge-number": "<think>x</think><answer>" + "9" * 100_000 + "</answer>",
    "huge-power": "<think>x</think><answer>$10^{10^{10^{10}}}$ apples</answer>",
    "factorial": "<think>x</think><answer>$(10^{9})!$ is it</answer>",
    "nested-latex": "<think>x</think><answer>$" + "\\frac{1}{" * 150 + "2" + "}" * 150 + "$</answer>",
    "unbalanced": "<think>x</think><answer>$" + "\\sqrt{" * 2000 + "</answer>",
    "megabytes": "<think>" + "wait, let me check. " * 100_000 + "</think><answer>" + "1+" * 200_000 + "1</answer>",
    "boxes": "\\boxed{" * 100_000,
    "binary": "\x00\udcff\ufffe<answer>\x00</answer>",
    "code-bomb": "```python\n" + "(" * 100_000 + "\n```",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_every_reward_survives_adversarial_text_in_bounded_time(name):
    text = ADVERSARIAL[name]
    columns = {"answer": ["5"], "tests": [[{"input": "", "output": "5"}]], "lang": ["en"], "prefill": [""]}
    start = time.monotonic()
    for reward_name in ["accuracy", "format", "format_soft", "language_consistency", "overlong", "length", "code"]:
        params = {"timeout_s": 1.0} if reward_name == "accuracy" else {"cpu_s": 1, "wall_s": 2} if reward_name == "code" else {}
        values = get_reward(reward_name, **params)([text], **columns)
        assert len(values) == 1 and (values[0] is None or math.isfinite(values[0]))
    assert time.monotonic() - start < 20
    assert get_reward("accuracy", timeout_s=1.0)([text], answer=["5"]) == [0.0]


def test_garbage_completion_objects_score_without_raising():
    weird = [None, 42, [{"role": "assistant"}], [{"content": [{"type": "text", "text": "<answer>5</answer>"}]}], {"x": 1}]
    assert get_reward("accuracy")(weird, answer=["5"] * 5) == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert get_reward("format")(weird) == [0.0] * 5
