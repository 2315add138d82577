"""One decoder block: pre-norm MLA + pre-norm FFN (dense SwiGLU in the first `n_dense_layers`, MoE after)."""

from __future__ import annotations

import torch
from torch import nn

from r1lab.model.attention import MLA
from r1lab.model.cache import MLACache
from r1lab.model.config import ModelConfig
from r1lab.model.moe import MLP, MoE
from r1lab.model.norm import RMSNorm


class Block(nn.Module):
    def __init__(self, config: ModelConfig, layer: int, *, dense: bool):
        super().__init__()
        self.layer = layer
        self.input_layernorm = RMSNorm(config.dim, config.rms_norm_eps)
        self.self_attn = MLA(config, layer)
        self.post_attention_layernorm = RMSNorm(config.dim, config.rms_norm_eps)
        self.mlp = MLP(config.dim, config.inter_dim, config, role="mlp", layer=layer) if dense else MoE(config, layer)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_mask: torch.Tensor | None,
                token_mask: torch.Tensor | None = None, cache: MLACache | None = None,
                positions: torch.Tensor | None = None):
        """`x [B,S,D]` -> `(x [B,S,D], balance loss scalar)`."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_mask, cache, positions)
        h = self.post_attention_layernorm(x)
        if isinstance(self.mlp, MoE):
            out, balance = self.mlp(h, token_mask)
        else:
            out, balance = self.mlp(h), x.new_zeros((), dtype=torch.float32)
        return x + out, balance
