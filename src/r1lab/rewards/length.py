"""Length rewards: DAPO's soft overlong punishment (`overlong`), a plain linear penalty (`length`; not Kimi's
reward), the cosine length scaling of "Demystifying Long Chain-of-Thought" (`cosine`) and Kimi k1.5's
correctness-dependent length reward (`kimi_length`).

Length |y| is counted in tokens when it can be: from the `completion_ids` column (TRL passes it to reward
functions; r1lab's RL stage does too), else with the `tokenizer` given to the factory, else — and only
then — in characters of the completion text (so set `max_len` in the same unit you feed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from r1lab.errors import ConfigError
from r1lab.rewards.accuracy import make_accuracy
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
    """−coef · min(|y|, L_max) / L_max: from 0 (empty) to −coef (L_max or longer). Not Kimi's length reward
    (that one is `kimi_length`, relative to the group's shortest and longest answers)."""
    return -coef * min(length, max_len) / max_len


def cosine_length_value(length: int, correct: bool, max_len: int, *, min_correct: float, max_correct: float,
                        min_wrong: float, max_wrong: float) -> float:
    """Yeo et al. 2025 (arXiv 2502.03373) Eq. 1: r = lo + ½(hi − lo)(1 + cos(π·min(L, L_max)/L_max)).

    Correct answers go from `max_correct` (empty) down to `min_correct` (L_max): shorter right answers earn more.
    Wrong answers go from `min_wrong` (empty) up to `max_wrong` (L_max): a long wrong attempt is punished less
    than a short one, so the policy is not pushed to give up early."""
    lo, hi = (min_correct, max_correct) if correct else (max_wrong, min_wrong)
    return lo + 0.5 * (hi - lo) * (1.0 + math.cos(math.pi * min(length, max_len) / max_len))


def kimi_length_values(lengths: list[int], correct: list[bool]) -> list[float]:
    """Kimi k1.5 §2.3.1 over one group: λ_i = 0.5 − (len_i − min_len)/(max_len − min_len); a correct answer gets
    λ_i, a wrong one min(0, λ_i). All lengths equal: 0 for everyone."""
    shortest, longest = min(lengths), max(lengths)
    if longest == shortest:
        return [0.0] * len(lengths)
    lam = [0.5 - (n - shortest) / (longest - shortest) for n in lengths]
    return [v if ok else min(0.0, v) for v, ok in zip(lam, correct)]


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


def make_cosine(max_len: int = 1_000, min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                min_value_wrong: float = -1.0, max_value_wrong: float = -0.5, tokenizer=None, **accuracy_params):
    """`cosine`: correctness from the `accuracy` reward (same extractor and grader), length as in `overlong`.
    A completion whose gold answer is missing scores None. Parameter names follow open-r1's `get_cosine_scaled_reward`."""
    if max_len <= 0:
        raise ConfigError(f"cosine: max_len must be > 0, got {max_len}")
    if min_value_correct > max_value_correct or min_value_wrong > max_value_wrong:
        raise ConfigError("cosine: need min_value_correct <= max_value_correct and min_value_wrong <= max_value_wrong")
    accuracy = make_accuracy(**accuracy_params)

    def cosine(completions, completion_ids=None, **columns) -> list[float | None]:
        acc = accuracy(completions, **columns)
        lengths = _lengths(completions, completion_ids, tokenizer)
        return [None if a is None else cosine_length_value(
                    n, a >= 1.0, max_len, min_correct=min_value_correct, max_correct=max_value_correct,
                    min_wrong=min_value_wrong, max_wrong=max_value_wrong)
                for a, n in zip(acc, lengths)]

    return cosine


def make_kimi_length(tokenizer=None, **accuracy_params):
    """`kimi_length`: groups are the completions that share a prompt (the `prompts` column TRL and r1lab pass; the
    whole call when it is absent). Completions without a gold answer score None and leave their group's range."""
    accuracy = make_accuracy(**accuracy_params)

    def kimi_length(completions, completion_ids=None, prompts=None, **columns) -> list[float | None]:
        n = len(completions)
        acc = accuracy(completions, **columns)
        lengths = _lengths(completions, completion_ids, tokenizer)
        groups: dict[object, list[int]] = defaultdict(list)
        for i, prompt in enumerate(column(prompts, n, "prompts")):
            if acc[i] is not None:
                groups[str(prompt)].append(i)
        out: list[float | None] = [None] * n
        for rows in groups.values():
            values = kimi_length_values([lengths[i] for i in rows], [acc[i] >= 1.0 for i in rows])
            for i, v in zip(rows, values):
                out[i] = v
        return out

    return kimi_length


register_reward("cosine", factory=make_cosine)
register_reward("kimi_length", factory=make_kimi_length)

