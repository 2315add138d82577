"""The DeepSeek-V3 model: training forward (main + MTP + balance losses) and cached decoding.

`Transformer(config)`; parameter names mirror Hugging Face `DeepseekV3ForCausalLM` (`model.embed_tokens`,
`model.layers.{i}.self_attn.q_a_proj`, ..., `model.norm`, `lm_head`); routed experts are stacked
(`mlp.experts.gate_up_proj [E,2I,D]`, `mlp.experts.down_proj [E,D,I]`, HF v5's in-memory layout); MTP modules are
`model.layers.{n_layers + k - 1}`.

`model(input_ids [B,T], labels=None, *, positions=None, cache=None, key_mask=None, return_hidden=False)`:
- `labels [B,T]` use the Hugging Face convention: aligned with `input_ids`, shifted inside (position t is scored
  against `labels[t+1]`), `-100` ignored. Then `.loss = main + (λ/D)·Σ_k L^k + balance`; MTP depth k scores position
  t against `labels[t+1+k]`.
- `positions [B,T]` (default `0..T-1`, or continuing after `cache.length` with a cache) are RoPE positions and, with
  a cache, the slots written. Without a cache, attention is causal by slot and a row may pack several documents:
  a new one starts wherever the position does not increase (restart at 0); documents do not attend to each other
  and no main/MTP target crosses a document boundary (torchtitan's MTP rule). `key_mask [B,T]` (True = real token) hides pad tokens as keys (left-padded prompts) and
  excludes them from routing counts and the balance loss.
- With `cache=model.new_cache(B, max_len)` attention uses the absorbed MLA form over the compressed cache.
Returns `ModelOutput(logits [B,T,V], loss, main_loss, mtp_loss, balance_loss, hidden)`; `hidden` (when
`return_hidden`) is the last decoder layer's output before the final norm — the MTP input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.attention import build_attention_mask, document_ids, packed_causal_mask
from r1lab.model.block import Block
from r1lab.model.cache import MLACache
from r1lab.model.config import ModelConfig
from r1lab.model.hf import load_pretrained, save_pretrained
from r1lab.model.moe import MoE, bias_update, max_violation
from r1lab.model.mtp import MTPLayer, shift_left
from r1lab.model.norm import RMSNorm
from r1lab.model.rope import rope_attention_factor, rope_cos_sin, rope_inv_freq

IGNORE_INDEX = -100


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    main_loss: torch.Tensor | None = None
    mtp_loss: torch.Tensor | None = None
    balance_loss: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, shift: int = 1,
                          doc_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CE of `logits[:, t]` against `labels[:, t+shift]` over non-ignored targets (0 if there are none);
    with `doc_ids [B,T]`, targets in another packed document than position t are ignored."""
    T = labels.shape[1]
    if T <= shift:
        return logits.new_zeros((), dtype=torch.float32)
    pred = logits[:, : T - shift].reshape(-1, logits.shape[-1]).float()
    target = labels[:, shift:]
    if doc_ids is not None:
        target = target.masked_fill(doc_ids[:, shift:] != doc_ids[:, : T - shift], IGNORE_INDEX)
    target = target.reshape(-1)
    total = F.cross_entropy(pred, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp(min=1)


class DecoderTrunk(nn.Module):
    """HF's `model.*`: embedding, main blocks, MTP modules (appended to `layers`), final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        layers: list[nn.Module] = [Block(config, i, dense=i < config.n_dense_layers) for i in range(config.n_layers)]
        layers += [MTPLayer(config, config.n_layers + k) for k in range(config.mtp_depth)]
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(config.dim, config.rms_norm_eps)


class Transformer(nn.Module):
    supports_packed_positions = True  # restarted positions in a row = separate documents (see module docstring)

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.model = DecoderTrunk(config)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        self.register_buffer("rope_inv_freq", rope_inv_freq(config), persistent=False)
        self.rope_factor = rope_attention_factor(config)
        self.reset_parameters()

    # ----- construction -----
    def reset_parameters(self) -> None:
        """Normal(0, init_std) for every projection, embedding, head and router; ones for norms; zero biases."""
        std = self.config.init_std
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=std)
            elif name.endswith("norm.weight"):
                nn.init.ones_(p)
        for module in self.modules():
            if hasattr(module, "e_score_correction_bias"):
                module.e_score_correction_bias.zero_()
                module.load_counts.zero_()

    def init_runtime_buffers(self) -> None:
        """(Re)create the buffers that are not in the state dict: RoPE frequencies, routing counts (after a meta build)."""
        device = self.lm_head.weight.device
        self.rope_inv_freq = rope_inv_freq(self.config).to(device)
        for _, moe in self.moe_layers():
            moe.gate.load_counts = torch.zeros(self.config.n_routed_experts, dtype=torch.float32, device=device)

    @property
    def main_layers(self) -> list[Block]:
        return list(self.model.layers[: self.config.n_layers])

    @property
    def mtp_layers(self) -> list[MTPLayer]:
        return list(self.model.layers[self.config.n_layers:])

    def moe_layers(self) -> list[tuple[int, MoE]]:
        return [(i, layer.mlp) for i, layer in enumerate(self.model.layers) if isinstance(layer.mlp, MoE)]

    def new_cache(self, batch_size: int, max_len: int | None = None, *, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> MLACache:
        """An empty compressed cache for the main layers and the MTP modules (`max_len` defaults to max_seq_len)."""
        ref = self.lm_head.weight
        return MLACache(len(self.model.layers), batch_size, max_len or self.config.max_seq_len,
                        self.config.kv_lora_rank, self.config.qk_rope_head_dim,
                        dtype=dtype or ref.dtype, device=device or ref.device)

    # ----- forward -----
    def _attention_inputs(self, input_ids, positions, cache, key_mask):
        """RoPE cos/sin `[B,S,R/2]`, positions `[B,S]` (or None) and the attention mask (None = plain causal)."""
        B, S = input_ids.shape
        device = input_ids.device
        if positions is None:
            start = cache.length if cache is not None else 0
            positions = torch.arange(start, start + S, device=device).unsqueeze(0).expand(B, S)
            explicit = False
        else:
            positions = positions.to(device=device, dtype=torch.long)
            explicit = True
        cos, sin = rope_cos_sin(self.rope_inv_freq, positions, self.rope_factor)
        if cache is not None:
            cache.mark(positions, key_mask)
            slots = torch.arange(cache.length, device=device)
            mask = build_attention_mask(positions, slots, cache.valid[:, : cache.length])
        elif explicit or key_mask is not None:
            mask = packed_causal_mask(positions, key_mask)
        else:
            mask = None
        return cos, sin, positions, mask

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None, *,
                positions: torch.Tensor | None = None, cache: MLACache | None = None,
                key_mask: torch.Tensor | None = None, return_hidden: bool = False) -> ModelOutput:
        positions_given = positions is not None
        cos, sin, positions, mask = self._attention_inputs(input_ids, positions, cache, key_mask)
        x = self.model.embed_tokens(input_ids)
        balance = x.new_zeros((), dtype=torch.float32)
        for layer in self.main_layers:
            x, bal = layer(x, cos, sin, mask, key_mask, cache, positions)
            balance = balance + bal
        hidden = x
        logits = self.lm_head(self.model.norm(x))
        out = ModelOutput(logits=logits, hidden=hidden if return_hidden else None)
        if labels is None:
            return out
        docs = document_ids(positions) if cache is None and positions_given else None
        main = shifted_cross_entropy(logits, labels, 1, docs)
        mtp = logits.new_zeros((), dtype=torch.float32)
        if self.config.mtp_depth > 0 and self.config.mtp_lambda > 0:
            h = hidden
            for k, layer in enumerate(self.mtp_layers, start=1):
                next_ids = shift_left(input_ids, k, self.config.pad_token_id)
                mtp_logits, h, bal = self._mtp_step(layer, h, next_ids, cos, sin, mask, key_mask)
                balance = balance + bal
                mtp = mtp + shifted_cross_entropy(mtp_logits, labels, 1 + k, docs)
            mtp = mtp * (self.config.mtp_lambda / self.config.mtp_depth)
        out.main_loss, out.mtp_loss, out.balance_loss = main, mtp, balance
        out.loss = main + mtp + balance
        return out

    def _mtp_step(self, layer: MTPLayer, hidden, next_ids, cos, sin, mask, key_mask, cache=None, positions=None):
        x = layer.combine(self.model.embed_tokens(next_ids), hidden)
        h, bal = layer(x, cos, sin, mask, key_mask, cache, positions)
        return self.lm_head(layer.shared_head.norm(h)), h, bal

    def mtp_forward(self, hidden: torch.Tensor, next_ids: torch.Tensor, *, depth: int = 1,
                    positions: torch.Tensor | None = None, cache: MLACache | None = None,
                    key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One MTP module for drafting: states `h^{depth-1} [B,S,D]` at `positions` and the tokens that follow them
        `next_ids [B,S]` -> (logits `[B,S,V]` for the token after `next_ids`, `h^depth [B,S,D]`).

        With a cache, the module's own attention uses cache layer `n_layers + depth - 1` (positions as for the main
        model: the position of the state, not of the token it predicts).
        """
        layer = self.mtp_layers[depth - 1]
        if cache is not None:
            # slots were marked valid by the main model's pass over the same positions
            if positions is None:
                raise ValueError("mtp_forward with a cache needs explicit positions")
            cos, sin = rope_cos_sin(self.rope_inv_freq, positions, self.rope_factor)
            slots = torch.arange(cache.length, device=next_ids.device)
            mask = build_attention_mask(positions, slots, cache.valid[:, : cache.length])
        else:
            cos, sin, positions, mask = self._attention_inputs(next_ids, positions, None, key_mask)
        logits, h, _ = self._mtp_step(layer, hidden, next_ids, cos, sin, mask, key_mask, cache, positions)
        return logits, h

    # ----- load balancing -----
    @torch.no_grad()
    def update_balance_bias(self, gamma: float) -> list[dict]:
        """Apply the aux-free bias update from the counts accumulated since the last call, then zero them.

        Counts are summed over data-parallel ranks when torch.distributed is initialised. Returns the routing
        stats of the consumed counts (as `routing_stats`).
        """
        stats = self.routing_stats()
        dist = torch.distributed
        for _, moe in self.moe_layers():
            counts = moe.gate.load_counts
            if dist.is_available() and dist.is_initialized():
                dist.all_reduce(counts)
            if gamma and self.config.balance_bias:
                moe.gate.e_score_correction_bias.copy_(bias_update(moe.gate.e_score_correction_bias, counts, gamma))
            counts.zero_()
        return stats

    @torch.no_grad()
    def routing_stats(self) -> list[dict]:
        """Per MoE layer: `layer`, `load` (assignments per expert since the last bias update), `max_vio`,
        `min_load`, `max_load`, `dead_experts` (experts with zero load)."""
        out = []
        for i, moe in self.moe_layers():
            counts = moe.gate.load_counts
            out.append({"layer": i, "load": counts.tolist(), "max_vio": float(max_violation(counts)),
                        "min_load": float(counts.min()), "max_load": float(counts.max()),
                        "dead_experts": int((counts == 0).sum())})
        return out

    # ----- accounting / checkpoints -----
    def num_parameters(self, include_mtp: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if not include_mtp:
            n -= sum(p.numel() for layer in self.mtp_layers for p in layer.parameters())
        return n

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> "Transformer":
        return load_pretrained(cls, path, **kwargs)

    def save_pretrained(self, path: str | Path, **kwargs) -> None:
        save_pretrained(self, path, **kwargs)


def is_r1lab_model(model: object) -> bool:
    """An r1lab DeepSeek-V3 `Transformer` (as opposed to a Hugging Face causal LM): the one test every layer uses."""
    return isinstance(model, Transformer)


__all__ = ["Transformer", "ModelOutput", "shifted_cross_entropy", "IGNORE_INDEX", "is_r1lab_model"]
