"""The model's door to `r1lab.fp8`: what `r1lab.model.linear` builds when `config.precision == "fp8"`.

Kept as a thin adapter so the model package depends on two names only (see the contract in `linear.py`).
"""

from __future__ import annotations

import torch

from r1lab.fp8.linear import Fp8Linear, Fp8Recipe
from r1lab.fp8.linear import fp8_grouped_mm as _grouped_mm
from r1lab.fp8.quant import DEFAULT_BLOCK

__all__ = ["Fp8Linear", "fp8_grouped_mm"]


def fp8_grouped_mm(
    x: torch.Tensor,
    weight: torch.Tensor,
    offsets: torch.Tensor,
    *,
    block_size: int = DEFAULT_BLOCK,
    pow2_scales: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """x[M, K] rows sorted by expert, weight[E, N, K], offsets[E] cumulative row ends -> [M, N] in FP8."""
    return _grouped_mm(x, weight, offsets, Fp8Recipe(block_size, pow2_scales, backend))
