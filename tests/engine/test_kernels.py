"""PackedLinear: the prepacked GEMM computes F.linear, and add_to adds the residual (fused or not)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from r1lab.engine.kernels import PackedLinear


@pytest.mark.parametrize("prepack", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_packed_linear_equals_f_linear_and_add_to_adds_the_residual(prepack, with_bias):
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(24, 40, generator=g), torch.randn(24, generator=g)
    x, residual = torch.randn(5, 40, generator=g), torch.randn(5, 24, generator=g)
    lin = PackedLinear(w, b if with_bias else None, prepack=prepack)
    want = F.linear(x, w, b if with_bias else None)
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lin.add_to(residual, x), residual + want, atol=1e-5, rtol=1e-5)


def test_add_to_keeps_an_fp32_residual_with_bf16_weights():
    """bf16 matmul output, fp32 residual stream: the sum is fp32 (not rounded to bf16)."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(8, 16, generator=g).bfloat16()
    x, residual = torch.randn(3, 16, generator=g).bfloat16(), torch.full((3, 8), 1.0 + 2**-20)
    with torch.inference_mode():
        out = PackedLinear(w).add_to(residual, x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, residual + F.linear(x, w).float(), atol=0, rtol=0)
