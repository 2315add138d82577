"""Clipped value (critic) loss for PPO (docs/RL.md §8):
    l_t = 1/2 * max((V - R)^2, (clip(V, V_old - eps_v, V_old + eps_v) - R)^2)
aggregated like the policy loss, so it is invariant to micro-batching given the step batch's normalisers.
"""

from __future__ import annotations

import torch

from r1lab.algo.aggregation import get_aggregation


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_eps: float | None = 0.2,
    agg: str = "token_mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and metrics (`vf_clipfrac`: share of tokens where the clipped branch is the larger, `num_tokens`)."""
    values = values.float() if values.dtype != torch.float64 else values
    old_values, returns = old_values.to(values.dtype), returns.to(values.dtype)
    unclipped = (values - returns).square()
    if clip_eps is None:
        per_token = 0.5 * unclipped
        clipped_more = torch.zeros_like(unclipped, dtype=torch.bool)
    else:
        v_clip = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        clipped = (v_clip - returns).square()
        per_token = 0.5 * torch.maximum(unclipped, clipped)
        clipped_more = clipped > unclipped
    loss = get_aggregation(agg).fn(per_token, mask, max_len=None)
    with torch.no_grad():
        m = mask.to(values.dtype)
        n = float(m.sum())
        metrics = {
            "num_tokens": n,
            "vf_clipfrac": float((clipped_more.to(m.dtype) * m).sum() / n) if n else 0.0,
            "value_mean": float((values.detach() * m).sum() / n) if n else 0.0,
        }
    return loss, metrics
