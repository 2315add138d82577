"""Attention for packed GRPO groups, `[prompt | completion 1 | completion 2 | ...]`, without a T x T mask.

A packed row's attention is block-structured: the prompt attends causally to itself, and every completion
token attends to the whole prompt and causally to its own completion, never to another completion. A dense
masked kernel would still evaluate all T x T scores (with 8 completions of ~35 tokens behind a 60-token prompt,
4x the pairs that matter, and CPU attention backward is not cheap). Here each completion token scores only
the keys it may see: `[prompt keys | its own completion's keys]`, one softmax over both, so the result is
exactly the masked attention's.

Plugged into any transformers model through its attention interface (`use_packed_attention`); the model's
projections, RoPE and LoRA adapters are untouched. GQA is handled by grouping query heads per KV head.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

NAME = "r1lab_packed"


@dataclass
class RowLayout:
    """Where one packed row's completions sit: tokens [prompt_len, prompt_len + valid.sum()) in row order."""

    prompt_len: int
    index: torch.Tensor  # [n, W] position in the row of each completion's j-th input token (0 where invalid)
    valid: torch.Tensor  # [n, W] bool
    own: torch.Tensor  # [n, W, W] bool: query j may see key i of its own completion (i <= j, key valid)

    @staticmethod
    def build(prompt_len: int, lengths: list[int], device: torch.device | None = None) -> "RowLayout":
        W = max(lengths + [1])
        j = torch.arange(W)
        valid = j[None, :] < torch.tensor(lengths)[:, None]  # [n, W]
        starts = prompt_len + torch.tensor([0] + lengths[:-1]).cumsum(0)  # [n]
        index = torch.where(valid, starts[:, None] + j[None, :], 0)
        own = (j[None, :] <= j[:, None])[None] & valid[:, None, :]  # [n, W(query), W(key)]
        return RowLayout(prompt_len, index.to(device), valid.to(device), own.to(device))


def _row(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, row: RowLayout, scale: float) -> torch.Tensor:
    """q [H, T, hd], k/v [KVH, T, hd] of one packed row -> attention output [T, H, hd]."""
    H, T, hd = q.shape
    KVH, G, p = k.shape[0], H // k.shape[0], row.prompt_len
    prompt = F.scaled_dot_product_attention(q[None, :, :p], k[None, :, :p], v[None, :, :p], is_causal=True,
                                            scale=scale, enable_gqa=G > 1)[0]  # [H, p, hd]
    parts = [prompt.transpose(0, 1)]
    n_tokens = int(row.valid.sum())
    if n_tokens:
        n, W = row.index.shape
        flat = row.index.reshape(-1)
        qc = q[:, flat].view(KVH, G, n, W, hd)
        kc, vc = k[:, flat].view(KVH, n, W, hd), v[:, flat].view(KVH, n, W, hd)
        kp, vp = k[:, :p], v[:, :p]  # [KVH, p, hd]
        to_prompt = torch.einsum("kgnwd,kpd->kgnwp", qc, kp)  # [KVH, G, n, W, p]
        to_own = torch.einsum("kgnwd,knvd->kgnwv", qc, kc).masked_fill(~row.own, float("-inf"))  # [.., W, W]
        probs = torch.softmax(torch.cat([to_prompt, to_own], dim=-1) * scale, dim=-1).to(v.dtype)
        out = torch.einsum("kgnwp,kpd->kgnwd", probs[..., :p], vp) \
            + torch.einsum("kgnwv,knvd->kgnwd", probs[..., p:], vc)  # [KVH, G, n, W, hd]
        parts.append(out.reshape(H, n, W, hd).permute(1, 2, 0, 3)[row.valid])  # [tokens, H, hd] in row order
    if T > p + n_tokens:
        parts.append(q.new_zeros(T - p - n_tokens, H, hd))  # padding of a shorter row
    return torch.cat(parts)


def packed_attention_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             attention_mask: Any, scaling: float | None = None, dropout: float = 0.0,
                             **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention-interface signature: q [R, H, T, hd], k/v [R, KVH, T, hd] -> ([R, T, H, hd], None)."""
    rows: list[RowLayout] = kwargs["packed_rows"]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return torch.stack([_row(query[r], key[r], value[r], row, scale) for r, row in enumerate(rows)]), None


def _register() -> None:
    from transformers import AttentionInterface  # slow import, paid where used

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, packed_attention_forward)


@contextlib.contextmanager
def use_packed_attention(config: Any) -> Iterator[None]:
    """Route the model's attention through `packed_attention_forward` for the duration (pass `packed_rows=`)."""
    _register()
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
