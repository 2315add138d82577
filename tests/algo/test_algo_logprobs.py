"""selected_logprobs: the fused log-softmax-at-target equals the plain definition, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.algo import logprobs as lp_module
from r1lab.algo import selected_logprobs, token_entropy, token_logprobs


def test_uniform_logits_give_minus_log_v_and_entropy_log_v():
    logits = torch.zeros(3, 4, 50)
    logp, entropy = selected_logprobs(logits, torch.randint(0, 50, (3, 4)), with_entropy=True)
    torch.testing.assert_close(logp, torch.full((3, 4), -math.log(50)))
    torch.testing.assert_close(entropy, torch.full((3, 4), math.log(50)))


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("chunk", [1 << 22, 64])  # one chunk, and chunks of one row (64 // 50 -> 1)
def test_equals_log_softmax_gather_in_float64_values_and_gradients(temperature, chunk, monkeypatch):
    monkeypatch.setattr(lp_module, "CHUNK_ELEMENTS", chunk)
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 50, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (2, 5))
    weights = torch.randn(2, 5, dtype=torch.float64)
    logp, entropy = selected_logprobs(logits, targets, temperature, with_entropy=True)
    ref = token_logprobs(logits / temperature, targets)
    torch.testing.assert_close(logp, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(entropy, token_entropy(logits.detach() / temperature), rtol=0, atol=1e-12)
    grad, = torch.autograd.grad((logp * weights).sum(), logits)
    ref_grad, = torch.autograd.grad((ref * weights).sum(), logits)
    torch.testing.assert_close(grad, ref_grad, rtol=0, atol=1e-12)
    assert not entropy.requires_grad  # a diagnostic: no gradient flows through it


def test_gradcheck():
    logits = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 9, (4,))
    assert torch.autograd.gradcheck(lambda x: selected_logprobs(x, targets, 0.8)[0], (logits,))


def test_bf16_logits_give_fp32_logprobs_and_a_bf16_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 40).to(torch.bfloat16).requires_grad_()
    targets = torch.randint(0, 40, (6,))
    logp, _ = selected_logprobs(logits, targets)
    assert logp.dtype == torch.float32
    torch.testing.assert_close(logp, token_logprobs(logits.detach().float(), targets))
    logp.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    expected = torch.nn.functional.one_hot(targets, 40) - torch.softmax(logits.detach().float(), -1)
    torch.testing.assert_close(logits.grad.float(), expected, atol=4e-3, rtol=0)


def test_greedy_temperature_scores_at_one():
    logits, targets = torch.randn(3, 10), torch.randint(0, 10, (3,))
    torch.testing.assert_close(selected_logprobs(logits, targets, 0.0)[0], token_logprobs(logits, targets))
