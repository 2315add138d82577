"""Style rewards that read only the completion's text: `reasoning_steps` (open-r1), `computed_steps` (r1lab) and
`repetition_penalty` (Yeo et al. 2025, arXiv 2502.03373 §4.4). All are linear in the text length, so hostile input
costs little."""

from __future__ import annotations

import re
import unicodedata

from r1lab.data.completion_metrics import computed_steps
from r1lab.errors import ConfigError
from r1lab.rewards.registry import column, completion_text, register_reward

# A step marker: "Step 3:", a numbered item "3." or a bullet "-" / "*" opening a line, or a sequencing word.
STEP_MARKER = re.compile(r"\bStep \d+:|^[ \t]*\d+\.|^[ \t]*[-*][ \t]|\b(?:First|Second|Next|Finally),", re.M)
NO_SPACE_LANGS = ("zh", "ja", "th", "lo", "km", "my")


def count_steps(text: str) -> int:
    return len(STEP_MARKER.findall(text))


def reasoning_steps_value(text: str, target: int = 3) -> float:
    """min(1, markers / target): open-r1 rewards three or more explicit steps fully."""
    return min(1.0, count_steps(text) / target)


def _unspaced(ch: str) -> bool:
    """A character of a script written without spaces between words (CJK ideographs, kana, Thai, ...)."""
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK ", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR", "HANGUL"))


def words(text: str, lang: str | None = None) -> list[str]:
    """Whitespace words, lower-cased; text in a script without spaces counts each of its characters as a word
    (a language-neutral stand-in for a word segmenter), by `lang` when given, else by the characters themselves."""
    text = text.lower()
    if (lang or "").split("-")[0] in NO_SPACE_LANGS or any(_unspaced(c) for c in text):
        out: list[str] = []
        for token in text.split():
            out.extend(token if all(_unspaced(c) for c in token) else [token])
        return out
    return text.split()


def repetition_value(text: str, ngram: int, max_penalty: float, lang: str | None = None) -> float:
    """max_penalty · (1 − distinct n-grams / all n-grams); 0 for text shorter than one n-gram."""
    w = words(text, lang)
    if len(w) < ngram:
        return 0.0
    grams = [tuple(w[i:i + ngram]) for i in range(len(w) - ngram + 1)]
    repeated = 1.0 - len(set(grams)) / len(grams)
    return max_penalty * repeated if repeated else 0.0


def make_reasoning_steps(target: int = 3):
    if target < 1:
        raise ConfigError(f"reasoning_steps: target must be >= 1, got {target}")

    def reasoning_steps(completions, **_) -> list[float | None]:
        return [reasoning_steps_value(completion_text(c), target) for c in completions]

    return reasoning_steps


def make_computed_steps(target: int = 1):
    """min(1, lines of the thinking with a computed value / target): with target 1, an acceptance rule that keeps
    only traces with at least one intermediate step (R1's cold start: readable reasoning, not a bare answer)."""
    if target < 1:
        raise ConfigError(f"computed_steps: target must be >= 1, got {target}")

    def computed_steps_reward(completions, **_) -> list[float | None]:
        return [min(1.0, computed_steps(completion_text(c)) / target) for c in completions]

    return computed_steps_reward


def make_repetition_penalty(ngram_size: int = 3, max_penalty: float = -1.0):
    if max_penalty > 0:
        raise ConfigError(f"repetition_penalty: max_penalty must be <= 0, got {max_penalty}")
    if ngram_size < 1:
        raise ConfigError(f"repetition_penalty: ngram_size must be >= 1, got {ngram_size}")

    def repetition_penalty(completions, lang=None, **_) -> list[float | None]:
        langs = column(lang, len(completions), "lang")
        return [repetition_value(completion_text(c), ngram_size, max_penalty, lg) for c, lg in zip(completions, langs)]

    return repetition_penalty


register_reward("reasoning_steps", factory=make_reasoning_steps)
register_reward("repetition_penalty", factory=make_repetition_penalty)
register_reward("computed_steps", factory=make_computed_steps)
