"""The sampler interface every stage uses: `make_sampler(model, tokenizer).generate(prompts, params)`."""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

from r1lab.engine.loop import TokenCallback, run_chunk
from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.stopping import StopCriteria, eos_token_ids
from r1lab.errors import ConfigError

Prompt = str | Sequence[int]


class Sampler:
    """Batched sampling with r1lab's decode loop over a backend runner.

    `max_batch_rows` bounds the rows (prompts x n) decoded together; larger requests run in chunks.
    `threads` sets torch's intra-op threads while sampling (None: leave as is). Decoding issues hundreds of
    small parallel regions per token; on a CPU shared with other busy processes every region waits for all
    its threads to be scheduled, and one thread can then be many times faster than two.
    """

    def __init__(self, model: Any, tokenizer: Any, runner: Any, *, max_batch_rows: int = 64,
                 threads: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.runner = runner
        self.max_batch_rows = max_batch_rows
        self.threads = threads
        self.eos_ids = eos_token_ids(model, tokenizer)

    @property
    def backend(self) -> str:
        return type(self.runner).__name__

    def encode(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                raise ConfigError("prompt is text but the model has no tokenizer; pass token ids instead")
            return list(self.tokenizer(prompt).input_ids)
        ids = [int(t) for t in prompt]
        if not ids:
            raise ConfigError("empty prompt: at least one token is needed to condition on")
        return ids

    def sync_weights(self) -> None:
        """Pick up weights changed by a trainer: re-pack unconditionally (a fused optimizer step changes weights
        without the version counters `generate`'s own check relies on)."""
        self.runner.refresh(force=True)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams | None = None, *,
                 on_tokens: TokenCallback | None = None) -> list[list[Completion]]:
        """params.n completions for each prompt, in prompt order."""
        params = params or SamplingParams()
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = [self.encode(p) for p in prompts]
        stop = StopCriteria(self.tokenizer, params, self.eos_ids)
        run = self._chunk_fn(params)
        self.runner.refresh()
        per_chunk = max(1, self.max_batch_rows // params.n)
        out: list[list[Completion]] = []
        with eval_mode(self.model), torch_threads(self.threads):
            for start in range(0, len(ids), per_chunk):
                chunk = ids[start : start + per_chunk]
                out += run(self.runner, chunk, list(range(start, start + len(chunk))), params, stop, on_tokens)
        return out

    def _chunk_fn(self, params: SamplingParams):
        """The decode loop for these params (subclasses add speculative decoding)."""
        return run_chunk


@contextlib.contextmanager
def torch_threads(threads: int | None):
    if threads is None:
        yield
        return
    import torch  # CLI start-up time

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def eval_mode(model: Any):
    """Sample in eval mode (no dropout, no MoE load counting), then restore the trainer's mode."""
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()
