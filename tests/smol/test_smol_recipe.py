"""The SmolLM2 recipe's glue: one reward for r1lab and TRL, its config, verified traces, the student."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1lab.config import read_yaml, validate
from r1lab.recipe import smollm2 as recipe
from r1lab.train.rl import RLConfig

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smollm2_grpo.yaml"
TASK = "rg:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1"


def test_config_is_the_recipe():
    cfg = validate(RLConfig, read_yaml(CONFIG), str(CONFIG))
    assert cfg.model.init_from == recipe.SOURCE and cfg.data.task == recipe.TASK
    assert [s.model_dump(include={"name", "weight", "params"}) for s in cfg.rewards] == [
        {"params": {}, **s} for s in recipe.reward_specs()]
    assert cfg.data.template == "chat" and cfg.train.schedule == "constant"  # rl_with_curve needs constant


def test_reward_scores_prose_answers_and_tags_the_same_for_both_trainers():
    reward = recipe.SmolReward()
    rec = {"answer": "8", "task": TASK, "metadata": None}
    texts = ["9 - 1 is 8.", "9 - 1 is 7.", "reasoning\n</think>\n<answer>\n8\n</answer>", "no number"]
    r1lab_style = reward(texts, answer=[rec["answer"]] * 4, task=[TASK] * 4, metadata=[None] * 4)
    trl_style = reward(completions=[[{"role": "assistant", "content": t}] for t in texts], prompts=["p"] * 4,
                       answer=["8"] * 4, task=[TASK] * 4, metadata_json=[json.dumps(None)] * 4, trainer_state=None)
    # prefill "<think>\n" counts as one tag (0.25 x 0.25); the tagged answer uses all four once (0.25 x 1)
    assert r1lab_style == pytest.approx([1.0625, 0.0625, 1.25, 0.0625])
    assert trl_style == r1lab_style


def fake_sampler(texts_per_prompt):
    def generate(prompts, params):
        return [[SimpleNamespace(text=t, finish_reason=f, token_ids=[1]) for t, f in texts_per_prompt] for _ in prompts]
    return SimpleNamespace(generate=generate)


def test_verified_traces_keep_correct_finished_unique_samples():
    records = [{"id": "a", "prompt": "Calculate 5 + 3.", "answer": "8", "task": TASK, "metadata": None}]
    samples = [("5 + 3 is 8.", "stop"), ("5 + 3 is 8.", "stop"), ("It is 9.", "stop"), ("5 + 3 = 8 and", "length")]
    tokenizer = SimpleNamespace(chat_template="x", apply_chat_template=lambda m, **_: m[-1]["content"] + "\n")
    traces, counts = recipe.verified_traces(None, tokenizer, records, n=4, sampler=fake_sampler(samples))
    assert [t["completion"] for t in traces] == ["5 + 3 is 8."]
    assert counts == {"prompts": 1, "sampled": 4, "truncated": 1, "incorrect": 1, "duplicate": 1, "kept": 1}


def test_student_has_its_own_small_vocabulary():
    tok = recipe.student_tokenizer(["Calculate 5 + 3.\n<think>\n5 + 3 is 8."] * 20, vocab_size=300)
    student = recipe.new_student(tok)
    assert student.config.vocab_size == len(tok) <= 300
    assert tok.decode(tok("5 + 3 is 8.").input_ids, skip_special_tokens=True) == "5 + 3 is 8."
