"""Optional LoRA (peft) for HF causal-LM policies: `model.lora` in a stage config.

The adapters are injected into the HF model in place (`peft.inject_adapter_in_model`), so the trainer, the
shared-prefix log-prob path and the engine keep seeing a plain `LlamaForCausalLM` whose projections carry
`W x + scale * B A x`; only the adapter parameters require gradients, so only they reach the optimizer.
- Reference policy (beta != 0): the policy itself with its adapters switched off (`adapters_disabled`), i.e.
  the start model, with no second copy of the weights.
- Sampling: the engine packs the merged weights (`r1lab.engine.lora_merge`).
- Checkpoints: the merged model as a plain HF directory (evaluation, rejection sampling and `r1lab generate`
  load it like any checkpoint) plus the adapter alone in peft's format under `adapter/`, which resume reads
  back into the adapter parameters (the base weights never change, they come from `init_from` again).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from pydantic import Field
from torch import nn

from r1lab.config import StrictModel
from r1lab.engine.lora_merge import (
    has_lora,
    lora_layers,
    merged_lora_weights,
    merged_weight,
)
from r1lab.errors import CheckpointError, ConfigError, R1labError
from r1lab.model import is_r1lab_model

__all__ = ["LoraSpec", "apply_lora", "adapters_disabled", "has_lora", "save_lora", "load_lora", "ADAPTER_DIR"]

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ADAPTER_DIR = "adapter"  # a subdirectory: an adapter_config.json next to config.json would make transformers
#                          treat the merged checkpoint as an adapter to apply to some other base model
_PEFT_PREFIX = "base_model.model."  # key prefix of peft's own adapter files (PeftModel.from_pretrained)


class LoraSpec(StrictModel):
    """Low-rank adapters on the named Linear layers: W x + (alpha / r) B A x, B starting at 0."""

    r: int = Field(16, ge=1, description="adapter rank")
    alpha: float = Field(32.0, gt=0, description="scale numerator: the update is (alpha / r) * B @ A")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input while training")
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_PROJECTIONS), min_length=1,
                                      description="names (suffixes) of the Linear layers to adapt")


def _peft():
    try:
        import peft  # optional extra
    except ImportError:
        raise R1labError("model.lora needs peft: pip install 'r1lab[smollm2]'") from None
    return peft


def apply_lora(model: nn.Module, spec: LoraSpec) -> nn.Module:
    """Inject adapters into `model` in place and freeze everything else; returns the same model."""

    if is_r1lab_model(model) or not hasattr(model, "config"):
        raise ConfigError(f"model.lora: LoRA is for HF causal LMs (through peft); this is a "
                          f"{type(model).__name__} (train it fully: remove model.lora)")
    if has_lora(model):
        raise ConfigError("model.lora: the model already carries LoRA adapters")
    peft = _peft()
    config = peft.LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                             target_modules=list(spec.target_modules), bias="none",
                             base_model_name_or_path=getattr(model, "name_or_path", None) or None)
    try:
        peft.inject_adapter_in_model(config, model)
    except ValueError as e:
        raise ConfigError(f"model.lora.target_modules {spec.target_modules}: {str(e).splitlines()[0]}") from None
    for name, layer in lora_layers(model):
        if not isinstance(layer.get_base_layer(), nn.Linear):
            raise ConfigError(f"model.lora.target_modules: {name} is a {type(layer.get_base_layer()).__name__}; "
                              f"only Linear layers are supported")
    adapter_params = {id(p) for _, layer in lora_layers(model)
                      for d in (layer.lora_A, layer.lora_B) for p in d.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in adapter_params)
    return model


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside: `model` computes its base (pre-LoRA) function, like peft's `PeftModel.disable_adapter()`."""
    layers = [layer for _, layer in lora_layers(model) if not layer.disable_adapters]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in layers:
            layer.enable_adapters(True)  # also restores requires_grad on the adapter weights


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The plain HF state dict of base + adapters merged: the keys the unadapted model would have."""
    with merged_lora_weights(model):
        state = model.state_dict()
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}


def save_lora(model: nn.Module, directory: str | Path) -> None:
    """`directory`: the merged model (config.json, *.safetensors) and `adapter/` in peft's adapter format."""
    from safetensors.torch import save_file  # paid where used (CLI start-up)

    peft = _peft()
    directory = Path(directory)
    model.save_pretrained(str(directory), state_dict=merged_state_dict(model))
    adapter = directory / ADAPTER_DIR
    adapter.mkdir(parents=True, exist_ok=True)
    tensors = peft.get_peft_model_state_dict(model)
    save_file({_PEFT_PREFIX + k: v.detach().contiguous() for k, v in tensors.items()},
              str(adapter / "adapter_model.safetensors"), metadata={"format": "pt"})
    model.peft_config["default"].save_pretrained(str(adapter))


def load_lora(model: nn.Module, directory: str | Path) -> None:
    """Resume: copy a checkpoint's adapter into `model`'s adapter parameters in place (optimizer refs kept),
    then check the merged result against the checkpoint's merged weights (a different base model fails)."""
    from safetensors.torch import load_file  # paid where used (CLI start-up)

    peft = _peft()
    path = Path(directory) / ADAPTER_DIR / "adapter_model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; the checkpoint in {directory} is not from a LoRA run "
                              f"(remove model.lora, or use a fresh train.out_dir)")
    tensors = {k.removeprefix(_PEFT_PREFIX): v for k, v in load_file(str(path)).items()}
    result = peft.set_peft_model_state_dict(model, tensors)
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if result.unexpected_keys or missing:
        raise CheckpointError(f"{path}: adapter does not match model.lora (missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(result.unexpected_keys)[:3]})")
    _check_base(model, Path(directory))


def _check_base(model: nn.Module, directory: Path) -> None:
    """The first adapted layer, merged now, must equal the checkpoint's merged weight (same base model)."""
    from safetensors import safe_open  # paid where used (CLI start-up)

    name, layer = lora_layers(model)[0]
    key = f"{name}.weight"
    for file in sorted(directory.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            if key in f.keys():
                saved = f.get_tensor(key)
                now = merged_weight(layer).to(saved.device, saved.dtype)
                if saved.shape != now.shape or not torch.allclose(saved, now, rtol=1e-4, atol=1e-6):
                    raise CheckpointError(f"{file}: {key} differs from base + adapter; the run resumes on a "
                                          f"different base model than the one it was trained from")
                return
