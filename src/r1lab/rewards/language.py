"""`language_consistency` (DeepSeek-R1 §2.3.2): the share of chain-of-thought words in the target language.

R1 adds this to the accuracy reward to stop language mixing in the CoT. r1lab measures "in the target
language" by Unicode *script*, which needs no model or word list and works on any tokenizer's output:

- the chain of thought is the text of the first ``<think>`` block (after putting the `prefill` back; up to
  ``</think>``, else up to ``<answer>``, else to the end); without a ``<think>`` tag, everything before
  ``<answer>``;
- a *word* is a maximal run of letters (Unicode category L*, after NFC) of one script; the script of a letter
  is the first word of its Unicode name (LATIN, CYRILLIC, GREEK, ARABIC, HEBREW, DEVANAGARI, THAI, HANGUL,
  HIRAGANA, KATAKANA; every CJK ideograph is Han). Digits, punctuation and math symbols are not words;
  LaTeX commands (``\\frac``) and single ASCII letters (math variables such as ``x``) are not counted either;
- the `lang` column (default ``"en"``) names the target: a language code (``en fr de es ... -> Latin``,
  ``zh -> Han``, ``ja -> Han+Hiragana+Katakana``, ``ko -> Hangul+Han``, ``ru -> Cyrillic``, ...) or a
  script name (``"Latin"``); an unknown code scores None;
- reward = target-script words / all words; None when the CoT has no words.
Limits, honestly: languages that share a script are indistinguishable (English vs French CoT is
"consistent"); at most the first `MAX_COT_CHARS` characters are read, so the cost per call is bounded.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from r1lab.rewards.registry import column, register_reward, with_prefill

MAX_COT_CHARS = 200_000
_WORD = re.compile(r"\\?[^\W\d_]+")

_LATIN_LANGS = "en fr de es it pt nl sv da no nb fi pl cs sk sl hr ro hu tr vi id ms tl sw ca eu gl et lv lt is ga cy af sq".split()
LANG_SCRIPTS: dict[str, frozenset[str]] = {
    **{code: frozenset({"LATIN"}) for code in _LATIN_LANGS},
    **{code: frozenset({"CYRILLIC"}) for code in ("ru", "uk", "bg", "sr", "mk", "be", "kk")},
    **{code: frozenset({"ARABIC"}) for code in ("ar", "fa", "ur")},
    **{code: frozenset({"DEVANAGARI"}) for code in ("hi", "mr", "ne")},
    "zh": frozenset({"HAN"}),
    "ja": frozenset({"HAN", "HIRAGANA", "KATAKANA"}),
    "ko": frozenset({"HANGUL", "HAN"}),
    "el": frozenset({"GREEK"}),
    "he": frozenset({"HEBREW"}),
    "th": frozenset({"THAI"}),
}


@lru_cache(maxsize=65536)
def script_of(ch: str) -> str:
    """Script of one letter from its Unicode name (``'é' -> 'LATIN'``, ``'中' -> 'HAN'``)."""
    name = unicodedata.name(ch, "")
    if not name:
        return "UNKNOWN"
    first, _, rest = name.partition(" ")
    if first == "CJK":
        return "HAN"
    if first in ("FULLWIDTH", "HALFWIDTH"):
        first = rest.partition(" ")[0]
    if first == "KATAKANA-HIRAGANA":
        return "KATAKANA"
    return first


def target_scripts(lang: str | None) -> frozenset[str] | None:
    if lang is None:
        lang = "en"
    key = str(lang).strip()
    if key.lower() in LANG_SCRIPTS:
        return LANG_SCRIPTS[key.lower()]
    if key.upper() in {s for scripts in LANG_SCRIPTS.values() for s in scripts}:
        return frozenset({key.upper()})
    return None


def chain_of_thought(text: str) -> str:
    """The CoT part of a completion (see module docstring)."""
    start = text.find("<think>")
    if start >= 0:
        body = text[start + len("<think>") :]
        for end_tag in ("</think>", "<answer>"):
            end = body.find(end_tag)
            if end >= 0:
                return body[:end]
        return body
    end = text.find("<answer>")
    return text if end < 0 else text[:end]


def script_words(text: str) -> list[str]:
    """The script of every counted word of text, in order."""
    scripts: list[str] = []
    for match in _WORD.finditer(unicodedata.normalize("NFC", text[:MAX_COT_CHARS])):
        word = match.group(0)
        if word.startswith("\\"):  # a LaTeX command
            continue
        if word.isascii():
            if len(word) > 1:
                scripts.append("LATIN")
            continue
        previous = None
        for ch in word:  # split mixed-script runs ("中文abc") into one word per script
            script = script_of(ch)
            if script != previous:
                scripts.append(script)
                previous = script
    return scripts


def language_share(text: str, lang: str | None = "en") -> float | None:
    """Share of the CoT's words written in `lang`'s script(s); None if no words or unknown `lang`."""
    targets = target_scripts(lang)
    if targets is None:
        return None
    scripts = script_words(chain_of_thought(text))
    if not scripts:
        return None
    return sum(s in targets for s in scripts) / len(scripts)


@register_reward("language_consistency")
def language_consistency(completions, lang=None, prefill=None, **_) -> list[float | None]:
    langs = column(lang, len(completions), "lang")
    return [language_share(t, l) for t, l in zip(with_prefill(completions, prefill), langs)]
