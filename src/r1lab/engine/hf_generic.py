"""Fallback runner for any HF causal LM: the model's own forward and cache, r1lab's loop around it.

On a CPU the model's `nn.Linear` layers run on prepacked oneDNN weights while the runner decodes (their
`forward` is swapped for the packed GEMM and restored afterwards): at decode batch sizes the projections are
most of the step, and the packed GEMM is 2-3.5x faster than `F.linear` there.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch

from r1lab.engine.kernels import pack_linears, parameter_signature


@dataclass
class HFState:
    cache: Any  # transformers Cache
    attention_mask: torch.Tensor  # [B, T] 1 for real tokens (left padding is 0)

    @property
    def batch_size(self) -> int:
        return self.attention_mask.shape[0]


class HFGenericRunner:
    def __init__(self, model: Any):
        self.model = model
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        # transformers renamed `past_key_values` to `cache` (5.2x); the cache object is updated in place either way.
        params = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._packed, self._signature = [], None
        self.refresh()

    def refresh(self, force: bool = False) -> None:
        """Re-pack the linear layers if the model's parameters changed since the last call (or `force`)."""
        signature = parameter_signature(self.model)
        if signature != self._signature or force:
            self._packed, self._signature = pack_linears(self.model), signature

    @contextlib.contextmanager
    def _packed_linears(self):
        for module, packed in self._packed:  # an instance attribute shadows the class's forward
            module.__dict__["forward"] = packed
        try:
            yield
        finally:
            for module, _ in self._packed:
                module.__dict__.pop("forward", None)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache: Any) -> tuple[Any, torch.Tensor]:
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        with self._packed_linears():
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1, **{self.cache_kwarg: cache})
        return cache, out.logits[:, -1].float()

    def prefill(self, prompts: list[list[int]], max_len: int) -> tuple[HFState, torch.Tensor]:
        from transformers import DynamicCache  # slow import, paid where used

        S = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), S, dtype=torch.long)
        mask = torch.zeros(len(prompts), S, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, S - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, S - len(p) :] = 1
        device = self.model.get_output_embeddings().weight.device
        cache, logits = self._forward(ids.to(device), mask.to(device), DynamicCache(config=self.model.config))
        return HFState(cache, mask), logits

    def repeat(self, state: HFState, n: int) -> HFState:
        if n > 1:
            state.cache.batch_repeat_interleave(n)
            state.attention_mask = state.attention_mask.repeat_interleave(n, dim=0)
        return state

    def select(self, state: HFState, rows: torch.Tensor) -> HFState:
        rows = rows.to(state.attention_mask.device)
        state.cache.batch_select_indices(rows)
        state.attention_mask = state.attention_mask[rows]
        return state

    def decode(self, state: HFState, tokens: torch.Tensor) -> torch.Tensor:
        state.attention_mask = torch.cat([state.attention_mask, torch.ones_like(state.attention_mask[:, :1])], dim=1)
        state.cache, logits = self._forward(tokens[:, None].to(state.attention_mask.device), state.attention_mask,
                                            state.cache)
        return logits
