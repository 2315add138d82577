"""Prompt formats: R1-Zero's template, chat templates of instruct models, and a plain one for tiny models.

Every completion follows one layout (`format_completion`): a think block, then an answer block, each tag
on its own line, which is what `r1lab.rewards.extract_answer` and the strict `format` reward read. A
template's `prefill` is the text the rendered prompt already ends with (e.g. `<think>\\n`); rewards
prepend it to the completion before checking the format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from r1lab.errors import DataError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_PREFILL = THINK_OPEN + "\n"

# DeepSeek-R1 paper, Table 1 (the R1-Zero template); `{prompt}` is replaced by the question.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and "
    "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>. User: {prompt}. Assistant:"
)


def format_completion(thinking: str, answer: str) -> str:
    """The one completion layout: `<think>\\n{thinking}\\n</think>\\n<answer>\\n{answer}\\n</answer>`."""
    return f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n{ANSWER_OPEN}\n{answer}\n{ANSWER_CLOSE}"


@dataclass(frozen=True)
class Template:
    """Renders a problem into the text a model continues; `prefill` is what that text ends with."""

    name: str
    prefill: str = ""
    system: str | None = None
    # worked (problem, completion) pairs shown before the prompt, each completion as written after the prefill:
    # few-shot prompting is how R1 got readable chains of thought from a model that had never seen the format
    shots: tuple[tuple[str, str], ...] = ()

    def with_shots(self, shots: Sequence[tuple[str, str]]) -> "Template":
        if shots and self.name == "r1":
            raise DataError("few-shot prompts need the 'chat' or 'plain' template, not 'r1'")
        return replace(self, shots=tuple((p, c) for p, c in shots))

    def render(self, prompt: str, tokenizer: Any = None) -> str:
        if self.name == "r1":
            text = R1_ZERO_TEMPLATE.format(prompt=prompt.strip().rstrip("."))
            return text + (" " + self.prefill if self.prefill else "")
        if self.name == "plain":
            worked = "".join(f"{p}\n{self.prefill}{c}\n\n" for p, c in self.shots)
            return f"{worked}{prompt}\n{self.prefill}"
        if self.name == "chat":
            return self._render_chat(prompt, tokenizer)
        raise DataError(f"unknown template {self.name!r}")

    def _render_chat(self, prompt: str, tokenizer: Any) -> str:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise DataError("template 'chat' needs a tokenizer with a chat template (tokenizer.chat_template)")
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for problem, completion in self.shots:
            messages += [{"role": "user", "content": problem},
                         {"role": "assistant", "content": self.prefill + completion}]
        messages.append({"role": "user", "content": prompt})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if self.prefill:
            # templates of reasoning models (R1 distills, Qwen3) may already open the think block
            stripped = text.rstrip("\n")
            if stripped.endswith(self.prefill.rstrip("\n")):
                text = stripped + "\n" if self.prefill.endswith("\n") else stripped
            else:
                text += self.prefill
        return text

    def split_completion(self, completion: str) -> str:
        """The part of a full completion the model writes after this template's prefill."""
        if not completion.startswith(self.prefill):
            raise DataError(f"completion does not start with the template's prefill {self.prefill!r}")
        return completion[len(self.prefill):]


TEMPLATE_NAMES = ("r1", "chat", "plain")


def get_template(name: str, *, think_prefill: bool | None = None, system: str | None = None) -> Template:
    """`"r1"` (R1-Zero, no prefill by default, as in the paper), `"chat"` (the tokenizer's chat template,
    `<think>\\n` prefilled by default, as DeepSeek's usage notes advise) or `"plain"` (`{prompt}\\n<think>\\n`,
    for tiny models trained from scratch)."""
    defaults = {"r1": False, "chat": True, "plain": True}
    if name not in defaults:
        raise DataError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATE_NAMES)}")
    prefill = THINK_PREFILL if (defaults[name] if think_prefill is None else think_prefill) else ""
    if system is not None and name != "chat":
        raise DataError(f"template {name!r} takes no system prompt (only 'chat' does)")
    return Template(name=name, prefill=prefill, system=system)
