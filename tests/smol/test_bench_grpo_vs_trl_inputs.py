"""benchmarks/bench_grpo_vs_trl.py takes its task and rewards from configs/smollm2_grpo.yaml and gives both trainers
ONE reward function: r1lab calls it with `metadata`, TRL with the dataset's `metadata_json` column."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_grpo_vs_trl", ROOT / "benchmarks" / "bench_grpo_vs_trl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_task_and_rewards_are_the_rl_only_configs(bench):
    cfg = bench.recipe()
    records = bench.load_records()
    (task,) = {r["task"] for r in records}  # the config's spec, its options in canonical order
    assert len(records) == bench.N_RECORDS and task.startswith("rg:basic_arithmetic?") and "max_terms=2" in task
    assert cfg.data.task.startswith("rg:basic_arithmetic?")
    assert [s.name for s in cfg.rewards] == ["accuracy", "format_soft"]


def test_one_reward_scores_prose_and_tags_the_same_for_both_trainers(bench):
    record = bench.load_records()[0]
    gold = str(record["answer"])
    texts = [f"so it is {gold}.", "it is 99999.", f"x\n</think>\n<answer>\n{gold}\n</answer>"]
    n, reward = len(texts), bench.bench_reward()
    columns = {"answer": [gold] * n, "task": [record["task"]] * n, "prefill": ["<think>\n"] * n}
    r1lab_side = reward(texts, metadata=[record["metadata"]] * n, **columns)
    trl_side = reward(texts, metadata_json=[json.dumps(record["metadata"])] * n, prompts=["p"] * n, **columns)
    # last-number accuracy + 0.25 x format_soft: the prefilled <think> is one of four tags (0.25 x 0.25)
    assert r1lab_side == pytest.approx([1.0625, 0.0625, 1.25])
    assert trl_side == r1lab_side
