"""DAPO overlong filtering: a truncated completion (stopped by the length limit, no EOS) is judged on an
answer it never finished, so its tokens leave both the loss numerator and every normaliser.

(The soft overlong *punishment* is a reward, `overlong` in `r1lab.rewards`.)
"""

from __future__ import annotations

import torch


def mask_truncated(mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """mask[B,T] with every row whose `truncated[B]` is True zeroed."""
    keep = ~truncated.to(torch.bool)
    return mask * keep[:, None].to(mask.dtype) if mask.dtype != torch.bool else mask & keep[:, None]
