"""Which model a stage trains: an r1lab preset (fresh weights) or a checkpoint / named source to start from."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from r1lab.config import StrictModel


class ModelSpec(StrictModel):
    """`init_from` wins when set: an r1lab or HF checkpoint dir, or a source name such as "smollm2-135m"."""

    preset: str = Field("tiny", description="r1lab ModelConfig preset for fresh weights")
    overrides: dict[str, Any] = Field(default_factory=dict, description="ModelConfig fields to override")
    init_from: str | None = Field(None, description="checkpoint dir or source name to load instead")


def build_model(spec: ModelSpec, tokenizer: Any = None) -> tuple[Any, Any]:
    """(model in train mode, tokenizer); a fresh preset model takes its vocabulary and special ids from
    the tokenizer when one is given."""
    if spec.init_from is not None:
        from r1lab.sources import load_model

        model, loaded_tok = load_model(spec.init_from)
        model.train()
        return model, tokenizer if tokenizer is not None else loaded_tok
    from r1lab.model import ModelConfig, Transformer

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
