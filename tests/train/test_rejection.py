"""Rejection sampling: what is kept (verified, formatted, one language, not truncated), deduplication,
decontamination, provenance, and an SFT JSONL the SFT stage reads back."""

from __future__ import annotations

import json

import pytest
from rl_toy import char_tokenizer, tiny_llama

from r1lab.data import format_completion, get_template, load_task
from r1lab.engine import Completion
from r1lab.errors import DataError
from r1lab.sampling.rejection import RejectionConfig, rejection_sample, sample
from r1lab.train.stages.sft import read_sft_records

PREFILL = get_template("plain").prefill  # "<think>\n": the prompt ends with it, the completion continues


class ScriptedSampler:
    """The engine's interface with fixed completions per prompt (so every filter can be aimed at)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def generate(self, prompts, params):
        self.calls.append(params)
        out = []
        for p in prompts:
            rows = self.script[p][: params.n]
            out.append([Completion(text=t, token_ids=list(range(len(t))), logprobs=[0.0] * len(t),
                                   finish_reason=f, prompt_token_ids=[1]) for t, f in rows])
        return out


def written(thinking: str, answer: str) -> str:
    """What the model writes after the prefill."""
    return format_completion(thinking, answer)[len(PREFILL):]


@pytest.fixture
def problems():
    return load_task("arith", "train", 3, 0)


def script_for(problems):
    tpl = get_template("plain")
    script = {}
    for r in problems:
        good = written(f"I add {r['prompt'][:-2]} step by step.", r["answer"])
        script[tpl.render(r["prompt"])] = [
            (good, "stop"),
            (good, "length"),                                         # truncated
            (written("I guess.", str(int(r["answer"]) + 1)), "stop"),  # incorrect
            (f"<answer>{r['answer']}</answer>", "stop"),              # correct answer, no think block
            (good, "stop"),                                           # exact duplicate of the first
            (written("我们把这些数字逐个相加然后检查结果", r["answer"]), "stop"),  # CoT not in English
            (written(f"Adding {r['prompt'][:-2]} gives {r['answer']}; let me verify it again.", r["answer"]), "stop"),
        ]
    return script


def cfg(tmp_path, **over):
    return RejectionConfig.model_validate({"checkpoint": "ckpt-x", "data": {"task": "arith", "template": "plain"},
                                           "n": 7, "out": str(tmp_path / "rs.jsonl"), "dedup": {"exact": True, "near": False}, **over})


def test_only_verified_well_formed_single_language_completions_are_kept(tmp_path, problems):
    sampler = ScriptedSampler(script_for(problems))
    res = rejection_sample(cfg(tmp_path), sampler, problems, checkpoint="ckpt-x")
    c = res.counts
    assert c["sampled"] == 21 and c["prompts"] == 3
    assert (c["rejected/truncated"], c["rejected/incorrect"], c["rejected/format"], c["rejected/language"]) == (3, 3, 3, 3)
    assert c["verified"] == 9 and c["rejected/duplicate"] == 3 and c["kept"] == 6
    assert sum(v for k, v in c.items() if k.startswith("rejected/")) + c["kept"] == c["sampled"]
    rec = res.records[0]
    assert rec["prompt"].endswith(PREFILL) and rec["prompt"] == get_template("plain").render(problems[0]["prompt"])
    assert rec["completion"] == sampler.script[rec["prompt"]][0][0] and rec["answer"] == problems[0]["answer"]
    prov = rec["metadata"]["provenance"]
    rs = next(p for p in prov if p["step"] == "rejection_sampling")
    assert rs["checkpoint"] == "ckpt-x" and rs["rewards"]["accuracy"] == 1.0 and rs["rewards"]["format"] == 1.0
    assert rs["sampling"]["n"] == 7 and rs["sampling"]["temperature"] == 0.7
    assert prov[-1]["step"] == "dedup_exact"
    assert len({r["id"] for r in res.records}) == 6


def test_decontamination_and_per_prompt_cap(tmp_path, problems):
    sampler = ScriptedSampler(script_for(problems))
    res = rejection_sample(cfg(tmp_path, max_per_prompt=1), sampler, problems, eval_prompts=[problems[1]["prompt"]])
    assert res.counts["rejected/per_prompt_cap"] == 6  # per prompt: the duplicate and the second correct one
    assert res.counts["rejected/contaminated"] == 1
    assert [r["source_id"] for r in res.records] == [problems[0]["id"], problems[2]["id"]]


def test_writes_sft_jsonl_that_sft_reads(tmp_path, problems):
    sampler = ScriptedSampler(script_for(problems))
    res = sample(cfg(tmp_path), model=object(), tokenizer=None, records=problems, sampler=sampler)
    rows = read_sft_records(tmp_path / "rs.jsonl")
    assert [r["completion"] for r in rows] == [r["completion"] for r in res.records]
    summary = json.loads((tmp_path / "rs.summary.json").read_text())
    assert summary["counts"]["kept"] == 6 and summary["checkpoint"] == "ckpt-x"
    assert [p.seed for p in sampler.calls] == [0]  # one engine call for 3 prompts, seeded from cfg.seed
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries


def test_real_engine_run_is_deterministic_and_accounts_for_every_sample(tmp_path):
    tok = char_tokenizer("0123456789+-=?<>/\nathinkswer")
    problems = load_task("arith", "train", 4, 0)
    outs = []
    for name in ("a", "b"):
        c = cfg(tmp_path, n=3, max_new_tokens=12, out=str(tmp_path / name / "rs.jsonl"), dedup={"exact": False, "near": True})
        res = sample(c, model=tiny_llama(len(tok)), tokenizer=tok, records=problems)
        counts = res.counts
        assert counts["sampled"] == 12
        assert sum(v for k, v in counts.items() if k.startswith("rejected/")) + counts["kept"] == 12
        outs.append((tmp_path / name / "rs.summary.json").read_text())
    a, b = (json.loads(o)["counts"] for o in outs)
    assert a == b


def test_acceptance_rule_from_config(tmp_path, problems):
    """`accept`: rewards and thresholds replace the built-in rule, so any model's recipe states its own: here
    accuracy alone (format and language no longer checked), then accuracy plus a minimum of reasoning steps."""
    sampler = ScriptedSampler(script_for(problems))
    res = rejection_sample(cfg(tmp_path, accept=[{"name": "accuracy"}]), sampler, problems)
    c = res.counts
    assert c["rejected/truncated"] == 3 and c["rejected/below/accuracy"] == 3 and "rejected/format" not in c
    assert c["verified"] == 15  # the no-think and the Chinese-CoT completions are correct, so kept now
    steps = [{"name": "accuracy"}, {"name": "reasoning_steps", "params": {"target": 1}, "min": 1.0}]
    res = rejection_sample(cfg(tmp_path, accept=steps), ScriptedSampler(script_for(problems)), problems)
    assert res.counts["verified"] == 0 and res.counts["rejected/below/reasoning_steps"] == 15  # no step markers
    lenient = [{"name": "accuracy"}, {"name": "code", "min": 1.0, "required": False}]  # code cannot judge: None
    assert rejection_sample(cfg(tmp_path, accept=lenient), ScriptedSampler(script_for(problems)),
                            problems).counts["verified"] == 15


def test_few_shot_examples_are_shown_to_the_sampler_but_not_kept_in_the_sft_prompt(tmp_path, problems):
    """R1's few-shot cold start: worked examples come before each prompt while sampling; the kept record's prompt
    is the plain prompt SFT will train on."""
    shots = tmp_path / "worked.jsonl"
    shots.write_text("".join(json.dumps({"completion": written("2+2=4", "4"), "metadata": {"problem": f"2+{i}=?"}})
                             + "\n" for i in (2, 3)))
    tpl, script = get_template("plain"), script_for(problems)
    examples = [("2+2=?", written("2+2=4", "4")), ("2+3=?", written("2+2=4", "4"))]
    sampler = ScriptedSampler({tpl.with_shots(examples).render(p): rows for p, rows in
                               ((r["prompt"], script[tpl.render(r["prompt"])]) for r in problems)})
    res = rejection_sample(cfg(tmp_path, few_shot=2, few_shot_path=str(shots)), sampler, problems)
    assert res.counts["kept"] == 2 * len(problems)
    assert {r["prompt"] for r in res.records} == {tpl.render(r["prompt"]) for r in problems}


def test_few_shot_needs_its_examples(tmp_path, problems):
    with pytest.raises(ValueError, match="few_shot_path"):
        cfg(tmp_path, few_shot=2)
    shots = tmp_path / "one.jsonl"
    shots.write_text(json.dumps({"completion": "x", "problem": "1+1=?"}) + "\n")
    with pytest.raises(DataError, match="holds only 1 worked"):
        rejection_sample(cfg(tmp_path, few_shot=2, few_shot_path=str(shots)), ScriptedSampler({}), problems)
    shots.write_text(json.dumps({"completion": "x"}) + "\n")
    with pytest.raises(DataError, match=r"one.jsonl:1: a worked example needs"):
        rejection_sample(cfg(tmp_path, few_shot=1, few_shot_path=str(shots)), ScriptedSampler({}), problems)
