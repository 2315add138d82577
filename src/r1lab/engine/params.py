"""What a caller asks the engine for (SamplingParams) and what it gets back (Completion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from r1lab.errors import ConfigError


@dataclass
class SamplingParams:
    """Sampling settings shared by every prompt of one `generate` call.

    temperature 0 means greedy. top_k 0, top_p 1 and min_p 0 disable those truncations. `stop` strings and
    `stop_token_ids` end a row independently of the others; the tokenizer's EOS always ends a row unless
    `ignore_eos`. `include_stop_str` keeps a matched stop string at the end of the text (R1-style format
    rewards look for closing tags). `speculative` asks r1lab models with an MTP module to draft with it
    (None: whenever the model has one).
    """

    n: int = 1
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    seed: int = 0
    include_stop_str: bool = True
    ignore_eos: bool = False
    speculative: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        checks = [
            (self.n >= 1, "n", "an integer >= 1"),
            (self.max_new_tokens >= 1, "max_new_tokens", "an integer >= 1"),
            (self.temperature >= 0, "temperature", ">= 0 (0 = greedy)"),
            (0 < self.top_p <= 1, "top_p", "in (0, 1]"),
            (self.top_k >= 0, "top_k", ">= 0 (0 = off)"),
            (0 <= self.min_p < 1, "min_p", "in [0, 1)"),
            (all(isinstance(s, str) and s for s in self.stop), "stop", "a list of non-empty strings"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ConfigError(f"SamplingParams.{name}: expected {expected}, got {getattr(self, name)!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def truncates(self) -> bool:
        """Whether the sampling policy differs from the model distribution at this temperature."""
        return self.top_k > 0 or self.top_p < 1 or self.min_p > 0


FinishReason = Literal["stop", "length"]


@dataclass
class Completion:
    """One sampled continuation.

    `logprobs[i]` is log p_model(token_i | prefix) at the sampling temperature, i.e.
    `log_softmax(logits / T)` (T = 1 when greedy): the quantity an RL trainer recomputes.
    `policy_logprobs[i]` is the log-probability under the distribution actually sampled from (after
    top-k / top-p / min-p renormalisation); it equals `logprobs[i]` when no truncation is set.
    `token_ids` include a final stop/EOS token when one ended the row; `text` never contains that token.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    prompt_token_ids: list[int]
    policy_logprobs: list[float] = field(default_factory=list)
