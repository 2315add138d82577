"""The vLLM backend is optional: without vLLM or a GPU it refuses with one clear line."""

from __future__ import annotations

import pytest
from engine_fixtures import single_thread, tiny_llama  # noqa: F401  (autouse)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.engine.vllm_backend import (
    BackendUnavailable,
    to_vllm_params,
    vllm_unavailable_reason,
)
from r1lab.errors import R1labError

REASON = vllm_unavailable_reason()


@pytest.mark.skipif(REASON is None, reason="vLLM and a GPU are present; the skip path does not apply")
def test_unavailable_vllm_is_a_clean_one_line_error():
    with pytest.raises(BackendUnavailable) as info:
        make_sampler(tiny_llama(), None, backend="vllm")
    message = str(info.value)
    assert isinstance(info.value, R1labError) and "\n" not in message
    assert message.startswith("vLLM backend unavailable: ") and ("r1lab[gpu]" in message or "CUDA" in message)


def test_sampling_params_translate_to_vllm_names():
    class FakeVLLM:
        @staticmethod
        def SamplingParams(**kw):  # noqa: N802 (mirrors vllm.SamplingParams)
            return kw

    kw = to_vllm_params(SamplingParams(n=4, max_new_tokens=9, top_k=0, stop=["</answer>"], seed=3), FakeVLLM)
    assert kw["n"] == 4 and kw["max_tokens"] == 9 and kw["top_k"] == -1 and kw["stop"] == ["</answer>"]
    assert kw["include_stop_str_in_output"] is True and kw["seed"] == 3


@pytest.mark.gpu
@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_vllm_generates_and_syncs_weights():
    import torch

    model = tiny_llama().cuda()
    sampler = make_sampler(model, None, backend="vllm")
    params = SamplingParams(temperature=0, max_new_tokens=5)
    before = sampler.generate([[3, 4, 5]], params)[0][0].token_ids
    with torch.no_grad():
        model.lm_head.weight.mul_(-1)
    sampler.sync_weights()
    after = sampler.generate([[3, 4, 5]], params)[0][0].token_ids
    assert len(before) == 5 and after != before
