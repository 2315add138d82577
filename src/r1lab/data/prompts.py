"""Which prompts a sampling stage sees: a task of `load_task`, its split and size, rendered with a template
(shared by RL and rejection sampling)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from r1lab.config import StrictModel


class PromptDataConfig(StrictModel):
    """Prompts: a task of `r1lab.data.load_task`, rendered with a template."""

    task: str = Field("arith", description="task spec for r1lab.data.load_task (e.g. arith, rg:leg_counting)")
    split: str = Field("train", description="task split")
    size: int = Field(512, ge=1, description="number of prompts (visited in a seeded order, epoch after epoch)")
    seed: int = Field(0, description="task generation / order seed")
    template: Literal["r1", "chat", "plain"] = Field("plain", description="prompt template")
    think_prefill: bool | None = Field(None, description="end the prompt with '<think>\\n' (None: template default)")
