"""The eval runner with a scripted sampler: exact metrics, recorded settings, per-task breakdown, files."""

from __future__ import annotations

import json
import re

import pytest

from r1lab.data.answer import DEFAULT_FALLBACKS
from r1lab.engine import Completion
from r1lab.errors import ConfigError
from r1lab.eval import evaluate, pass_at_k


def solve(prompt: str) -> int:
    """The arithmetic problem in a rendered prompt ('...15+18=?...')."""
    expr = re.search(r"(\d+(?:[+\-*]\d+)+)=\?", prompt).group(1)
    return eval(expr)  # digits and + - * only, matched above


class ScriptedSampler:
    """Sample i of every problem: right answer when pattern[i] is True, else a distinct wrong one."""

    def __init__(self, pattern):
        self.pattern = pattern
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append(params)
        out = []
        for prompt in prompts:
            truth = solve(prompt)
            samples = []
            for i in range(params.n):
                value = truth if self.pattern[i] else truth + 1000 + i
                text = f"add them\n</think>\n<answer>\n{value}\n</answer>"
                samples.append(Completion(text=text, token_ids=list(range(10 + i)), logprobs=[0.0] * (10 + i),
                                          finish_reason="stop", prompt_token_ids=[1, 2]))
            out.append(samples)
        return out


def test_metrics_follow_from_the_scripted_correctness(tmp_path):
    sampler = ScriptedSampler([True, False, True, False])
    result = evaluate("scripted", "arith?operands=2", n=4, size=6, sampler=sampler, template="plain", out_dir=tmp_path)
    overall = result["overall"]
    assert overall["problems"] == 6 and overall["n"] == 4 and overall["k"] == 4
    assert overall["pass@1"] == pytest.approx(0.5)
    assert overall["pass@k"]["2"] == pytest.approx(pass_at_k(4, 2, 2)) and overall["pass@k"]["4"] == 1.0
    assert overall["maj@k"] == 1.0  # the right answer appears twice, each wrong one once
    assert overall["pass@1_ci"] == [pytest.approx(0.5), pytest.approx(0.5)]  # identical problems: no spread
    assert overall["mean_length"] == pytest.approx(11.5)
    assert overall["format_rate"] == 1.0  # the plain template's "<think>\n" prefill was put back
    assert [p["correct"] for p in result["problems"]] == [[True, False, True, False]] * 6


def test_sampling_settings_default_to_the_r1_protocol_and_are_recorded(tmp_path):
    sampler = ScriptedSampler([True] * 3)
    result = evaluate("scripted", "arith?operands=2", n=3, size=2, sampler=sampler, template="plain",
                      max_new_tokens=32, out_dir=tmp_path)
    params = sampler.calls[0]
    assert (params.temperature, params.top_p, params.n, params.max_new_tokens) == (0.6, 0.95, 3, 32)
    settings = result["settings"]
    assert settings["temperature"] == 0.6 and settings["top_p"] == 0.95 and settings["n"] == 3
    assert settings["template"] == "plain" and settings["prefill"] == "<think>\n" and settings["split"] == "test"
    assert settings["fallbacks"] == list(DEFAULT_FALLBACKS)  # fallbacks=None (unset) means the default
    explicit = evaluate("scripted", "arith?operands=2", n=3, size=2, sampler=ScriptedSampler([True] * 3),
                        template="plain", fallbacks=None)
    assert explicit["settings"]["fallbacks"] == list(DEFAULT_FALLBACKS)
    written = json.loads((tmp_path / "eval.json").read_text())
    assert written["settings"] == settings and written["overall"]["pass@1"] == 1.0
    md = (tmp_path / "eval.md").read_text()
    assert "temperature=0.6" in md and "top_p=0.95" in md and "pass@1" in md and "100.0" in md


def test_per_task_breakdown_and_majority_losing_to_wrong_answers():
    sampler = ScriptedSampler([False, True, False, False])
    result = evaluate("scripted", ["arith?operands=2", "column_add"], n=4, size=3, sampler=sampler, template="plain")
    assert set(result["tasks"]) == {"arith?operands=2", "column_add"}
    for metrics in result["tasks"].values():
        assert metrics["problems"] == 3 and metrics["pass@1"] == pytest.approx(0.25)
        assert metrics["maj@k"] == 0.0  # four different answers: the first (wrong) one wins the tie
    assert result["overall"]["problems"] == 6


def test_k_limits_the_vote_to_the_first_samples():
    sampler = ScriptedSampler([True, False, False, False])
    result = evaluate("scripted", "arith?operands=2", n=4, k=1, size=2, sampler=sampler, template="plain")
    assert result["overall"]["maj@k"] == 1.0 and result["overall"]["k"] == 1


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        evaluate("scripted", "arith", n=2, k=3, size=2, sampler=ScriptedSampler([True] * 2), template="plain")
    with pytest.raises(ConfigError):
        evaluate("scripted", [], sampler=ScriptedSampler([True]), template="plain")


class StepsSampler(ScriptedSampler):
    """Right answers show `steps` computed lines in the thinking; wrong ones show none."""

    def __init__(self, steps):
        super().__init__([True, False])
        self.steps = steps

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for k, samples in enumerate(out):
            lines = "".join(f"{j}+1={j + 1}\n" for j in range(self.steps[k % len(self.steps)]))
            samples[0].text = lines + samples[0].text
        return out


def test_think_steps_are_counted_per_sample_and_summarised_over_correct_answers():
    """`steps`: computed lines inside <think> per sample; the median over correct samples ignores wrong ones."""
    result = evaluate("scripted", "arith?operands=2", n=2, size=3, sampler=StepsSampler([1, 2, 4]), template="plain")
    assert [p["steps"] for p in result["problems"]] == [[1, 0], [2, 0], [4, 0]]
    assert result["overall"]["think_steps_correct_median"] == 2.0
    # right samples are worked, wrong ones bare answers: each style's share and its own accuracy
    overall = result["overall"]
    assert overall["style/worked/share"] == overall["style/answer_only/share"] == 0.5
    assert overall["style/worked/accuracy"] == 1.0 and overall["style/answer_only/accuracy"] == 0.0
