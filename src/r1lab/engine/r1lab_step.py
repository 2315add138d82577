"""Lean cached forward of r1lab's Transformer for decode steps (1 token) and speculative steps (1 + drafts).

Why: at decode sizes a forward is bound by the number of small ops, not by FLOPs. `Transformer.forward` with a
cache syncs the host to grow the cache length, and every layer re-expands the boolean mask (a copy once a step
holds more than one token) for a math-path SDPA that converts it again. Here each call builds RoPE and one additive
attention bias `[B, S*H, T]` for all layers, the cache span is an upper bound kept on the host (slots past a row's
position are masked anyway), and attention is two batched matmuls over the compressed cache. The math is that of
the model's absorbed MLA (same modules, weights and softmax scale); tests compare the logits.

`mtp_last` runs the MTP module on several positions but computes queries, attention output and FFN only for the
last one: the earlier positions need just their cache entry (latent and rope key), not an output. Its inputs can be
rows picked from the verify step's (`StepInputs.upto`), and its embedding norm can be a precomputed table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from r1lab.model.moe import MoE
from r1lab.model.rope import rope_cos_sin


@dataclass
class StepInputs:
    """What every layer of one cached call shares."""

    positions: torch.Tensor  # [B, S] slots written and RoPE positions
    cos: torch.Tensor  # [B, S, R/2]
    sin: torch.Tensor
    bias: torch.Tensor  # [B, s*H, T] additive bias of the last s queries (s = S or 1): 0 visible, -inf hidden

    def upto(self, last: torch.Tensor, n_heads: int) -> "StepInputs":
        """Inputs for positions `0..last[b]` of each row, padded by repeating position `last[b]` (a rewrite of the
        same slot with the same inputs); the bias is the last query's only (for `query_from=S-1`)."""
        B, S = self.positions.shape
        idx = torch.minimum(torch.arange(S, device=last.device), last[:, None])  # [B, S]
        trig = idx[..., None].expand(-1, -1, self.cos.shape[-1])
        bias = self.bias.view(B, S, n_heads, -1)[torch.arange(B, device=last.device), last]  # [B, H, T]
        return StepInputs(self.positions.gather(1, idx), self.cos.gather(1, trig), self.sin.gather(1, trig), bias)

    def select(self, rows: torch.Tensor) -> "StepInputs":
        return StepInputs(self.positions[rows], self.cos[rows], self.sin[rows], self.bias[rows])


def step_inputs(model: Any, cache: Any, positions: torch.Tensor, span: int) -> StepInputs:
    """Mark `positions [B, S]` valid in `cache`, let attention cover slots [0, span), build RoPE and the bias.

    `span` must exceed every position written (the caller's host-side bound; no device-to-host sync here).
    """
    B, S = positions.shape
    span = min(span, cache.max_len)
    cache.valid.scatter_(1, positions, True)
    cache.length = max(cache.length, span)
    T = cache.length
    cos, sin = rope_cos_sin(model.rope_inv_freq, positions, model.rope_factor)
    slots = torch.arange(T, device=positions.device)
    visible = (slots <= positions.unsqueeze(-1)) & cache.valid[:, None, :T]  # [B, S, T]
    bias = torch.zeros(B, S, T, device=positions.device, dtype=cache.latent.dtype)
    bias.masked_fill_(~visible, -math.inf)
    H = model.config.n_heads
    return StepInputs(positions, cos, sin, bias.unsqueeze(2).expand(B, S, H, T).reshape(B, S * H, T))


def attention(attn: Any, x: torch.Tensor, inputs: StepInputs, cache: Any, query_from: int = 0) -> torch.Tensor:
    """Absorbed MLA for `x [B, S, D]` (already normed) over the cache; output for positions `query_from:` only."""
    latent, k_pe = attn.latents(x, inputs.cos, inputs.sin)
    latent_all, k_pe_all = cache.write(attn.layer, inputs.positions, latent, k_pe)  # [B, T, C], [B, T, R]
    if query_from:
        x, cos, sin = x[:, query_from:], inputs.cos[:, query_from:], inputs.sin[:, query_from:]
    else:
        cos, sin = inputs.cos, inputs.sin
    q_nope, q_pe = attn.queries(x, cos, sin)  # [B, s, H, nope], [B, s, H, R]
    B, s, H, _ = q_nope.shape
    w_uk, w_uv = attn.absorbed_weights()  # [H, nope, C], [H, v, C]
    q_abs = torch.einsum("bshd,hdc->bshc", q_nope, w_uk.to(q_nope.dtype))
    q = torch.cat([q_abs, q_pe], dim=-1).reshape(B, s * H, -1)  # [B, s*H, C+R]
    k = torch.cat([latent_all, k_pe_all], dim=-1).to(q.dtype)  # [B, T, C+R]
    bias = inputs.bias[:, -s * H:]
    scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=attn.scale)  # [B, s*H, T]
    o_lat = torch.bmm(scores.softmax(-1), latent_all.to(q.dtype)).view(B, s, H, -1)  # [B, s, H, C]
    o = torch.einsum("bshc,hvc->bshv", o_lat, w_uv.to(o_lat.dtype))
    return attn.o_proj(o.flatten(-2))


def block(layer: Any, x: torch.Tensor, inputs: StepInputs, cache: Any, query_from: int = 0) -> torch.Tensor:
    """One decoder block (pre-norm attention + pre-norm FFN), residual stream for positions `query_from:`."""
    x = x[:, query_from:] + attention(layer.self_attn, layer.input_layernorm(x), inputs, cache, query_from)
    h = layer.post_attention_layernorm(x)
    out = layer.mlp(h)[0] if isinstance(layer.mlp, MoE) else layer.mlp(h)
    return x + out


def forward(model: Any, ids: torch.Tensor, inputs: StepInputs, cache: Any):
    """Main model on `ids [B, S]` at `inputs.positions`. -> logits [B, S, V], hidden [B, S, D] (before the norm)."""
    x = model.model.embed_tokens(ids)
    for layer in model.main_layers:
        x = block(layer, x, inputs, cache)
    return model.lm_head(model.model.norm(x)), x


def normed_embeddings(model: Any) -> torch.Tensor:
    """`[V, D]` the MTP module's `enorm` applied to every embedding row (a lookup then replaces the norm)."""
    return model.mtp_layers[0].enorm(model.model.embed_tokens.weight)


def mtp_last(model: Any, hidden: torch.Tensor, next_ids: torch.Tensor, inputs: StepInputs, cache: Any,
             enormed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MTP depth 1 over states `hidden [B, S, D]` and the tokens after them `next_ids [B, S]` at `inputs.positions`;
    writes all S slots of its cache layer (marked valid by `step_inputs`). `enormed`: `normed_embeddings`.
    -> logits [B, V] for the token after `next_ids[:, -1]`, and the module's output state there [B, D]."""
    layer = model.mtp_layers[0]
    if enormed is None:
        x = layer.combine(model.model.embed_tokens(next_ids), hidden)
    else:  # MTPLayer.combine with the embedding norm looked up
        x = layer.eh_proj(torch.cat([enormed[next_ids], layer.hnorm(hidden)], dim=-1))
    h = block(layer, x, inputs, cache, query_from=x.shape[1] - 1)[:, -1]
    return model.lm_head(layer.shared_head.norm(h)), h
