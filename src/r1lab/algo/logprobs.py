"""Token log-probabilities and entropy from logits, in fp32 whatever the model's dtype (RL_REFERENCE §4:
log-probs from fp32 log_softmax, so ratios of bf16 models are not dominated by rounding)."""

from __future__ import annotations

import torch


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logp[B,T] of `targets[B,T]` under `logits[B,T,V]` (already aligned: logits at t predict targets at t)."""
    logits = logits.float() if logits.dtype != torch.float64 else logits
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy[B,T] of the predictive distribution at every position (nats)."""
    logits = logits.float() if logits.dtype != torch.float64 else logits
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)
