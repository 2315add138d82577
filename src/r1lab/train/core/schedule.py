"""Learning-rate schedule as a pure function of the step, so resuming needs no scheduler object state."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
              min_ratio: float = 0.1) -> float:
    """Multiplier of the peak LR for optimizer step `step` (0-based).

    Linear warmup from 1/(warmup+1) to 1 over `warmup_steps` steps, then `kind` decays from 1 to `min_ratio`
    at the last step: "cosine" (half cosine), "linear", or "constant" (stays at 1).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    decay_steps = max(total_steps - warmup_steps - 1, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    if kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif kind == "linear":
        shape = 1.0 - progress
    else:
        raise ValueError(f"unknown schedule {kind!r}")
    return min_ratio + (1.0 - min_ratio) * shape
