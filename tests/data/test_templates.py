"""Prompt templates: R1-Zero text, plain, chat; a correct completion is read back by the rewards' extractor."""

import pytest

from r1lab.data import format_completion, get_template
from r1lab.data.templates import R1_ZERO_TEMPLATE
from r1lab.data.tokenizer import train_tokenizer
from r1lab.errors import DataError


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return train_tokenizer(["12+34=?\n<think>\n12+34=46\n</think>\n<answer>\n46\n</answer>"] * 20, vocab_size=300)


class QwenLikeTokenizer:
    """A reasoning-model chat template that already opens the think block."""

    chat_template = "stub"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        body = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages)
        return body + ("<|assistant|><think>\n" if add_generation_prompt else "")


def test_r1_zero_template_is_the_paper_text():
    t = get_template("r1")
    text = t.render("What is 2+3?")
    assert text == R1_ZERO_TEMPLATE.format(prompt="What is 2+3?")
    assert text.startswith("A conversation between User and Assistant.")
    assert text.endswith("User: What is 2+3?. Assistant:") and t.prefill == ""
    prefilled = get_template("r1", think_prefill=True)
    assert prefilled.render("x").endswith("Assistant: <think>\n")


def test_plain_template_prefills_the_think_block():
    t = get_template("plain")
    assert t.render("12+34=?") == "12+34=?\n<think>\n" and t.prefill == "<think>\n"
    assert get_template("plain", think_prefill=False).render("q") == "q\n"


def test_chat_template_uses_the_tokenizer_and_prefills_once(tiny_tokenizer):
    t = get_template("chat")
    text = t.render("12+34=?", tiny_tokenizer)
    assert text == "User: 12+34=?\nAssistant: <think>\n"
    qwen = t.render("hi", QwenLikeTokenizer())
    assert qwen.endswith("<|assistant|><think>\n") and qwen.count("<think>") == 1
    with_system = get_template("chat", system="be brief").render("hi", tiny_tokenizer)
    assert with_system.startswith("be brief\nUser: hi")
    with pytest.raises(DataError, match="needs a tokenizer"):
        t.render("hi")


def test_unknown_template_and_misplaced_system_prompt():
    with pytest.raises(DataError):
        get_template("alpaca")
    with pytest.raises(DataError):
        get_template("plain", system="x")


@pytest.mark.parametrize("name", ["r1", "chat", "plain"])
def test_a_correct_completion_round_trips_through_the_rewards(name, tiny_tokenizer):
    rewards = pytest.importorskip("r1lab.rewards")
    if not hasattr(rewards, "get_reward"):
        pytest.skip("r1lab.rewards has not landed its public API yet")
    t = get_template(name)
    prompt_text = t.render("12+34=?", tiny_tokenizer)
    full = format_completion("12+34=46", "46")
    assert prompt_text.endswith(t.prefill)
    generated = t.split_completion(full)  # what the model writes after the prompt
    assert rewards.extract_answer(t.prefill + generated) == "46"
    fmt = rewards.get_reward("format")
    acc = rewards.get_reward("accuracy")
    assert fmt([generated], prefill=[t.prefill]) == [1.0]
    assert acc([generated], answer=["46"], prefill=[t.prefill]) == [1.0]
    assert acc([t.split_completion(format_completion("12+34=47", "47"))], answer=["46"], prefill=[t.prefill]) == [0.0]


def test_completion_layout_has_each_tag_on_its_own_line():
    assert format_completion("a\nb", "7") == "<think>\na\nb\n</think>\n<answer>\n7\n</answer>"


def test_few_shot_examples_come_first_as_earlier_turns(tiny_tokenizer):
    """Each worked example is shown as the model would have written it (prefill included), then the prompt."""
    shot = ("1+2=?", "1+2=3\n</think>\n<answer>\n3\n</answer>")
    assert get_template("plain").with_shots([shot]).render("12+34=?") == (
        "1+2=?\n<think>\n1+2=3\n</think>\n<answer>\n3\n</answer>\n\n12+34=?\n<think>\n")
    chat = get_template("chat").with_shots([shot]).render("12+34=?", QwenLikeTokenizer())
    assert chat == ("<|user|>1+2=?\n<|assistant|><think>\n1+2=3\n</think>\n<answer>\n3\n</answer>\n"
                    "<|user|>12+34=?\n<|assistant|><think>\n")
    with pytest.raises(DataError, match="few-shot"):
        get_template("r1").with_shots([shot])
