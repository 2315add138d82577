"""Loss aggregation: how masked per-token losses become one scalar (the #1 source of divergence between
GRPO implementations; docs/RL.md §5).

Each scheme normalises over the tensors it is given. An invariant scheme still gives the step batch's loss under
any micro-batch split, because the training loop weighs each micro-batch's loss by `Aggregation.weight(mask)`
(its count in the scheme's normaliser: tokens or sequences) over the step batch's total weight, all-reduced over
ranks: `Σ_k w_k/W · S_k/w_k = S/W`.

A "sequence" is a row with at least one unmasked token: a fully masked row (e.g. a truncated completion
under overlong filtering) is as if it were absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

AggregateFn = Callable[..., torch.Tensor]
WeightFn = Callable[[torch.Tensor], float]


def count_sequences(mask: torch.Tensor) -> float:
    """Rows with at least one token that counts (a fully masked row is as if absent)."""
    return float(mask.bool().any(dim=-1).sum())


def count_tokens(mask: torch.Tensor) -> float:
    return float(mask.sum())


def any_tokens(mask: torch.Tensor) -> float:
    return float(mask.sum() > 0)


@dataclass(frozen=True)
class Aggregation:
    name: str
    fn: AggregateFn
    invariant: bool  # same result for any micro-batch / accumulation split of the step batch
    doc: str
    weight: WeightFn  # a micro-batch's count in the scheme's normaliser: its share of the step batch's loss


_AGGREGATIONS: dict[str, Aggregation] = {}


def register_aggregation(name: str, *, invariant: bool = True,
                         weight: WeightFn = count_sequences) -> Callable[[AggregateFn], AggregateFn]:
    """Decorator: `fn(loss[B,T], mask[B,T], *, max_len) -> scalar`.

    `weight(mask)` is a micro-batch's count in the scheme's normaliser (sequences by default, tokens for a token
    mean): the training loop weighs each micro-batch's loss by it, so the micro-batch losses add up to the step
    batch's loss whatever the split."""

    def deco(fn: AggregateFn) -> AggregateFn:
        if name in _AGGREGATIONS:
            raise ValueError(f"loss aggregation {name!r} is already registered")
        _AGGREGATIONS[name] = Aggregation(name, fn, invariant, (fn.__doc__ or "").strip().splitlines()[0], weight)
        return fn

    return deco


def get_aggregation(name: str) -> Aggregation:
    if name not in _AGGREGATIONS:
        raise KeyError(f"unknown loss aggregation {name!r}; known: {', '.join(sorted(_AGGREGATIONS))}")
    return _AGGREGATIONS[name]


def list_aggregations() -> list[str]:
    return sorted(_AGGREGATIONS)


@register_aggregation("seq_mean")
def seq_mean(loss, mask, *, max_len=None):
    """(1/B) sum_i (1/|o_i|) sum_t m*l: every sequence weighs the same (GRPO paper, R1, TRL `grpo`)."""
    m = mask.to(loss.dtype)
    per_seq = (loss * m).sum(-1) / m.sum(-1).clamp(min=1.0)  # [B]
    return per_seq.sum() / max(count_sequences(mask), 1.0)


@register_aggregation("token_mean", weight=count_tokens)
def token_mean(loss, mask, *, max_len=None):
    """sum m*l / N_tok over the step batch: every token weighs the same (DAPO, TRL `dapo`)."""
    m = mask.to(loss.dtype)
    return (loss * m).sum() / max(count_tokens(mask), 1.0)


@register_aggregation("constant")
def constant(loss, mask, *, max_len=None):
    """sum m*l / (B * L_max) with the configured L_max, never the padded width (Dr. GRPO)."""
    if max_len is None or max_len <= 0:
        raise ValueError("agg='constant' needs max_len (the configured maximum completion length)")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / (max(count_sequences(mask), 1.0) * float(max_len))


@register_aggregation("token_mean_local", invariant=False, weight=any_tokens)
def token_mean_local(loss, mask, *, max_len=None):
    """sum m*l / local N_tok per micro-batch (TRL `bnpo`): NOT invariant to how tokens are split.

    The loop averages the micro-batch losses (weight 1 each, `any_tokens`), which is TRL's "average over
    accumulation steps".
    """
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp(min=1.0)
