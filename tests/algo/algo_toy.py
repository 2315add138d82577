"""Toy pieces for the algo tests: a tiny log-linear policy whose parameters every token shares, so
gradient accumulation and micro-batching are real questions, and a hand-built ragged rollout batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

V = 7  # vocabulary of the toy policy


class ToyPolicy(torch.nn.Module):
    """logp[B,T] of target tokens given previous tokens: log_softmax(E[x_t] @ W)[y_t], in fp64."""

    def __init__(self, seed: int = 0, dim: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Parameter(torch.randn(V, dim, generator=g, dtype=torch.float64))
        self.out = torch.nn.Parameter(torch.randn(dim, V, generator=g, dtype=torch.float64) * 0.5)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.emb[inputs] @ self.out  # [B, T, V]
        return torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)

    def grads(self) -> list[torch.Tensor]:
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in self.parameters()]


@dataclass
class Rollout:
    inputs: torch.Tensor  # [B, T] long
    targets: torch.Tensor  # [B, T] long
    mask: torch.Tensor  # [B, T] float, right-padded ragged lengths
    old_logp: torch.Tensor  # [B, T]
    ref_logp: torch.Tensor  # [B, T]
    rewards: torch.Tensor  # [B]
    group_size: int

    def rows(self, idx) -> "Rollout":
        return Rollout(self.inputs[idx], self.targets[idx], self.mask[idx], self.old_logp[idx],
                       self.ref_logp[idx], self.rewards[idx], self.group_size)


def make_rollout(seed: int = 0, n_groups: int = 4, group_size: int = 3, T: int = 6, spread: float = 0.3) -> Rollout:
    """Ragged completions (lengths 1..T), old/ref log-probs near the policy's, rewards with one flat group."""
    g = torch.Generator().manual_seed(seed)
    B = n_groups * group_size
    inputs = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    with torch.no_grad():
        base = ToyPolicy(seed)(inputs, targets)
    old = base + spread * torch.randn(B, T, generator=g, dtype=torch.float64)
    ref = base + spread * torch.randn(B, T, generator=g, dtype=torch.float64)
    rewards = torch.randint(0, 3, (B,), generator=g).double() / 2
    rewards[:group_size] = 0.1  # one zero-spread group with a non-binary reward
    return Rollout(inputs, targets, mask, old, ref, rewards, group_size)
