"""THE answer extractor shared by the accuracy reward, rejection sampling and evaluation (the answer contract:
it lives in `data`, below every layer that reads answers).

One function decides what "the model's answer" is, so a completion that earns accuracy reward in RL is
exactly the completion that counts as correct in eval and is kept by rejection sampling.

Rule, in order (first hit wins):
1. the content of the LAST closed ``<answer>...</answer>`` block (stripped); if that content contains a
   ``\\boxed{...}``, the content of its last ``\\boxed{}`` instead;
2. the content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``) anywhere in the text;
3. the configured fallbacks, tried in the order given (default: ``("hash",)``):
   - ``"hash"``: what follows the last ``#### `` on its line (GSM8K style);
   - ``"answer_is"``: what follows the last "answer is" / "answer:" on its line;
   - ``"last_number"``: the last number in the text (lenient; for models never taught a format).
An empty result counts as no answer: the function returns ``None``.

Everything here is linear in the text length (``rfind`` and bounded scans), so megabytes of adversarial
output cost milliseconds: a ``\\boxed{`` whose braces do not close within `MAX_BOXED_CHARS` yields nothing
rather than the rest of the text, and only the last `MAX_BOXED_TRIES` boxes are candidates.
"""

from __future__ import annotations

import re
from fractions import Fraction

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
FALLBACKS = ("hash", "answer_is", "last_number")
DEFAULT_FALLBACKS: tuple[str, ...] = ("hash",)
MAX_BOXED_CHARS = 10_000  # a \boxed{} longer than this is not an answer; stops unbounded brace scans

_HASH = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"answer(?: is|:)[ \t:]*([^\n]*)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(?:\.\d+)?")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\ufe63": "-", "\uff0d": "-"})


_BRACE = re.compile(r"(?<!\\)[{}]")
MAX_BOXED_TRIES = 20  # only the last few \boxed are candidates: bounded work on adversarial text


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the `}` closing the `{` at open_index (escaped braces skipped), within MAX_BOXED_CHARS."""
    depth = 0
    for m in _BRACE.finditer(text, open_index, min(len(text), open_index + MAX_BOXED_CHARS)):
        depth += 1 if m.group(0) == "{" else -1
        if depth == 0:
            return m.start()
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` among the last MAX_BOXED_TRIES, or None."""
    search_end = len(text)
    for _ in range(MAX_BOXED_TRIES):
        i = max(text.rfind("\\boxed", 0, search_end), text.rfind("\\fbox", 0, search_end))
        if i < 0:
            return None
        j = i + (6 if text.startswith("\\boxed", i) else 5)
        j += len(text[j : j + 64]) - len(text[j : j + 64].lstrip(" "))
        if j < len(text) and text[j] == "{":
            close = _matching_brace(text, j)
            if close is not None:
                return text[j + 1 : close].strip()
        search_end = i  # malformed or unclosed: try an earlier one
    return None


def answer_block(text: str) -> str | None:
    """Content of the last closed ``<answer>...</answer>`` block, or None."""
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(ANSWER_OPEN) : end].strip()


def _fallback(text: str, name: str) -> str | None:
    if name == "hash":
        hits = list(_HASH.finditer(text[-100_000:]))
        return hits[-1].group(1).strip().rstrip(".").strip() if hits else None
    if name == "answer_is":
        hits = list(_ANSWER_IS.finditer(text[-100_000:]))
        return hits[-1].group(1).strip().rstrip(".").strip() if hits else None
    if name == "last_number":
        hits = list(_NUMBER.finditer(text[-100_000:]))
        return hits[-1].group(0).rstrip(",") if hits else None
    raise ValueError(f"unknown answer fallback {name!r}; known: {', '.join(FALLBACKS)}")


def extract_answer(text: object, fallbacks: tuple[str, ...] | list[str] = DEFAULT_FALLBACKS) -> str | None:
    """The model's final answer in `text` (see the module docstring for the rule), or None."""
    if not isinstance(text, str) or not text:
        return None
    answer = answer_block(text)
    if answer is not None:
        boxed = last_boxed(answer) if "\\boxed" in answer or "\\fbox" in answer else None
        answer = boxed if boxed else answer
        return answer or None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for name in fallbacks:
        found = _fallback(text, name)
        if found:
            return found
    return None


# ---------------------------------------------------------------------------------------------------------
# Exact numbers: the cheap, certain part of answer equivalence (used by the grader's fast path and by voting)

_PLAIN = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+")
_RATIO = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_LATEX_FRAC = re.compile(r"([+-]?)\\[dt]?frac\{\s*([+-]?\d+)\s*\}\{\s*(\d+)\s*\}")
_WRAPPERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("\\boxed{", "}"), ("\\text{", "}"), ("{", "}"))
MAX_EXACT_DIGITS = 60


def normalize_answer_text(answer: str) -> str:
    """Surface clean-up that never changes meaning: minus signs, math delimiters, thin spaces, final period."""
    s = answer.translate(_MINUS_SIGNS).strip()
    for _ in range(4):
        before = s
        s = s.rstrip(".").strip()
        for left, right in _WRAPPERS:
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)].strip()
        s = s.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\ ", " ").replace("\\left", "").replace("\\right", "")
        if s == before:
            break
    return s


def exact_number(answer: str) -> Fraction | None:
    """The exact rational an answer spells as a plain number (``-1,234.5``, ``3/4``, ``\\frac{3}{4}``), else None."""
    if len(answer) > 4 * MAX_EXACT_DIGITS:
        return None
    s = normalize_answer_text(answer)
    if sum(ch.isdigit() for ch in s) > MAX_EXACT_DIGITS:
        return None
    if _PLAIN.fullmatch(s):
        return Fraction(s.replace(",", ""))
    m = _RATIO.fullmatch(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    m = _LATEX_FRAC.fullmatch(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) == "-" else value
    return None


def canonical_answer(answer: str | None) -> str | None:
    """A voting key: equal for answers that spell the same exact number, else the cleaned-up text."""
    if answer is None:
        return None
    value = exact_number(answer)
    if value is not None:
        return str(value)
    s = " ".join(normalize_answer_text(answer).split())
    return s or None
