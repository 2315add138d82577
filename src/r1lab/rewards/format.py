"""`format` (strict) and `format_soft` (tag-count partial credit): does a completion follow the R1 layout?

The layout is ``<think> reasoning </think> <answer> answer </answer>`` (r1lab.data writes it with each tag
on its own line). Both rewards first put the template's `prefill` column back in front of the completion,
because a prompt that already ends with ``<think>\\n`` makes the model's text start inside the think block.

- `format`: 1.0 when the whole text (outer whitespace aside) is exactly one think block followed by exactly
  one answer block, separated only by whitespace, with a non-blank answer and no other tag anywhere; else 0.0.
  Whitespace inside and between blocks is free (open-r1's regex also demands newlines around each tag;
  r1lab's templates produce them, but a model that writes ``<think>x</think><answer>5</answer>`` follows the
  format just as well).
- `format_soft`: 0.25 for each of the four tags that occurs exactly once (open-r1's `tag_count_reward`), so
  a model learning the layout gets a gradient before it is perfect.
Both are single linear scans (str.count / str.find): megabytes cost milliseconds.
"""

from __future__ import annotations

from r1lab.rewards.registry import register_reward, with_prefill

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def strict_format_ok(text: str) -> bool:
    """True iff text is exactly `<think>…</think>` then `<answer>…</answer>` (see module docstring)."""
    text = text.strip()
    if any(text.count(tag) != 1 for tag in TAGS):
        return False
    if not (text.startswith(THINK_OPEN) and text.endswith(ANSWER_CLOSE)):
        return False
    think_close = text.find(THINK_CLOSE)
    answer_open = text.find(ANSWER_OPEN)
    if not (len(THINK_OPEN) <= think_close < answer_open):
        return False
    if text[think_close + len(THINK_CLOSE) : answer_open].strip():
        return False
    return bool(text[answer_open + len(ANSWER_OPEN) : len(text) - len(ANSWER_CLOSE)].strip())


def tag_count_score(text: str) -> float:
    """0.25 per R1 tag that occurs exactly once."""
    return 0.25 * sum(text.count(tag) == 1 for tag in TAGS)


@register_reward("format")
def format_reward(completions, prefill=None, **_) -> list[float | None]:
    return [1.0 if strict_format_ok(t) else 0.0 for t in with_prefill(completions, prefill)]


@register_reward("format_soft")
def format_soft_reward(completions, prefill=None, **_) -> list[float | None]:
    return [tag_count_score(t) for t in with_prefill(completions, prefill)]
