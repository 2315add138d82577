"""Turning token sequences into training rows: pure functions, deterministic in (seed, epoch, index).

- Pretraining: one token stream cut into fixed-length rows (`stream_rows`), rows visited in a seeded
  permutation per epoch (`epoch_order`).
- SFT: each example is `prompt_ids + completion_ids` with labels -100 on the prompt (`sft_example`);
  examples are either padded one per row or packed several per row with positions restarting at 0 for each
  example (`pack_examples`), which models with document masking (HF v5 with `position_ids`, r1lab models
  that declare `supports_packed_positions`) turn into block-diagonal causal attention.
Labels follow the Hugging Face convention: aligned with input_ids, shifted inside the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from r1lab.model import IGNORE_INDEX  # the one label value every loss skips
from r1lab.seeds import derive_seed


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    g = torch.Generator().manual_seed(derive_seed(seed, epoch))
    return torch.randperm(n, generator=g)


def stream_rows(tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """`tokens [N]` -> `[N // seq_len, seq_len]` (the ragged tail is dropped)."""
    n = tokens.numel() // seq_len
    if n == 0:
        raise ValueError(f"corpus has {tokens.numel()} tokens, fewer than one row of {seq_len}")
    return tokens[: n * seq_len].view(n, seq_len)


def global_rows(step: int, micro: int, grad_accum: int, batch_size: int) -> range:
    """Indices, in the infinite sequence of rows over all epochs, of micro-batch `micro` of step `step`."""
    start = (step * grad_accum + micro) * batch_size
    return range(start, start + batch_size)


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]   # IGNORE_INDEX on prompt tokens

    def __len__(self) -> int:
        return len(self.input_ids)


def sft_example(prompt_ids: list[int], completion_ids: list[int], max_len: int) -> Example:
    """Prompt tokens are context only (-100); the completion (truncated to fit `max_len`) is learned."""
    ids = (list(prompt_ids) + list(completion_ids))[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + list(completion_ids))[:max_len]
    return Example(ids, labels)


def pack_examples(examples: list[Example], order: list[int], max_len: int) -> list[list[int]]:
    """Greedy in-order packing: consecutive examples (in `order`) share a row while they fit in `max_len`."""
    rows: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        n = len(examples[i])
        if current and used + n > max_len:
            rows.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        rows.append(current)
    return rows


def collate_rows(examples: list[Example], rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Rows of example indices -> right-padded `input_ids`, `labels`, `positions` `[B, T]`.

    Positions restart at 0 for every example in a row; pad tokens get label -100 and continue the positions
    of the last example (right padding never changes a causal model's earlier outputs).
    """
    width = max(sum(len(examples[i]) for i in row) for row in rows)
    B = len(rows)
    ids = torch.full((B, width), pad_id, dtype=torch.long)
    labels = torch.full((B, width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((B, width), dtype=torch.long)
    for b, row in enumerate(rows):
        t = 0
        for i in row:
            ex = examples[i]
            n = len(ex)
            ids[b, t:t + n] = torch.tensor(ex.input_ids)
            labels[b, t:t + n] = torch.tensor(ex.labels)
            positions[b, t:t + n] = torch.arange(n)
            t += n
        if t < width:
            last = positions[b, t - 1] + 1 if t else 0
            positions[b, t:] = torch.arange(width - t) + last
    return {"input_ids": ids, "labels": labels, "positions": positions}
