"""`r1lab run configs/smollm2.yaml` at smoke size: the real SmolLM2-135M-Instruct through every stage of the same
pipeline as the tiny default (a few prompts, one step per stage), in the chat template, with the tiny student
distilled from it. Checks the plumbing and the recipe's shape, not its findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1lab.config import load_config
from r1lab.recipe import build_pipeline, run_recipe
from r1lab.recipe.config import RecipeConfig

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "smollm2.yaml"
PERMISSIVE = ("{n: 4, max_new_tokens: 48, temperature: 1.0, data: {size: 4}, require_format: false, language: null, "
              "accept: [{name: computed_steps, min: 0}]}")
SMOKE = [
    "progress=false", "data.corpus_size=120", "data.cold_start_size=8", "data.vocab_size=300", "eval.size=4",
    "eval.n=1", "eval.max_new_tokens=24", "student_base.train.max_steps=20", "cold_start_data=null",
    "cold_start.train.max_steps=1", "r1_sft.train.max_steps=1", "student_distill.train.max_steps=2",
    f"rejection={PERMISSIVE}", f"distill_data={PERMISSIVE}",
    *[f"{s}.{k}" for s in ("r1_zero", "r1_rl", "r1", "student_rl")
      for k in ("train.max_steps=1", "rollout.prompts_per_step=2", "rollout.group_size=2",
                "rollout.max_new_tokens=16", "data.size=4")],
]


def test_the_config_is_the_r1_recipe_on_the_pretrained_model():
    cfg = load_config(RecipeConfig, CONFIG, [])
    names = [s.name for s in build_pipeline(cfg).stages]
    assert names[:4] == ["data", "base", "r1_zero", "cold_start_data"] and names[-1] == "eval"
    assert cfg.model.init_from == "smollm2-135m" and cfg.task.template == "chat"
    assert cfg.task.student_template == "plain"
    assert [r.name for r in cfg.cold_start_data.accept] == ["accuracy", "format", "computed_steps"]


@pytest.mark.timeout(600)
def test_every_stage_runs_on_smollm2(tmp_path):
    pytest.importorskip("gguf")
    run = run_recipe(CONFIG, tmp_path / "run", overrides=SMOKE, log=lambda *_: None)
    stages = json.loads((run / "stages.json").read_text())
    assert all((run / s / "done.json").exists() for s in stages)
    base = json.loads((run / "base" / "done.json").read_text())
    assert base["summary"] == {"pretrained": "smollm2-135m"}
    rows = json.loads((run / "eval" / "results.json").read_text())["checkpoints"]
    assert {r["stage"] for r in rows} == {"base", "r1_zero", "cold_start", "r1_rl", "r1_sft", "r1", "student_base",
                                          "student_distill", "student_rl"}
    cold = [json.loads(line) for line in (run / "data" / "cold_start.jsonl").read_text().splitlines()]
    assert cold and all("<|im_start|>assistant" in r["prompt"] for r in cold)  # SmolLM2's chat template
