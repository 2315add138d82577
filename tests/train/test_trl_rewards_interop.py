"""Rewards move both ways between r1lab and TRL.

r1lab -> TRL: r1lab's reward functions passed as `reward_funcs` to TRL's `GRPOTrainer` score TRL's rollout the
same as r1lab scores it (TRL hands them its dataset columns, `answer` and `prefill` included).
TRL -> r1lab: TRL's own reward functions, named `trl.rewards:<function>` in a reward spec (with their column name
and conversational form declared), score r1lab completions as they score the same completions in TRL's form.
"""

from __future__ import annotations

import pytest
from rl_toy import char_tokenizer, tiny_llama

from r1lab.errors import ConfigError
from r1lab.rewards import RewardSpec, build_reward, get_reward

trl = pytest.importorskip("trl")

PREFILL = "<think>\n"
COMPLETIONS = [  # what the model wrote after a prompt that ends with the prefill
    "12 + 30 = 42\n</think>\n<answer>42</answer>",
    "12 + 30 = 41\n</think>\n<answer>41</answer>",
    "no closing tags, 42",
    "x</think><answer>\\boxed{42}</answer>",
]
GOLD = "42"


def test_r1lab_rewards_inside_trls_grpo_trainer(tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    tok = char_tokenizer("0123456789+=?<>/\n abcdefghijklmnopqrstuvwxyz\\{}")
    model_dir = tmp_path / "model"
    tiny_llama(tok.vocab_size + 2).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    ours = [get_reward("accuracy"), get_reward("format"), get_reward("reasoning_steps")]
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=4,
                      use_cpu=True, bf16=False, report_to=[], save_strategy="no")
    data = Dataset.from_dict({"prompt": ["12+30=?\n" + PREFILL], "answer": [GOLD], "prefill": [PREFILL]})
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=ours, args=args, processing_class=tok, train_dataset=data)
    inputs = [{"prompt": "12+30=?\n" + PREFILL, "answer": GOLD, "prefill": PREFILL}] * len(COMPLETIONS)
    ids = [tok(c, add_special_tokens=False)["input_ids"] for c in COMPLETIONS]
    per_func = trainer._calculate_rewards(inputs, [i["prompt"] for i in inputs], COMPLETIONS, ids)

    assert trainer.reward_func_names == ["accuracy", "format", "reasoning_steps"]  # TRL logs them by our names
    for column, fn in enumerate(ours):
        expected = fn(COMPLETIONS, answer=[GOLD] * 4, prefill=[PREFILL] * 4)
        assert per_func[:, column].tolist() == pytest.approx(expected)
    assert per_func[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert per_func[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]


def test_trls_reward_functions_inside_r1lab():
    from trl.rewards import accuracy_reward, think_format_reward

    specs = [RewardSpec(name="trl.rewards:think_format_reward", conversational=True),
             RewardSpec(name="trl.rewards:accuracy_reward", columns={"solution": "answer"}, conversational=True)]
    reward = build_reward(specs)
    breakdown = reward.score(COMPLETIONS, answer=[GOLD] * 4, prefill=[PREFILL] * 4)

    as_trl = [[{"role": "assistant", "content": PREFILL + c}] for c in COMPLETIONS]  # TRL's form of the same text
    assert breakdown.components["trl.rewards:think_format_reward"] == think_format_reward(as_trl)
    theirs = accuracy_reward(as_trl, solution=[GOLD] * 4)
    assert [None if v is None else float(v) for v in breakdown.components["trl.rewards:accuracy_reward"]] == theirs
    assert breakdown.components["trl.rewards:think_format_reward"] == [1.0, 1.0, 0.0, 1.0]
    assert think_format_reward.__name__ == "think_format_reward"  # the imported function is left as it was


def test_imported_factories_take_params_and_bad_names_are_one_line_errors():
    from trl.rewards import get_cosine_scaled_reward

    spec = RewardSpec(name="trl.rewards:get_cosine_scaled_reward", params={"max_len": 100},
                      columns={"solution": "answer"}, conversational=True)
    ids = [list(range(len(c))) for c in COMPLETIONS]  # token ids, as r1lab's RL stage passes them
    ours = build_reward([spec]).score(COMPLETIONS, answer=[GOLD] * 4, prefill=[PREFILL] * 4, completion_ids=ids).total
    as_trl = [[{"role": "assistant", "content": PREFILL + c}] for c in COMPLETIONS]
    theirs = get_cosine_scaled_reward(max_len=100)(as_trl, solution=[GOLD] * 4, completion_ids=ids)
    assert ours == pytest.approx(theirs) and len(set(theirs)) > 1  # correct and wrong lengths scored apart
    with pytest.raises(ConfigError, match="cannot import"):
        get_reward("trl.rewards:no_such_reward")
    with pytest.raises(ConfigError, match="for imported"):
        build_reward([RewardSpec(name="accuracy", conversational=True)])
    with pytest.raises(ConfigError, match="'module:function'"):
        get_reward("no_such_reward")
