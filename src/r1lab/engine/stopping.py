"""When a row ends (stop token, EOS or stop string) and what its final text is."""

from __future__ import annotations

from typing import Any

import torch

from r1lab.engine.params import SamplingParams
from r1lab.errors import ConfigError


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids: the tokenizer's and the HF generation config's (which may list several); the model config's
    only when neither has one (an r1lab config's default EOS id may not match the tokenizer in use)."""

    def ids_of(value: Any) -> set[int]:
        if isinstance(value, int):
            return {value}
        if isinstance(value, (list, tuple)):
            return {int(v) for v in value}
        return set()

    ids = ids_of(getattr(tokenizer, "eos_token_id", None))
    ids |= ids_of(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    return ids or ids_of(getattr(getattr(model, "config", None), "eos_token_id", None))


def decode(tokenizer: Any, ids: list[int]) -> str:
    if tokenizer is None:
        return ""
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


class StopCriteria:
    """Per-row stop checks for one generate call.

    Stop strings are looked for in the decoded tail of a row (enough tokens to cover the longest stop
    string), so the check costs O(window) per row and step instead of re-decoding the whole row.
    """

    def __init__(self, tokenizer: Any, params: SamplingParams, eos_ids: set[int]):
        if params.stop and tokenizer is None:
            raise ConfigError("SamplingParams.stop: stop strings need a tokenizer; use stop_token_ids instead")
        self.tokenizer = tokenizer
        self.params = params
        self.stop_ids = set(params.stop_token_ids) | (set() if params.ignore_eos else set(eos_ids))
        self._stop_tensor = torch.tensor(sorted(self.stop_ids), dtype=torch.long)
        self.window = max((len(s) for s in params.stop), default=0) + 8

    def token_hit(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B] token ids -> [B] bool: the token is a stop token or EOS."""
        if not self.stop_ids:
            return torch.zeros_like(tokens, dtype=torch.bool)
        return torch.isin(tokens, self._stop_tensor.to(tokens.device))

    def string_hit(self, ids: list[int]) -> bool:
        """Whether a stop string appears in the row's text; called after each new token."""
        if not self.params.stop:
            return False
        tail = decode(self.tokenizer, ids[-self.window :])
        return any(s in tail for s in self.params.stop)

    def final_text(self, ids: list[int]) -> str:
        """The completion's text: without a trailing stop token, cut at the first stop string."""
        if ids and ids[-1] in self.stop_ids:
            ids = ids[:-1]
        text = decode(self.tokenizer, ids)
        hits = [(text.find(s), s) for s in self.params.stop if s in text]
        if hits:
            start, s = min(hits)
            text = text[: start + len(s)] if self.params.include_stop_str else text[:start]
        return text
