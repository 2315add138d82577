"""Multi-Token Prediction module (V3 §2.2): depth k predicts token i+k+1 from position i.

`h'_i = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)])` (embedding first, as in the released weights),
`h^k = Block_k(h')`, logits `= head(shared_head.norm(h^k))` with the main model's embedding and head (shared, not
copied in memory). `h^0` is the last main decoder layer's output *before* the final norm (torchtitan's choice).
The module is a `Block` plus `enorm`, `hnorm`, `eh_proj`, `shared_head.norm`, so its state-dict keys are exactly the
checkpoint's `model.layers.{n_layers + k - 1}.*` keys (the on-disk copies of embedding and head are added at save).
"""

from __future__ import annotations

import torch
from torch import nn

from r1lab.model.block import Block
from r1lab.model.config import ModelConfig
from r1lab.model.linear import make_linear
from r1lab.model.norm import RMSNorm


class SharedHead(nn.Module):
    """Holds only the MTP module's own final norm; the output head itself is the main model's `lm_head`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm = RMSNorm(config.dim, config.rms_norm_eps)


class MTPLayer(Block):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__(config, layer, dense=layer < config.n_dense_layers)
        self.enorm = RMSNorm(config.dim, config.rms_norm_eps)
        self.hnorm = RMSNorm(config.dim, config.rms_norm_eps)
        self.eh_proj = make_linear(2 * config.dim, config.dim, config, role="mtp.eh_proj", layer=layer)
        self.shared_head = SharedHead(config)

    def combine(self, token_embeddings: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """`[B,S,D]` embeddings of t_{i+k} and `[B,S,D]` previous-depth states -> block input `[B,S,D]`."""
        return self.eh_proj(torch.cat([self.enorm(token_embeddings), self.hnorm(hidden)], dim=-1))


def shift_left(x: torch.Tensor, k: int, fill: int) -> torch.Tensor:
    """`x[:, i] <- x[:, i+k]`, the last k columns filled with `fill` (pad id or ignore index)."""
    if k == 0:
        return x
    tail = x.new_full((x.shape[0], min(k, x.shape[1])), fill)
    return torch.cat([x[:, k:], tail], dim=1)
