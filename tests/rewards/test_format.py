"""`format` (strict) and `format_soft` (0.25 per tag), per template and with the prefill column."""

from __future__ import annotations

import pytest

from r1lab.data import format_completion, get_template
from r1lab.rewards import get_reward

fmt = get_reward("format")
soft = get_reward("format_soft")


@pytest.mark.parametrize(
    "text, strict",
    [
        ("<think>\nreason\n</think>\n<answer>\n5\n</answer>", 1.0),
        ("<think>reason</think><answer>5</answer>", 1.0),  # newlines are not required
        ("  \n<think>r</think>\n\n<answer>5</answer>\n", 1.0),  # outer whitespace is free
        ("<think></think><answer>5</answer>", 1.0),  # an empty think block still follows the layout
        ("<think>r</think><answer> </answer>", 0.0),  # blank answer
        ("<think>r</think> text <answer>5</answer>", 0.0),  # text between the blocks
        ("preamble <think>r</think><answer>5</answer>", 0.0),  # text before
        ("<think>r</think><answer>5</answer> postscript", 0.0),  # text after
        ("<answer>5</answer><think>r</think>", 0.0),  # wrong order
        ("<think>r</think><answer>5</answer><answer>6</answer>", 0.0),  # two answers
        ("<think>a<think>b</think><answer>5</answer>", 0.0),  # nested think
        ("<think>r<answer>5</answer></think>", 0.0),  # answer inside think
        ("<think>r</think>", 0.0),
        ("5", 0.0),
        ("", 0.0),
    ],
)
def test_strict_format(text, strict):
    assert fmt([text]) == [strict]


@pytest.mark.parametrize(
    "text, score",
    [
        ("<think>r</think><answer>5</answer>", 1.0),
        ("<think>r</think>5", 0.5),
        ("r</think><answer>5</answer>", 0.75),
        ("<think><think>r</think><answer>5</answer>", 0.75),  # a doubled tag earns nothing
        ("plain text", 0.0),
    ],
)
def test_soft_format_is_a_quarter_per_tag_occurring_once(text, score):
    assert soft([text]) == [score]


def test_strict_implies_full_soft_score():
    texts = ["<think>r</think><answer>5</answer>", "<think>r</think> x <answer>5</answer>", "x"]
    for text, strict, partial in zip(texts, fmt(texts), soft(texts)):
        assert strict <= partial


@pytest.mark.parametrize("name", ["r1", "chat", "plain"])
def test_each_template_completion_passes_with_its_prefill(name):
    template = get_template(name)
    full = format_completion("3+4=7", "7")
    generated = full[len(template.prefill):]  # what the model writes after the rendered prompt
    assert fmt([generated], prefill=[template.prefill]) == [1.0]
    assert soft([generated], prefill=[template.prefill]) == [1.0]
    if template.prefill:  # without the prefill the opening tag is missing
        assert fmt([generated]) == [0.0]
        assert soft([generated]) == [0.75]


def test_prefill_may_be_a_scalar_and_completions_conversational():
    conversation = [{"role": "assistant", "content": "r\n</think>\n<answer>\n7\n</answer>"}]
    assert fmt([conversation, conversation], prefill="<think>\n") == [1.0, 1.0]


def test_megabytes_of_tags_are_cheap():
    import time

    huge = "<think>" * 300_000 + "</answer>" * 300_000
    start = time.monotonic()
    assert fmt([huge]) == [0.0] and soft([huge]) == [0.0]
    assert time.monotonic() - start < 2
