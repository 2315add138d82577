"""Sampling from a peft-LoRA policy with the lean Llama runner: it packs base + adapter weights, merged.

peft's LoRA layer wraps a Linear and adds `scale * B(A(x))` in its forward; its `.weight` is the *base* weight.
The lean runner never calls the modules' forward, it packs `.weight`, so on its own it would sample from the
base model. Here, while the runner packs, each adapted layer's base weight is replaced by `W + scale * B @ A`
(peft's `get_delta_weight`), then the original Parameter is put back: the trainer's weights are never modified
in place, so there is no merge/unmerge round-off drift. Training a LoRA policy changes its adapter
parameters, which changes `parameter_signature`, so the runner re-packs exactly when a step was taken.
Only peft's plain `lora.Linear` is handled (no embeddings, DoRA or other variants; `r1lab.train.core.lora` builds
no others).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from r1lab.engine.hf_llama import LlamaRunner
from r1lab.engine.kernels import parameter_signature


def lora_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every peft LoRA layer in `model` (duck-typed: peft need not be importable)."""
    return [(name, m) for name, m in model.named_modules()
            if hasattr(m, "lora_A") and hasattr(m, "base_layer") and hasattr(m, "get_delta_weight")]


def has_lora(model: Any) -> bool:
    return isinstance(model, nn.Module) and bool(lora_layers(model))


def merged_weight(layer: nn.Module) -> torch.Tensor:
    """W + sum of the active adapters' scale * B @ A  [out, in] (W alone while adapters are disabled)."""
    base = layer.get_base_layer().weight
    weight = base.detach()
    if getattr(layer, "merged", False):
        raise RuntimeError("peft adapter already merged into the base weight; r1lab never merges in place")
    if getattr(layer, "disable_adapters", False):
        return weight
    with torch.no_grad():
        for name in layer.active_adapters:
            if name in layer.lora_A:
                weight = weight + layer.get_delta_weight(name).to(weight.dtype)
    return weight


@contextlib.contextmanager
def merged_lora_weights(model: nn.Module) -> Iterator[None]:
    """Inside: every adapted layer's base `weight` reads W + scale * B @ A (fresh tensors); restored after."""
    swapped = []
    try:
        for _, layer in lora_layers(model):
            base = layer.get_base_layer()
            original = base.weight
            base._parameters["weight"] = nn.Parameter(merged_weight(layer), requires_grad=False)
            swapped.append((base, original))
        yield
    finally:
        for base, original in swapped:
            base._parameters["weight"] = original


class MergedLoraRunner(LlamaRunner):
    """`LlamaRunner` over a LoRA-adapted HF Llama-family model: decodes with the merged weights."""

    _lora_signature: tuple | None = None

    def refresh(self, force: bool = False) -> None:
        signature = parameter_signature(self.model)  # the real parameters, adapters included
        if signature == self._lora_signature and not force:
            return
        with merged_lora_weights(self.model):
            self._signature = None  # the merged tensors are new objects: always re-pack them
            super().refresh()
        self._lora_signature = signature
