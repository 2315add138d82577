"""The MLA compressed KV cache: per layer and token, only the normalised latent and the rotated shared rope key.

Slots are absolute positions: a forward with `positions [B, S]` writes row b's tokens to slots `positions[b]`. Rows
may sit at different positions (batched decode of prompts of different lengths); left padding is expressed by
writing pad tokens with `key_mask=False`, which marks their slots invalid so no later query attends to them.
Bytes per token: `(kv_lora_rank + qk_rope_head_dim) · layers · dtype size` (V2 Table 1).
"""

from __future__ import annotations

import torch


class MLACache:
    """Preallocated `[layers, B, max_len, ·]` buffers; `select` / `repeat_interleave` reshape the batch in place."""

    def __init__(self, n_layers: int, batch_size: int, max_len: int, kv_lora_rank: int, rope_dim: int, *,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.max_len = max_len
        self.latent = torch.zeros(n_layers, batch_size, max_len, kv_lora_rank, dtype=dtype, device=device)
        self.k_rope = torch.zeros(n_layers, batch_size, max_len, rope_dim, dtype=dtype, device=device)
        self.valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)
        self.length = 0  # one past the highest slot written so far (attention spans slots [0, length))

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    def bytes_per_token(self) -> int:
        per_layer = self.latent.shape[-1] * self.latent.element_size() + self.k_rope.shape[-1] * self.k_rope.element_size()
        return per_layer * self.latent.shape[0]

    def mark(self, positions: torch.Tensor, key_mask: torch.Tensor | None) -> None:
        """Record which of the slots about to be written hold real tokens; grows `length` (one host sync)."""
        new_end = int(positions.max()) + 1
        if new_end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions, asked to write position {new_end - 1}")
        flags = torch.ones_like(positions, dtype=torch.bool) if key_mask is None else key_mask.to(torch.bool)
        self.valid.scatter_(1, positions, flags)
        self.length = max(self.length, new_end)

    def write(self, layer: int, positions: torch.Tensor, latent: torch.Tensor, k_rope: torch.Tensor):
        """Store `latent [B,S,C]`, `k_rope [B,S,R]` at `positions [B,S]`; return this layer's `[B, length, ·]` views."""
        idx = positions.unsqueeze(-1)
        self.latent[layer].scatter_(1, idx.expand(-1, -1, latent.shape[-1]), latent.to(self.latent.dtype))
        self.k_rope[layer].scatter_(1, idx.expand(-1, -1, k_rope.shape[-1]), k_rope.to(self.k_rope.dtype))
        return self.latent[layer, :, : self.length], self.k_rope[layer, :, : self.length]

    def select(self, rows: torch.Tensor | list[int]) -> "MLACache":
        """Keep only batch `rows` (e.g. drop finished sequences)."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.valid.device)
        self.latent = self.latent.index_select(1, rows)
        self.k_rope = self.k_rope.index_select(1, rows)
        self.valid = self.valid.index_select(0, rows)
        return self

    def repeat_interleave(self, n: int) -> "MLACache":
        """Repeat each row n times (share one prompt prefill across n samples): row b -> rows b*n .. b*n+n-1."""
        self.latent = self.latent.repeat_interleave(n, dim=1)
        self.k_rope = self.k_rope.repeat_interleave(n, dim=1)
        self.valid = self.valid.repeat_interleave(n, dim=0)
        return self
