"""Length rewards: DAPO's soft overlong punishment (`overlong`) and a plain linear penalty (`length`).

Length |y| is counted in tokens when it can be: from the `completion_ids` column (TRL passes it to reward
functions; r1lab's RL stage does too), else with the `tokenizer` given to the factory, else — and only
then — in characters of the completion text (so set `max_len` in the same unit you feed).
"""

from __future__ import annotations

from typing import Any

from r1lab.errors import ConfigError
from r1lab.rewards.registry import column, completion_text, register_reward


def soft_overlong_penalty(length: int, max_len: int, cache_len: int) -> float:
    """DAPO Eq. 13 with L_max = max_len, L_cache = cache_len:
    0 up to L_max − L_cache, then a linear ramp to −1 at L_max, and −1 beyond L_max."""
    safe = max_len - cache_len
    if length <= safe:
        return 0.0
    if length <= max_len:
        return (safe - length) / cache_len
    return -1.0


def linear_length_penalty(length: int, max_len: int, coef: float = 1.0) -> float:
    """−coef · min(|y|, L_max) / L_max: from 0 (empty) to −coef (L_max or longer)."""
    return -coef * min(length, max_len) / max_len


def _token_count(tokenizer: Any, text: str) -> int:
    """Tokens in text for an HF tokenizer, a `tokenizers.Tokenizer` (Encoding.ids) or a plain callable."""
    if hasattr(tokenizer, "encode"):
        encoded = tokenizer.encode(text, add_special_tokens=False)
        return len(getattr(encoded, "ids", encoded))
    return len(tokenizer(text))


def _lengths(completions, completion_ids: Any, tokenizer: Any) -> list[int]:
    ids = column(completion_ids, len(completions), "completion_ids")
    out = []
    for completion, token_ids in zip(completions, ids):
        if token_ids is not None:
            out.append(len(token_ids))
        elif tokenizer is not None:
            out.append(_token_count(tokenizer, completion_text(completion)))
        else:
            out.append(len(completion_text(completion)))
    return out


def make_overlong(max_len: int = 20_480, cache_len: int = 4_096, tokenizer: Any = None):
    if not (max_len > 0 and 0 < cache_len <= max_len):
        raise ConfigError(f"overlong: need 0 < cache_len <= max_len, got max_len={max_len}, cache_len={cache_len}")

    def overlong(completions, completion_ids=None, **_) -> list[float | None]:
        return [soft_overlong_penalty(n, max_len, cache_len) for n in _lengths(completions, completion_ids, tokenizer)]

    return overlong


def make_length(max_len: int = 4_096, coef: float = 1.0, tokenizer: Any = None):
    if max_len <= 0:
        raise ConfigError(f"length: max_len must be > 0, got {max_len}")

    def length(completions, completion_ids=None, **_) -> list[float | None]:
        return [linear_length_penalty(n, max_len, coef) for n in _lengths(completions, completion_ids, tokenizer)]

    return length


register_reward("overlong", factory=make_overlong)
register_reward("length", factory=make_length)
