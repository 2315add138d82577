"""Sampling math as pure functions over logits.

Two distributions matter. The *model distribution at temperature T*, `log_softmax(logits / T)`, is
what an RL trainer recomputes in its forward pass, so the engine reports it for each sampled token.
The *sampling policy* additionally applies top-k, then top-p, then min-p (renormalising after each);
tokens are drawn from it and its log-probs are reported too. Without truncation the two coincide.

Tokens are drawn by inverse-CDF sampling with one caller-supplied uniform per row, so a row's draw
depends only on its own random stream (see randomness.py), never on the rest of the batch.
"""

from __future__ import annotations

import math

import torch

from r1lab.engine.params import SamplingParams


def model_logprobs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log_softmax(logits / T) in fp32, T = 1 for greedy.  [..., V] -> [..., V]"""
    logits = logits.float()
    if temperature > 0 and temperature != 1:
        logits = logits / temperature
    return torch.log_softmax(logits, dim=-1)


def apply_top_k(logprobs: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k most likely tokens (ties at the k-th value are kept).  [B, V] -> [B, V] unnormalised"""
    if k <= 0 or k >= logprobs.shape[-1]:
        return logprobs
    kth = torch.topk(logprobs, k, dim=-1).values[..., -1:]
    return logprobs.masked_fill(logprobs < kth, -math.inf)


def apply_top_p(logprobs: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest most-likely set whose probability mass reaches p (at least one token)."""
    if p >= 1:
        return logprobs
    sorted_lp, order = torch.sort(logprobs, dim=-1, descending=True)
    probs = torch.softmax(sorted_lp, dim=-1)
    mass_before = probs.cumsum(-1) - probs  # mass of strictly more likely tokens
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logprobs.masked_fill(drop, -math.inf)


def apply_min_p(logprobs: torch.Tensor, min_p: float) -> torch.Tensor:
    """Drop tokens less likely than min_p times the most likely token."""
    if min_p <= 0:
        return logprobs
    threshold = logprobs.max(dim=-1, keepdim=True).values + math.log(min_p)
    return logprobs.masked_fill(logprobs < threshold, -math.inf)


def policy_logprobs(model_lp: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Normalised log-probs of the sampling policy, given the model's log-probs at temperature T."""
    if not params.truncates:
        return model_lp
    lp = model_lp
    if params.top_k > 0:
        lp = torch.log_softmax(apply_top_k(lp, params.top_k), -1)
    if params.top_p < 1:
        lp = torch.log_softmax(apply_top_p(lp, params.top_p), -1)
    if params.min_p > 0:
        lp = torch.log_softmax(apply_min_p(lp, params.min_p), -1)
    return lp


def sample_from_probs(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: the first token whose cumulative mass exceeds u * total.  [B, V], [B] -> [B]

    `probs` need not be normalised; zero-probability tokens are never returned.
    """
    cdf = probs.cumsum(-1)
    x = (u.to(cdf.dtype) * cdf[..., -1]).unsqueeze(-1)
    idx = torch.searchsorted(cdf, x, right=True).squeeze(-1)
    overflow = idx >= probs.shape[-1]  # u * total rounded up to total: take the last possible token
    if overflow.any():
        last = probs.shape[-1] - 1 - (probs.flip(-1) > 0).int().argmax(-1)
        idx = torch.where(overflow, last, idx)
    return idx


def sample_tokens(logits: torch.Tensor, params: SamplingParams, u: torch.Tensor):
    """One sampling step.  logits [B, V], u [B] -> (tokens [B], model logprob [B], policy logprob [B])"""
    model_lp = model_logprobs(logits, params.temperature)
    if params.greedy:
        tokens = model_lp.argmax(-1)
        lp = model_lp.gather(-1, tokens[:, None]).squeeze(-1)
        return tokens, lp, torch.zeros_like(lp)  # greedy policy puts probability 1 on its token
    policy_lp = policy_logprobs(model_lp, params)
    tokens = sample_from_probs(policy_lp.exp(), u)
    lp = model_lp.gather(-1, tokens[:, None]).squeeze(-1)
    plp = lp if policy_lp is model_lp else policy_lp.gather(-1, tokens[:, None]).squeeze(-1)
    return tokens, lp, plp
