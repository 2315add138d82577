"""Per-row random streams: a row's samples depend only on (seed, prompt index, sample index).

One generator for the whole batch would make a row's tokens depend on which other rows are still
running (finished rows are dropped) and on batch composition; giving each row its own stream of
uniforms keeps outputs reproducible under any batching, speculative or not.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A well-mixed 63-bit seed for one row."""
    h = _splitmix64(seed & _MASK64)
    h = _splitmix64(h ^ (prompt_index & _MASK64))
    h = _splitmix64(h ^ (sample_index & _MASK64))
    return h & ((1 << 63) - 1)


def row_uniforms(seed: int, rows: list[tuple[int, int]], steps: int, width: int = 1) -> torch.Tensor:
    """Uniforms in [0, 1) of shape [len(rows), steps, width], row r drawn from its own seeded generator."""
    out = torch.empty(len(rows), steps, width, dtype=torch.float64)
    for r, (prompt_index, sample_index) in enumerate(rows):
        g = torch.Generator().manual_seed(row_seed(seed, prompt_index, sample_index))
        out[r] = torch.rand(steps, width, generator=g, dtype=torch.float64)
    return out
