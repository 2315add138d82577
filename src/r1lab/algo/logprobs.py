"""Token log-probabilities and entropy from logits, in fp32 whatever the model's dtype (docs/RL.md §4:
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


CHUNK_ELEMENTS = 1 << 22  # fp32 temporaries of at most 16 MB: cache-sized, whatever the vocabulary


class _SelectedLogSoftmax(torch.autograd.Function):
    """log_softmax(logits / T)[target] with a hand-written backward, chunked over rows.

    Autograd through `log_softmax(...).gather(...)` keeps, and writes in the backward, several fp32
    [tokens, vocab] tensors (the upcast logits, the log-softmax output, a dense gather gradient, its softmax
    correction); at 640 tokens x 49k vocabulary each is 126 MB of memory traffic. Here the forward saves
    only the row log-sum-exp, and the backward rebuilds softmax one chunk at a time:
    d logp / d logits = (onehot(target) - softmax(logits / T)) / T.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, temperature: float, with_entropy: bool):
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        M, V = logits.shape
        lse = torch.empty(M, dtype=dtype, device=logits.device)
        logp = torch.empty(M, dtype=dtype, device=logits.device)
        entropy = torch.empty(M, dtype=dtype, device=logits.device) if with_entropy else None
        rows = max(1, CHUNK_ELEMENTS // max(V, 1))
        for s in range(0, M, rows):
            x = _scaled(logits[s : s + rows], dtype, temperature)
            lse[s : s + rows] = torch.logsumexp(x, dim=-1)
            logp[s : s + rows] = x.gather(-1, targets[s : s + rows, None]).squeeze(-1) - lse[s : s + rows]
            if entropy is not None:  # H = lse - sum_v p_v x_v
                p = (x - lse[s : s + rows, None]).exp_()
                entropy[s : s + rows] = lse[s : s + rows] - torch.linalg.vecdot(p, x)
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature = temperature
        if entropy is not None:
            ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp: torch.Tensor, _grad_entropy: torch.Tensor | None):
        logits, targets, lse = ctx.saved_tensors
        T = ctx.temperature
        grad = torch.empty_like(logits)
        rows = max(1, CHUNK_ELEMENTS // max(logits.shape[1], 1))
        for s in range(0, logits.shape[0], rows):
            g_rows = grad_logp[s : s + rows, None].to(lse.dtype)
            g = (_scaled(logits[s : s + rows], lse.dtype, T) - lse[s : s + rows, None]).exp_().mul_(-g_rows)
            g.scatter_add_(-1, targets[s : s + rows, None], g_rows)
            grad[s : s + rows] = g / T if T != 1 else g
        return grad, None, None, None


def _scaled(logits: torch.Tensor, dtype: torch.dtype, temperature: float) -> torch.Tensor:
    x = logits.to(dtype)
    return x / temperature if temperature != 1 else x


def selected_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, *,
                      with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp, entropy or None) [...] of `targets[...]` under softmax(`logits[..., V]` / T), in fp32 (fp64 for fp64).

    Equals `token_logprobs(logits / T, targets)` and `token_entropy(logits / T)` (the entropy carries no
    gradient: it is a diagnostic), with far less memory traffic for a large vocabulary (see
    `_SelectedLogSoftmax`). T <= 0 (greedy sampling) is scored at T = 1.
    """
    T = float(temperature) if temperature > 0 else 1.0
    lead, V = targets.shape, logits.shape[-1]
    logp, entropy = _SelectedLogSoftmax.apply(logits.reshape(-1, V), targets.reshape(-1), T, with_entropy)
    return logp.view(lead), (entropy.view(lead) if entropy is not None else None)
