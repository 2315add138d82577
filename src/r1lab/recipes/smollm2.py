"""SmolLM2-135M-Instruct recipe constants and the reward shared by its config, benchmark and tests.

Measured on this machine (SmolLM2-135M-Instruct, chat template with `<think>\\n` prefilled, 24 held-out
problems x 4 samples, 48 new tokens): the model never writes `<answer>` tags on its own (strict pass@1 0%), but
states the result in prose ("9 - 1 is 8"), so the R1-Zero-style run grades the *last number* of a completion
(`answer_is`, then `last_number` fallbacks of the shared extractor) and teaches the format with the partial
credit of `format_soft` (0.25 per R1 tag used exactly once). Base pass@1 with that extractor on TASK: 17%
at temperature 1.0, 20% at 0.7.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

# Single-digit addition/subtraction of two terms: the one reasoning-gym setting where the model is right
# often enough (10-50%) for group-relative advantages to carry signal from the first step.
TASK = ('rg:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&operators=["+","-"]'
        '&allow_parentheses=false&allow_negation=false')
SOURCE = "smollm2-135m"
ANSWER_FALLBACKS = ("answer_is", "last_number")
ACCURACY_WEIGHT, FORMAT_WEIGHT = 1.0, 0.25
THINK_PREFILL = "<think>\n"


def reward_specs() -> list[dict[str, Any]]:
    """The `rewards:` list of configs/smollm2.yaml (RLConfig RewardSpec dicts)."""
    return [{"name": "accuracy", "weight": ACCURACY_WEIGHT, "params": {"fallbacks": list(ANSWER_FALLBACKS)}},
            {"name": "format_soft", "weight": FORMAT_WEIGHT}]


class SmolReward:
    """accuracy (last-number fallbacks) + 0.25 x format_soft as ONE plain function, callable by r1lab's RL stage
    (columns `answer`, `task`, `metadata`) and by TRL's GRPOTrainer (dataset columns `answer`, `task`,
    `metadata_json`), so both trainers optimise exactly the same reward."""

    __name__ = "smol_reward"

    def __init__(self, prefill: str = THINK_PREFILL):
        from r1lab.rewards import get_reward

        self.prefill = prefill
        self.accuracy = get_reward("accuracy", fallbacks=ANSWER_FALLBACKS)
        self.format = get_reward("format_soft")

    def __call__(self, completions: Sequence[Any], answer: Sequence[str], task: Sequence[str] | None = None,
                 metadata: Sequence[dict] | None = None, metadata_json: Sequence[str] | None = None,
                 **_: Any) -> list[float]:
        n = len(completions)
        if metadata is None and metadata_json is not None:
            metadata = [json.loads(m) for m in metadata_json]
        cols = {"answer": list(answer), "task": list(task or [None] * n), "metadata": list(metadata or [None] * n),
                "prefill": [self.prefill] * n}
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        acc = self.accuracy(texts, **cols)
        fmt = self.format(texts, **cols)
        return [ACCURACY_WEIGHT * (a or 0.0) + FORMAT_WEIGHT * (f or 0.0) for a, f in zip(acc, fmt)]
