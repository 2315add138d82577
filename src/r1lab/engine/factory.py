"""`make_sampler(model, tokenizer)`: the backend that fits the model, behind the one `Sampler` interface.

Kept apart from `sampler.py` so that the backends can build on `Sampler` while this module chooses among them.
"""

from __future__ import annotations

from typing import Any

from r1lab.engine import hf_llama
from r1lab.engine.hf_generic import HFGenericRunner
from r1lab.engine.lora_merge import MergedLoraRunner, has_lora
from r1lab.engine.r1lab_backend import R1labRunner, R1labSampler
from r1lab.engine.sampler import Sampler
from r1lab.engine.vllm_backend import (
    VLLMSampler,  # imports vllm itself only when one is built
)
from r1lab.errors import ConfigError
from r1lab.model import is_r1lab_model


def make_sampler(model: Any, tokenizer: Any = None, *, backend: str = "auto", max_batch_rows: int = 64,
                 threads: int | None = None, compute_dtype: Any = None) -> Any:
    """A sampler for an r1lab Transformer or an HF causal LM.

    backend: "auto" (r1lab runner for r1lab models, the lean Llama runner for Llama-family HF models,
    else the HF-forward runner), "hf" (force the HF-forward runner), "vllm" (GPU; HF models).
    threads: torch intra-op threads while sampling (see `Sampler`).
    compute_dtype: e.g. torch.bfloat16 to decode an fp32 Llama-family model with bf16 weights (lean runner only;
    faster on CPUs with bf16 instructions, logits no longer equal the fp32 forward).
    """
    if backend == "vllm":
        if has_lora(model):
            raise ConfigError("engine backend 'vllm' does not support LoRA policies; use backend auto or hf")

        return VLLMSampler(model, tokenizer)
    if backend not in ("auto", "hf"):
        raise ConfigError(f"engine backend: expected one of auto, hf, vllm, got {backend!r}")
    if is_r1lab_model(model):
        return R1labSampler(model, tokenizer, R1labRunner(model), max_batch_rows=max_batch_rows, threads=threads)
    if backend == "auto" and hf_llama.supports(model):
        # a peft-LoRA policy: the lean runner packs base + adapter weights merged (r1lab.engine.lora_merge)
        runner_cls = MergedLoraRunner if has_lora(model) else hf_llama.LlamaRunner
        runner = runner_cls(model, compute_dtype=compute_dtype)
    else:
        runner = HFGenericRunner(model)
    return Sampler(model, tokenizer, runner, max_batch_rows=max_batch_rows, threads=threads)
