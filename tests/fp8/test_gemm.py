"""Block-scaled GEMM: promotion per K block, equality with the dequantised FP32 GEMM, backend dispatch."""

import pytest
import torch

import r1lab.fp8.gemm as gemm
from r1lab.fp8.gemm import emulated_scaled_mm, scaled_mm
from r1lab.fp8.quant import (
    FP8_DTYPE,
    dequantize_blocks,
    dequantize_tiles,
    quantize_blocks,
    quantize_tiles,
)

B = 32


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_promotion_applies_both_scales_per_k_block():
    """Closed form: all-ones operands, two K blocks of 4 -> C = 4·sa0·sb0 + 4·sa1·sb1."""
    a = torch.ones(1, 8).to(FP8_DTYPE)
    b = torch.ones(1, 8).to(FP8_DTYPE)
    out = emulated_scaled_mm(a, torch.tensor([[2.0, 3.0]]), b, torch.tensor([[5.0, 7.0]]), block=4)
    assert out.tolist() == [[4 * 2 * 5 + 4 * 3 * 7]]


@pytest.mark.parametrize("m,n,k", [(5, 7, 3 * B), (16, 2 * B + 3, 2 * B + 9), (1, 1, 1)])
def test_tile_by_block_gemm_equals_dequantised_fp32_gemm(m, n, k):
    gen = torch.Generator().manual_seed(m * 1000 + n + k)
    x, w = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
    x_q, x_s = quantize_tiles(x, B)
    w_q, w_s = quantize_blocks(w, B)
    got = emulated_scaled_mm(x_q, x_s, w_q, w_s, B)
    want = dequantize_tiles(x_q, x_s, B) @ dequantize_blocks(w_q, w_s, B).t()
    assert got.dtype == torch.float32 and got.shape == (m, n)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_tile_by_tile_gemm_equals_dequantised_fp32_gemm():
    gen = torch.Generator().manual_seed(11)
    a, b = torch.randn(9, 3 * B + 1, generator=gen), torch.randn(13, 3 * B + 1, generator=gen)
    a_q, a_s = quantize_tiles(a, B)
    b_q, b_s = quantize_tiles(b, B)
    want = dequantize_tiles(a_q, a_s, B) @ dequantize_tiles(b_q, b_s, B).t()
    torch.testing.assert_close(emulated_scaled_mm(a_q, a_s, b_q, b_s, B), want, rtol=1e-5, atol=1e-5)


def test_fp8_gemm_is_close_to_the_fp32_gemm():
    """The DeepGEMM validation metric `1 - 2Σxy / Σ(x²+y²)` stays around 1e-3 for E4M3 operands."""
    gen = torch.Generator().manual_seed(12)
    x, w = torch.randn(64, 256, generator=gen), torch.randn(96, 256, generator=gen)
    got = emulated_scaled_mm(*quantize_tiles(x), *quantize_blocks(w), 128)
    want = x @ w.t()
    diff = 1 - 2 * (got * want).sum() / (got.square() + want.square()).sum()
    assert diff < 2e-3 and rel(got, want) < 0.06


def test_transposed_operands_need_no_copy_and_give_the_same_result():
    """Dgrad multiplies by the transposed weight view; the result equals that of a contiguous copy."""
    gen = torch.Generator().manual_seed(13)
    g, w = torch.randn(8, 5 * B, generator=gen), torch.randn(5 * B, 3 * B, generator=gen)
    g_q, g_s = quantize_tiles(g, B)
    w_q, w_s = quantize_blocks(w, B)  # [5B, 3B]: the layer weight [N, K]; Dgrad uses its transpose
    view = emulated_scaled_mm(g_q, g_s, w_q.t(), w_s.t(), B)
    copy = emulated_scaled_mm(g_q, g_s, w_q.t().contiguous(), w_s.t().contiguous(), B)
    assert torch.equal(view, copy)
    want = dequantize_tiles(g_q, g_s, B) @ dequantize_blocks(w_q, w_s, B)
    torch.testing.assert_close(view, want, rtol=1e-5, atol=1e-5)


def test_dispatch_on_cpu_emulates_and_rejects_bad_input():
    gen = torch.Generator().manual_seed(14)
    x, w = torch.randn(4, 128, generator=gen), torch.randn(16, 128, generator=gen)
    args = (*quantize_tiles(x), *quantize_blocks(w), 128)
    assert not gemm.scaled_mm_available(torch.device("cpu"))
    assert torch.equal(scaled_mm(*args, backend="auto"), emulated_scaled_mm(*args))
    with pytest.raises(ValueError):
        scaled_mm(*args, backend="tensor-cores")
    with pytest.raises(TypeError):
        scaled_mm(x, args[1], args[2], args[3], 128)


def _sm90() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (9, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not _sm90(), reason="block-scaled torch._scaled_mm needs a CUDA SM90 GPU; this machine has none")
@pytest.mark.parametrize("recipe", ["1x128_128x128", "1x128_1x128"])
def test_cuda_scaled_mm_agrees_with_emulation(recipe):
    dev = torch.device("cuda")
    gen = torch.Generator().manual_seed(15)
    x, w = torch.randn(256, 512, generator=gen).to(dev), torch.randn(384, 512, generator=gen).to(dev)
    x_q, x_s = quantize_tiles(x)
    w_q, w_s = quantize_blocks(w) if recipe == "1x128_128x128" else quantize_tiles(w)
    got = gemm.cuda_scaled_mm(x_q, x_s, w_q, w_s, 128)
    want = emulated_scaled_mm(x_q, x_s, w_q, w_s, 128)
    assert rel(got, want) < 1e-2  # cuBLAS rounds its output to bf16
