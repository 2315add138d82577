"""r1lab's decode loop, shared by every backend that implements the runner interface.

A runner provides `prefill(prompts, max_len) -> (state, last_logits[P, V])`, `repeat(state, n)`,
`select(state, rows)` and `decode(state, tokens[B]) -> logits[B, V]`. The loop prefills each distinct
prompt once, repeats its cache for the n samples, samples with per-row random streams, and drops
finished rows from the batch before the next decode step, so they cost nothing afterwards.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from r1lab.engine.params import Completion, SamplingParams
from r1lab.engine.randomness import row_uniforms
from r1lab.engine.sampling import sample_tokens
from r1lab.engine.stopping import StopCriteria

# on_tokens(rows, tokens): global row ids (prompt_index * n + sample_index) and their new tokens.
TokenCallback = Callable[[list[int], list[int]], None]


class RowBuffers:
    """Outputs of all rows of a chunk: tokens and log-probs by step, lengths and finish reasons."""

    def __init__(self, rows: int, steps: int):
        self.tokens = torch.zeros(rows, steps, dtype=torch.long)
        self.logprobs = torch.zeros(rows, steps)
        self.policy_logprobs = torch.zeros(rows, steps)
        self.lengths = torch.zeros(rows, dtype=torch.long)
        self.finish = ["length"] * rows

    def append(self, rows: torch.Tensor, tokens: torch.Tensor, lp: torch.Tensor, plp: torch.Tensor) -> None:
        """Write one token for each of `rows` at that row's next position."""
        at = self.lengths[rows]
        self.tokens[rows, at] = tokens
        self.logprobs[rows, at] = lp.float()
        self.policy_logprobs[rows, at] = plp.float()
        self.lengths[rows] = at + 1

    def row_tokens(self, row: int) -> list[int]:
        return self.tokens[row, : self.lengths[row]].tolist()

    def completion(self, row: int, prompt_ids: list[int], stop: StopCriteria) -> Completion:
        ids = self.row_tokens(row)
        n = len(ids)
        return Completion(
            text=stop.final_text(ids),
            token_ids=ids,
            logprobs=self.logprobs[row, :n].tolist(),
            finish_reason=self.finish[row],  # type: ignore[arg-type]
            prompt_token_ids=list(prompt_ids),
            policy_logprobs=self.policy_logprobs[row, :n].tolist(),
        )


def finished_rows(stop: StopCriteria, buffers: RowBuffers, rows: torch.Tensor, new_tokens: torch.Tensor,
                  params: SamplingParams) -> torch.Tensor:
    """[b] bool for the rows that just ended; records their finish reason."""
    hit = stop.token_hit(new_tokens)
    if params.stop:
        for i, row in enumerate(rows.tolist()):
            if not hit[i] and stop.string_hit(buffers.row_tokens(row)):
                hit[i] = True
    for row in rows[hit].tolist():
        buffers.finish[row] = "stop"
    return hit | (buffers.lengths[rows] >= params.max_new_tokens)


@torch.inference_mode()
def run_chunk(runner: Any, prompts: list[list[int]], prompt_indices: list[int], params: SamplingParams,
              stop: StopCriteria, on_tokens: TokenCallback | None = None) -> list[list[Completion]]:
    """Sample params.n completions for each prompt of one chunk with `runner`."""
    n, steps = params.n, params.max_new_tokens
    keys = [(p, j) for p in prompt_indices for j in range(n)]
    uniforms = row_uniforms(params.seed, keys, steps)[:, :, 0]  # [R, steps]
    buffers = RowBuffers(len(keys), steps)

    state, logits = runner.prefill(prompts, max(len(p) for p in prompts) + steps)
    state = runner.repeat(state, n)
    logits = logits.repeat_interleave(n, dim=0)
    alive = torch.arange(len(keys))  # global row of each batch row
    while True:
        u = uniforms[alive, buffers.lengths[alive]].to(logits.device)
        tokens, lp, plp = sample_tokens(logits, params, u)
        host_tokens = tokens.cpu()
        buffers.append(alive, host_tokens, lp.cpu(), plp.cpu())
        if on_tokens is not None:
            on_tokens([prompt_indices[r // n] * n + r % n for r in alive.tolist()], host_tokens.tolist())
        done = finished_rows(stop, buffers, alive, host_tokens, params)
        if done.all():
            break
        if done.any():
            keep = (~done).nonzero().squeeze(-1)
            state, alive, tokens = runner.select(state, keep), alive[keep], tokens[keep.to(tokens.device)]
        logits = runner.decode(state, tokens)
    return [[buffers.completion(i * n + j, prompts[i], stop) for j in range(n)] for i in range(len(prompts))]
