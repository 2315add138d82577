"""Optional GPU backend: vLLM for Hugging Face causal LMs, behind the same sampler interface.

vLLM keeps its own copy of the weights, so an RL trainer calls `sampler.sync_weights()` after each
optimizer step to push the current parameters into it (in-process, colocated on the trainer's GPU).
Unavailable (a one-line `BackendUnavailable`) when vLLM is not installed or no CUDA device is present.
Log-probs are vLLM's for the sampled token (`logprobs_mode="processed_logprobs"` where supported:
after temperature, i.e. log_softmax(logits / T) when no truncation is set).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any, Sequence

from r1lab.engine.params import Completion, SamplingParams
from r1lab.errors import R1labError

INSTALL_HINT = "pip install 'r1lab[gpu]'"


class BackendUnavailable(R1labError):
    """The requested engine backend cannot run on this machine."""


def vllm_unavailable_reason() -> str | None:
    """Why the vLLM backend cannot run here, or None when it can."""
    if importlib.util.find_spec("vllm") is None:
        return f"vLLM backend unavailable: the vllm package is not installed ({INSTALL_HINT}, needs a CUDA GPU)"
    import torch  # CLI start-up time

    if not torch.cuda.is_available():
        return "vLLM backend unavailable: no CUDA device is visible (vLLM runs on GPUs only)"
    return None


def to_vllm_params(params: SamplingParams, vllm: Any) -> Any:
    return vllm.SamplingParams(
        n=params.n, max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1, min_p=params.min_p, stop=list(params.stop) or None,
        stop_token_ids=list(params.stop_token_ids) or None, seed=params.seed, logprobs=0,
        include_stop_str_in_output=params.include_stop_str, ignore_eos=params.ignore_eos,
    )


class VLLMSampler:
    """`generate(prompts, params)` / `sync_weights()` over an in-process vLLM engine."""

    def __init__(self, model: Any, tokenizer: Any, *, gpu_memory_utilization: float = 0.3, **llm_kwargs: Any):
        reason = vllm_unavailable_reason()
        if reason:
            raise BackendUnavailable(reason)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # keep the model in this process for syncs
        import vllm  # optional extra

        self.vllm = vllm
        self.model = model
        self.tokenizer = tokenizer
        self._dir = tempfile.TemporaryDirectory(prefix="r1lab-vllm-")
        model.save_pretrained(self._dir.name)
        if tokenizer is not None:
            tokenizer.save_pretrained(self._dir.name)
        kwargs = dict(model=self._dir.name, gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=True)
        kwargs.update(llm_kwargs)
        try:
            self.llm = vllm.LLM(logprobs_mode="processed_logprobs", **kwargs)
        except TypeError:  # older vLLM without logprobs_mode
            self.llm = vllm.LLM(**kwargs)

    backend = "vllm"

    def _engine_model(self) -> Any:
        executor = self.llm.llm_engine.model_executor
        worker = executor.driver_worker
        for path in (("worker", "model_runner", "model"), ("model_runner", "model")):
            obj = worker
            try:
                for attr in path:
                    obj = getattr(obj, attr)
                return obj
            except AttributeError:
                continue
        raise R1labError("vLLM backend: cannot reach the engine's model to load weights (unsupported vLLM version)")

    def sync_weights(self) -> None:
        """Push the trainer's current parameters into vLLM (after every optimizer step)."""
        state = self.model.state_dict()
        self._engine_model().load_weights(((name, tensor) for name, tensor in state.items()))
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if reset is not None:
            reset()  # cached prompt KV was computed with the old weights

    def generate(self, prompts: Sequence[str | Sequence[int]], params: SamplingParams | None = None, *,
                 on_tokens: Any = None) -> list[list[Completion]]:
        params = params or SamplingParams()
        inputs = [p if isinstance(p, str) else {"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(inputs, to_vllm_params(params, self.vllm), use_tqdm=False)
        result = []
        for out in outputs:
            group = []
            for c in out.outputs:
                ids = list(c.token_ids)
                # c.logprobs[i]: {token id: Logprob} holding at least the sampled token
                lps = [float(entry[t].logprob) for entry, t in zip(c.logprobs, ids)] if c.logprobs else []
                group.append(Completion(text=c.text, token_ids=ids, logprobs=lps,
                                        finish_reason="stop" if c.finish_reason == "stop" else "length",
                                        prompt_token_ids=list(out.prompt_token_ids), policy_logprobs=list(lps)))
            result.append(group)
        return result
