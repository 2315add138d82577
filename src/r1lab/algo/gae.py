"""Per-token rewards, generalised advantage estimation and whitening for PPO with a critic (docs/RL.md §8).

    delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lam * A_{t+1},   R_t = A_t + V_t
The recursion runs backwards over *unmasked* tokens only: a masked position (pad, prompt, tool output)
is skipped, so left or right padding, or tokens excluded mid-sequence, change nothing.
"""

from __future__ import annotations

import torch


def outcome_token_rewards(
    scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None, kl_coef: float = 0.0
) -> torch.Tensor:
    """rewards[B,T]: the outcome score on each row's last unmasked token, minus kl_coef * kl on every token.

    `kl` is usually k1 = lp_old - lp_ref (KL in the reward, PPO-RLHF style).
    """
    m = mask.to(torch.bool)
    if not m.any(dim=-1).all():
        raise ValueError("every row needs at least one unmasked token to carry its outcome score")
    dtype = scores.dtype if scores.is_floating_point() else torch.float32
    rewards = torch.zeros(m.shape, dtype=dtype, device=scores.device)
    positions = torch.arange(m.shape[1], device=m.device).expand_as(m)
    last = torch.where(m, positions, -1).amax(dim=1)  # [B]
    rewards[torch.arange(m.shape[0], device=m.device), last] = scores.to(dtype)
    if kl is not None and kl_coef != 0.0:
        rewards = rewards - kl_coef * kl.to(dtype) * m.to(dtype)
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages[B,T], returns[B,T]), zero on masked tokens. Inputs are treated as constants (no grad)."""
    rewards, values = rewards.detach(), values.detach().to(rewards.dtype)
    m = mask.to(torch.bool)
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    next_value = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in range(T - 1, -1, -1):
        live = m[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        a_t = delta + gamma * lam * next_adv
        adv[:, t] = torch.where(live, a_t, torch.zeros_like(a_t))
        next_value = torch.where(live, values[:, t], next_value)
        next_adv = torch.where(live, a_t, next_adv)
    returns = (adv + values) * m.to(rewards.dtype)
    return adv, returns


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the unmasked entries of the batch; masked entries come back 0.

    `shift_mean=False` only rescales (keeps the sign balance of the raw advantages).
    """
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1.0)
    mean = (x * m).sum() / n
    var = ((x - mean).square() * m).sum() / n
    out = (x - mean) if shift_mean else x
    return out * torch.rsqrt(var + eps) * m
