"""Outcome-level advantage estimators: one scalar per completion, computed within its prompt's group.

Groups are consecutive runs of `group_size` completions (prompt-major order, as the sampler returns them).
A group whose rewards are all equal carries no learning signal; it gets advantage exactly 0, detected
explicitly rather than trusted to `(r - mean) / (std + eps)`, which amplifies round-off for non-binary rewards.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

AdvantageFn = Callable[..., torch.Tensor]
_ADVANTAGES: dict[str, AdvantageFn] = {}

Scale = Literal["group", "batch", "none"]


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: make an outcome advantage estimator `fn(rewards[N], group_size, **options)` selectable by name."""

    def deco(fn: AdvantageFn) -> AdvantageFn:
        if name in _ADVANTAGES:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        _ADVANTAGES[name] = fn
        return fn

    return deco


def get_advantage(name: str) -> AdvantageFn:
    if name not in _ADVANTAGES:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {', '.join(sorted(_ADVANTAGES))}")
    return _ADVANTAGES[name]


def list_advantages() -> list[str]:
    return sorted(_ADVANTAGES)


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """rewards[N] -> [N / group_size, group_size], with the checks every estimator needs."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if group_size < 2:
        raise ValueError(f"group-relative advantages need group_size >= 2, got {group_size}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards contain NaN or inf; resolve missing rewards before computing advantages")
    return rewards.reshape(-1, group_size)


def zero_spread_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """bool[N / group_size]: True where every reward in the group is identical (exact comparison)."""
    g = _grouped(rewards, group_size)
    return g.amax(dim=1) == g.amin(dim=1)


@register_advantage("grpo")
def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: Scale = "group",
    eps: float = 1e-6,
    std_unbiased: bool = True,
) -> torch.Tensor:
    """GRPO advantages[N] = (r - group mean) / (std + eps).

    scale="group": std of the group (DeepSeekMath / R1); "batch": std of all N rewards (TRL
    `scale_rewards="batch"`); "none": no division (Dr. GRPO, REINFORCE with a group-mean baseline).
    `std_unbiased` selects Bessel's correction (TRL, verl) or the population std.
    """
    g = _grouped(rewards, group_size)  # [n_groups, G]
    centred = g - g.mean(dim=1, keepdim=True)
    if scale == "group":
        adv = centred / (g.std(dim=1, keepdim=True, unbiased=std_unbiased) + eps)
    elif scale == "batch":
        adv = centred / (rewards.std(unbiased=std_unbiased) + eps)
    elif scale == "none":
        adv = centred
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    flat = g.amax(dim=1) == g.amin(dim=1)
    adv = torch.where(flat[:, None], torch.zeros_like(adv), adv)
    return adv.reshape(-1)


@register_advantage("rloo")
def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE leave-one-out: r_i minus the mean of the other G-1 rewards of its group.

    Equals G/(G-1) * (r_i - group mean); the baseline does not depend on the sample it scores, so the
    estimator is unbiased.
    """
    g = _grouped(rewards, group_size)
    others = (g.sum(dim=1, keepdim=True) - g) / (group_size - 1)
    adv = g - others
    flat = g.amax(dim=1) == g.amin(dim=1)
    adv = torch.where(flat[:, None], torch.zeros_like(adv), adv)
    return adv.reshape(-1)
