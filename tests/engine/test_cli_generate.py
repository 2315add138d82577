"""`r1lab generate` / `r1lab chat` on a tiny checkpoint directory (HF Llama + character tokenizer)."""

from __future__ import annotations

import builtins
import json

import pytest
from engine_fixtures import char_tokenizer, single_thread, tiny_llama  # noqa: F401  (autouse)

from r1lab.cli import main
from r1lab.engine import SamplingParams, make_sampler


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(path)
    char_tokenizer().save_pretrained(path)
    return path


def test_generate_json_matches_the_sampler(checkpoint, capsys):
    args = ["generate", "-m", str(checkpoint), "-p", "the cat", "-p", "a dog", "--temperature", "0",
            "--max-new-tokens", "6", "--template", "none", "--json"]
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    model, tok = tiny_llama(), char_tokenizer()
    expected = make_sampler(model, tok).generate(["the cat", "a dog"], SamplingParams(temperature=0, max_new_tokens=6))
    assert [r["prompt"] for r in records] == ["the cat", "a dog"]
    for record, group in zip(records, expected):
        assert record["completions"][0]["token_ids"] == group[0].token_ids
        assert record["completions"][0]["text"] == group[0].text


def test_generate_streams_the_same_text(checkpoint, capsys):
    args = ["generate", "-m", str(checkpoint), "-p", "the cat", "--temperature", "0", "--max-new-tokens", "6",
            "--template", "none", "--stream"]
    assert main(args) == 0
    captured = capsys.readouterr()
    expected = make_sampler(tiny_llama(), char_tokenizer()).generate(["the cat"], SamplingParams(temperature=0, max_new_tokens=6))
    assert captured.out == expected[0][0].text + "\n"
    assert "tokens/s" in captured.err


def test_chat_answers_each_turn(checkpoint, capsys, monkeypatch):
    lines = iter(["hello", "/exit"])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    assert main(["chat", "-m", str(checkpoint), "--max-new-tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("model> ")


def test_unknown_model_is_a_one_line_error(capsys, tmp_path):
    assert main(["generate", "-m", str(tmp_path / "missing"), "-p", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "smollm2-135m" in err
