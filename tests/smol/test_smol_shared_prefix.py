"""The shared-prefix forward (each GRPO prompt run once) gives the plain forward's log-probs and gradients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from r1lab.algo import token_entropy, token_logprobs
from r1lab.train import shared_prefix
from r1lab.train.rl_forward import completion_logprobs, forward_outputs, gather_positions
from r1lab.train.rl_rollout import build_rollout


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, pad_token_id=0)
    return LlamaForCausalLM(cfg).double()


def completion(prompt, tokens):
    return SimpleNamespace(prompt_token_ids=prompt, token_ids=tokens, logprobs=[], finish_reason="stop")


def grouped_batch():
    """Two prompts of different lengths x 3 completions of ragged lengths (one of length 1), then a lone row."""
    a, b = [5, 6, 7, 8], [9, 10]
    comps = [completion(a, [11, 12, 13]), completion(a, [14]), completion(a, [15, 16, 17, 18, 19]),
             completion(b, [20, 21]), completion(b, [22, 23, 24, 25]), completion(b, [26, 27]),
             completion([30, 31, 32], [33, 34])]
    return build_rollout(comps, pad_id=0)


def plain_logprobs(model, batch):
    logits, _ = forward_outputs(model, batch["input_ids"], batch["attention_mask"])
    pred = gather_positions(logits, batch["comp_index"] - 1).float()
    return token_logprobs(pred, batch["targets"]), token_entropy(pred.detach())


def test_groups_are_runs_of_identical_prompts():
    assert shared_prefix.prompt_groups(grouped_batch()) == [(0, 3), (3, 6), (6, 7)]


def test_logprobs_entropy_and_gradients_match_the_plain_forward(tiny_llama):
    batch = grouped_batch()
    assert shared_prefix.applies(tiny_llama, batch)
    mask = batch["comp_mask"].double()
    weights = torch.linspace(0.5, 1.5, mask.numel(), dtype=torch.float64).view_as(mask)

    def run(fn):
        tiny_llama.zero_grad()
        logp, entropy = fn()
        (logp.double() * mask * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in tiny_llama.named_parameters()}
        return logp.detach() * mask, entropy * mask, grads

    ours = run(lambda: shared_prefix.completion_logprobs(tiny_llama, batch, with_entropy=True))
    ref = run(lambda: plain_logprobs(tiny_llama, batch))
    torch.testing.assert_close(ours[0].double(), ref[0].double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[1].double(), ref[1].double(), rtol=1e-6, atol=1e-6)
    for name, g in ref[2].items():  # HF RMSNorm/RoPE compute in fp32 even in a float64 model: fp32-level agreement
        torch.testing.assert_close(ours[2][name], g, rtol=1e-5, atol=1e-6 * float(g.abs().max()))


def test_rl_forward_uses_it_and_keeps_the_temperature(tiny_llama):
    batch = grouped_batch()
    with torch.no_grad():
        via_stage, _ = completion_logprobs(tiny_llama, batch, temperature=0.7)
        logits, _ = forward_outputs(tiny_llama, batch["input_ids"], batch["attention_mask"])
        plain = token_logprobs(gather_positions(logits, batch["comp_index"] - 1) / 0.7, batch["targets"])
    mask = batch["comp_mask"]
    torch.testing.assert_close(via_stage * mask, plain * mask, rtol=1e-6, atol=1e-6)


def test_rows_without_a_shared_prompt_keep_the_plain_path(tiny_llama):
    comps = [completion([5, 6], [7, 8]), completion([9], [10])]
    assert not shared_prefix.applies(tiny_llama, build_rollout(comps, pad_id=0))
