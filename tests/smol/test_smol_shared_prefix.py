"""The packed shared-prefix forward (each GRPO prompt run once, no padding, block-structured attention) gives the
plain forward's log-probs and gradients."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from r1lab.algo import token_entropy, token_logprobs
from r1lab.train.rl import shared_prefix
from r1lab.train.rl.batch import build_rollout
from r1lab.train.rl.forward import (
    completion_logprobs,
    forward_outputs,
    gather_positions,
)


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


def run_backward(model, fn, mask):
    weights = torch.linspace(0.5, 1.5, mask.numel(), dtype=torch.float64).view_as(mask)
    model.zero_grad()
    logp, entropy = fn()
    (logp.double() * mask * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    return logp.detach() * mask, entropy * mask, grads


def assert_same(ours, ref):
    torch.testing.assert_close(ours[0].double(), ref[0].double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[1].double(), ref[1].double(), rtol=1e-6, atol=1e-6)
    for name, g in ref[2].items():  # HF RMSNorm/RoPE compute in fp32 even in a float64 model: fp32-level agreement
        torch.testing.assert_close(ours[2][name], g, rtol=1e-5, atol=1e-6 * float(g.abs().max()))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logprobs_entropy_and_gradients_match_the_plain_forward(tiny_llama, attn):
    batch = grouped_batch()
    assert shared_prefix.applies(tiny_llama, batch)
    mask = batch["comp_mask"].double()
    tiny_llama.config._attn_implementation = attn  # the plain forward's kernel; packing swaps in its own
    try:
        ref = run_backward(tiny_llama, lambda: plain_logprobs(tiny_llama, batch), mask)
        ours = run_backward(tiny_llama, lambda: shared_prefix.completion_logprobs(tiny_llama, batch, with_entropy=True),
                            mask)
        assert tiny_llama.config._attn_implementation == attn  # restored afterwards
    finally:
        tiny_llama.config._attn_implementation = "sdpa"
    assert_same(ours, ref)


def test_packed_attention_equals_dense_masked_attention():
    """Block-structured attention == SDPA with the explicit mask, GQA included, float64."""
    from r1lab.train.rl.packed_attention import RowLayout, packed_attention_forward

    torch.manual_seed(0)
    p, lengths, T = 4, [3, 0, 5, 1], 15  # 13 real tokens + 2 of row padding
    H, KVH, hd = 4, 2, 8
    q, k, v = torch.randn(1, H, T, hd, dtype=torch.float64), torch.randn(1, KVH, T, hd, dtype=torch.float64), \
        torch.randn(1, KVH, T, hd, dtype=torch.float64)
    seg = torch.tensor([0] * p + [1] * 3 + [3] * 5 + [4] * 1 + [-1] * 2)
    pos = torch.tensor(list(range(p)) + [4, 5, 6] + [4, 5, 6, 7, 8] + [4] + [0, 0])
    allowed = (pos[None, :] <= pos[:, None]) & ((seg[None, :] == 0) | (seg[None, :] == seg[:, None]))
    allowed |= torch.eye(T, dtype=torch.bool)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed, enable_gqa=True)
    ours, _ = packed_attention_forward(None, q, k, v, None, scaling=hd**-0.5, packed_rows=[RowLayout.build(p, lengths)])
    real = seg >= 0
    torch.testing.assert_close(ours[0][real], dense[0].transpose(0, 1)[real])
    assert (ours[0][~real] == 0).all()


def test_packing_layout_prompt_once_no_padding_and_one_row_per_group():
    batch = grouped_batch()
    packed = shared_prefix.pack(batch)
    assert packed.input_ids.shape[0] == 3  # one packed row per prompt group
    # group a: prompt (4) + completion inputs 2 + 0 + 4 tokens; positions restart after the prompt
    assert packed.input_ids[0, :10].tolist() == [5, 6, 7, 8, 11, 12, 15, 16, 17, 18]
    assert packed.position_ids[0, :10].tolist() == [0, 1, 2, 3, 4, 5, 4, 5, 6, 7]
    row = packed.rows[0]
    assert row.prompt_len == 4 and row.valid.sum(-1).tolist() == [2, 0, 4]
    assert row.index[2].tolist() == [6, 7, 8, 9]
    # every valid completion token has one predicting position; completion token 0 is the prompt's last token
    assert len(packed.source) == int(batch["comp_len"].sum())
    assert packed.source[:4].tolist() == [3, 4, 5, 3]


def test_rl_forward_uses_it_and_keeps_the_temperature(tiny_llama):
    batch = grouped_batch()
    with torch.no_grad():
        via_stage, _ = completion_logprobs(tiny_llama, batch, temperature=0.7)
        logits, _ = forward_outputs(tiny_llama, batch["input_ids"], batch["attention_mask"])
        plain = token_logprobs(gather_positions(logits, batch["comp_index"] - 1) / 0.7, batch["targets"])
    mask = batch["comp_mask"]
    torch.testing.assert_close(via_stage * mask, plain * mask, rtol=1e-6, atol=1e-6)


def test_rows_without_a_shared_prompt_are_packed_without_padding_and_agree(tiny_llama):
    comps = [completion([5, 6], [7, 8]), completion([9], [10, 11, 12])]
    batch = build_rollout(comps, pad_id=0)
    assert shared_prefix.applies(tiny_llama, batch)
    with torch.no_grad():
        ours, _ = shared_prefix.completion_logprobs(tiny_llama, batch)
        plain, _ = plain_logprobs(tiny_llama, batch)
    mask = batch["comp_mask"]
    torch.testing.assert_close(ours.double() * mask, plain.double() * mask, rtol=1e-6, atol=1e-6)
