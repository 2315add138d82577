"""Which model a stage trains: an r1lab preset (fresh weights) or a checkpoint / named source to start from."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from r1lab.config import StrictModel
from r1lab.model import ModelConfig, Transformer
from r1lab.sources import load_model
from r1lab.train.core.lora import LoraSpec, apply_lora


class ModelSpec(StrictModel):
    """`init_from` wins when set: an r1lab or HF checkpoint dir, or a source name such as "smollm2-135m"."""

    preset: str = Field("tiny", description="r1lab ModelConfig preset for fresh weights")
    overrides: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields to override")
    init_from: str | None = Field(None, description="checkpoint dir or source name to load instead")
    lora: LoraSpec | None = Field(None, description="train peft LoRA adapters instead of all weights (HF models)")

    @model_validator(mode="after")
    def _lora_needs_hf(self) -> "ModelSpec":
        if self.lora is not None and self.init_from is None:
            raise ValueError("lora: LoRA adapts a pretrained HF model; set model.init_from (fresh r1lab "
                             "presets train all their weights)")
        return self


def build_model(spec: ModelSpec, tokenizer: Any = None) -> tuple[Any, Any]:
    """(model in train mode, tokenizer); a fresh preset model takes its vocabulary and special ids from
    the tokenizer when one is given. With `spec.lora` only the injected adapters are trainable."""
    if spec.init_from is not None:
        model, loaded_tok = load_model(spec.init_from)
        if spec.lora is not None:
            apply_lora(model, spec.lora)
        model.train()
        return model, tokenizer if tokenizer is not None else loaded_tok

    overrides = dict(spec.overrides)
    if tokenizer is not None:
        overrides.setdefault("vocab_size", len(tokenizer))
        for name in ("pad", "bos", "eos"):
            tid = getattr(tokenizer, f"{name}_token_id", None)
            if tid is not None:
                overrides.setdefault(f"{name}_token_id", tid)
    config = ModelConfig.from_preset(spec.preset, **overrides)
    model = Transformer(config)
    model.train()
    return model, tokenizer
