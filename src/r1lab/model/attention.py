"""Multi-head Latent Attention (V3 §2.1.1): naive form for training, absorbed form over the compressed cache.

Weight packing is the checkpoints': `q_b_proj`/`q_proj` output per head `[q_nope | q_pe]`; `kv_a_proj_with_mqa`
output `[c_kv | k_pe]`; `kv_b_proj` output per head `[k_nope | v]`.

- Naive (no cache): expand the latent to per-head K `[B,H,T,nope+rope]` and V `[B,H,T,v]`, then SDPA.
- Absorbed (with an `MLACache`): fold W^UK into the query and W^UV after the attention, so attention runs as MQA with
  one 576-wide key (latent ‖ rope key) and the 512-wide latent as value. Same softmax scale in both forms.

Masks: `attn_mask` is a bool `[B, S, T]` (True = may attend) or None for plain causal self-attention over S == T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.cache import MLACache
from r1lab.model.config import ModelConfig
from r1lab.model.linear import effective_weight, make_linear
from r1lab.model.norm import RMSNorm
from r1lab.model.rope import apply_rope


class MLA(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        c = config
        self.layer = layer
        self.n_heads = c.n_heads
        self.nope, self.rope, self.v_dim = c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim
        self.kv_lora_rank = c.kv_lora_rank
        self.scale = c.softmax_scale
        q_out = c.n_heads * c.qk_head_dim
        if c.q_lora_rank:
            self.q_a_proj = make_linear(c.dim, c.q_lora_rank, c, role="attn.q_a_proj", layer=layer)
            self.q_a_layernorm = RMSNorm(c.q_lora_rank, c.rms_norm_eps)
            self.q_b_proj = make_linear(c.q_lora_rank, q_out, c, role="attn.q_b_proj", layer=layer)
        else:
            self.q_proj = make_linear(c.dim, q_out, c, role="attn.q_proj", layer=layer)
        self.kv_a_proj_with_mqa = make_linear(c.dim, c.kv_lora_rank + c.qk_rope_head_dim, c,
                                              role="attn.kv_a_proj_with_mqa", layer=layer)
        self.kv_a_layernorm = RMSNorm(c.kv_lora_rank, c.rms_norm_eps)
        self.kv_b_proj = make_linear(c.kv_lora_rank, c.n_heads * (c.qk_nope_head_dim + c.v_head_dim), c,
                                     role="attn.kv_b_proj", layer=layer)
        self.o_proj = make_linear(c.n_heads * c.v_head_dim, c.dim, c, role="attn.o_proj", layer=layer)

    def queries(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """`x [B,S,D]` -> `q_nope [B,S,H,nope]`, rotated `q_pe [B,S,H,rope]`."""
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))) if hasattr(self, "q_a_proj") else self.q_proj(x)
        q = q.unflatten(-1, (self.n_heads, self.nope + self.rope))
        q_nope, q_pe = q.split([self.nope, self.rope], dim=-1)
        return q_nope, apply_rope(q_pe, cos, sin)

    def latents(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """`x [B,S,D]` -> normalised latent `[B,S,C]`, rotated shared rope key `[B,S,rope]` (what the cache holds)."""
        c_kv, k_pe = self.kv_a_proj_with_mqa(x).split([self.kv_lora_rank, self.rope], dim=-1)
        return self.kv_a_layernorm(c_kv), apply_rope(k_pe, cos, sin)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_mask: torch.Tensor | None,
                cache: MLACache | None = None, positions: torch.Tensor | None = None) -> torch.Tensor:
        q_nope, q_pe = self.queries(x, cos, sin)
        latent, k_pe = self.latents(x, cos, sin)
        if cache is None:
            out = self.naive(q_nope, q_pe, latent, k_pe, attn_mask)
        else:
            latent, k_pe = cache.write(self.layer, positions, latent, k_pe)
            out = self.absorbed(q_nope, q_pe, latent, k_pe, attn_mask)
        return self.o_proj(out.flatten(-2))

    def naive(self, q_nope, q_pe, latent, k_pe, attn_mask):
        """Per-head K/V from the latent; returns `o [B,S,H,v]`."""
        B, T = latent.shape[:2]
        kv = self.kv_b_proj(latent).unflatten(-1, (self.n_heads, self.nope + self.v_dim))
        k_nope, v = kv.split([self.nope, self.v_dim], dim=-1)
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(B, T, self.n_heads, self.rope)], dim=-1)
        q = torch.cat([q_nope, q_pe], dim=-1)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B,H,·,·]
        if attn_mask is None:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.unsqueeze(1), scale=self.scale)
        return o.transpose(1, 2)

    def absorbed_weights(self):
        """W^UK `[H, nope, C]` and W^UV `[H, v, C]` as views of `kv_b_proj`'s weight (no copy)."""
        w = effective_weight(self.kv_b_proj).view(self.n_heads, self.nope + self.v_dim, self.kv_lora_rank)
        return w[:, : self.nope], w[:, self.nope:]

    def absorbed(self, q_nope, q_pe, latent, k_pe, attn_mask):
        """MQA over `latent [B,T,C]` ‖ `k_pe [B,T,R]`; returns `o [B,S,H,v]`."""
        B, S, H, _ = q_nope.shape
        T = latent.shape[1]
        w_uk, w_uv = self.absorbed_weights()
        q_abs = torch.einsum("bshd,hdc->bshc", q_nope, w_uk.to(q_nope.dtype))
        q = torch.cat([q_abs, q_pe], dim=-1).reshape(B, 1, S * H, -1)
        k = torch.cat([latent, k_pe], dim=-1).unsqueeze(1).to(q.dtype)
        v = latent.unsqueeze(1).to(q.dtype)
        if attn_mask is None:  # causal within the chunk, all earlier slots visible
            attn_mask = causal_mask_for_chunk(S, T, q.device).expand(B, S, T)
        mask = attn_mask.unsqueeze(2).expand(B, S, H, T).reshape(B, 1, S * H, T)
        o_lat = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        o_lat = o_lat.reshape(B, S, H, -1)
        return torch.einsum("bshc,hvc->bshv", o_lat, w_uv.to(o_lat.dtype))


def causal_mask_for_chunk(S: int, T: int, device) -> torch.Tensor:
    """`[S, T]`: query s (the last S of T positions) sees keys `<= T - S + s`."""
    q = torch.arange(T - S, T, device=device).unsqueeze(1)
    return torch.arange(T, device=device).unsqueeze(0) <= q


def build_attention_mask(q_positions: torch.Tensor, k_positions: torch.Tensor, k_valid: torch.Tensor | None,
                         self_slots: torch.Tensor | None = None) -> torch.Tensor:
    """Bool `[B, S, T]`: key visible iff `pos_k <= pos_q` and valid; a query always sees its own slot.

    `q_positions [B,S]`, `k_positions [B,T]` or `[T]`, `k_valid [B,T]`. Seeing its own slot keeps a padded query's
    softmax finite (an all-masked row would give NaN, and NaN times a zero weight is still NaN).
    """
    if k_positions.dim() == 1:
        k_positions = k_positions.unsqueeze(0)
    visible = k_positions.unsqueeze(1) <= q_positions.unsqueeze(2)
    if k_valid is not None:
        visible = visible & k_valid.unsqueeze(1)
    own = k_positions.unsqueeze(1) == q_positions.unsqueeze(2) if self_slots is None else self_slots
    return visible | own


def document_ids(positions: torch.Tensor) -> torch.Tensor:
    """`[B,T]` index of the packed document each token belongs to: a new one starts wherever the position does not
    increase (positions restart at 0 for every example packed into a row)."""
    starts = torch.ones_like(positions, dtype=torch.bool)
    starts[:, 1:] = positions[:, 1:] <= positions[:, :-1]
    return starts.long().cumsum(1)


def packed_causal_mask(positions: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Bool `[B,T,T]` for a forward without cache: causal by slot, within the same packed document, over valid keys
    (pads hidden); every query sees itself so padded rows stay finite."""
    B, T = positions.shape
    slots = torch.arange(T, device=positions.device)
    causal = slots.unsqueeze(0) <= slots.unsqueeze(1)  # [T(q), T(k)]
    doc = document_ids(positions)
    mask = causal & (doc.unsqueeze(2) == doc.unsqueeze(1))
    if key_mask is not None:
        mask = mask & key_mask.to(torch.bool).unsqueeze(1)
    return mask | torch.eye(T, dtype=torch.bool, device=positions.device)

