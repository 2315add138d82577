"""Block-wise E4M3 quantisers: error bounds, scale choice, saturation, power-of-two scales, checkpoint convention."""

import math

import pytest
import torch

from r1lab.fp8.quant import (
    AMAX_FLOOR,
    E4M3_MAX,
    FP8_DTYPE,
    cast_to_fp8,
    dequantize_blocks,
    dequantize_tiles,
    expand_block_scale,
    infer_block_size,
    quantize_blocks,
    quantize_column_tiles,
    quantize_tiles,
    scale_from_amax,
)

B = 32  # small blocks keep the tests fast; the code path is the same as for 128


def error_bound(x: torch.Tensor, s_full: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest E4M3: half an ulp is <= |y|/16 for normals and 2^-10 in the subnormal range (y = x/s)."""
    return x.abs() / 16 + s_full / 1024 + 1e-6 * x.abs()


def test_tile_error_bound_normal_data():
    x = torch.randn(7, 5 * B + 11, generator=torch.Generator().manual_seed(0))  # ragged last tile
    q, s = quantize_tiles(x, B)
    assert q.dtype == FP8_DTYPE and q.shape == x.shape and s.shape == (7, 6)
    s_full = s.repeat_interleave(B, dim=-1)[:, : x.shape[1]]
    err = (dequantize_tiles(q, s, B) - x).abs()
    assert torch.all(err <= error_bound(x, s_full))
    assert err.max() > 0  # E4M3 is lossy on Gaussian data


def test_block_error_bound_normal_data():
    w = torch.randn(3 * B + 5, 2 * B + 1, generator=torch.Generator().manual_seed(1)) * 0.02
    q, s = quantize_blocks(w, B)
    assert q.shape == w.shape and s.shape == (4, 3)
    err = (dequantize_blocks(q, s, B) - w).abs()
    assert torch.all(err <= error_bound(w, expand_block_scale(s, tuple(w.shape), B)))


def test_scale_uses_the_full_e4m3_range():
    x = torch.randn(4, 3 * B, generator=torch.Generator().manual_seed(2))
    q, s = quantize_tiles(x, B)
    tiles = x.view(4, 3, B)
    torch.testing.assert_close(s, tiles.abs().amax(-1) / E4M3_MAX)
    # the element holding each tile's amax lands exactly on +-448
    top = q.float().view(4, 3, B).abs().amax(-1)
    assert torch.all(top == E4M3_MAX)


def test_outlier_stays_in_its_own_block():
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(2 * B, 2 * B, generator=gen)
    w_out = w.clone()
    w_out[3, 5] = 1e6  # block (0, 0): 10^6 times the typical value
    q, s = quantize_blocks(w, B)
    q_o, s_o = quantize_blocks(w_out, B)
    # the three other blocks are bit-identical with and without the outlier
    for bi, bj in ((0, 1), (1, 0), (1, 1)):
        rows, cols = slice(bi * B, (bi + 1) * B), slice(bj * B, (bj + 1) * B)
        assert torch.equal(q[rows, cols].float(), q_o[rows, cols].float())
        assert s[bi, bj] == s_o[bi, bj]
    deq = dequantize_blocks(q_o, s_o, B)
    assert torch.all((deq - w_out).abs() <= error_bound(w_out, expand_block_scale(s_o, (2 * B, 2 * B), B)))
    assert deq[3, 5] == pytest.approx(1e6, rel=1e-6)
    # fine-grained scaling is why: one scale for the whole tensor loses the small values of every block
    q_t, s_t = quantize_blocks(w_out, 2 * B)
    clean = slice(B, 2 * B)
    err_block = (deq[clean, clean] - w_out[clean, clean]).abs().mean()
    err_tensor = (dequantize_blocks(q_t, s_t, 2 * B)[clean, clean] - w_out[clean, clean]).abs().mean()
    assert err_tensor > 10 * err_block


def test_all_zero_blocks_use_the_amax_floor():
    x = torch.zeros(3, 2 * B)
    q, s = quantize_tiles(x, B)
    assert torch.all(s == AMAX_FLOOR / E4M3_MAX)
    assert torch.all(q.float() == 0) and torch.all(dequantize_tiles(q, s, B) == 0)
    w = torch.zeros(B + 3, B)
    qw, sw = quantize_blocks(w, B)
    assert torch.all(torch.isfinite(sw)) and torch.all(dequantize_blocks(qw, sw, B) == 0)


def test_tiny_values_below_the_floor_round_to_subnormals_not_nan():
    x = torch.full((1, B), 1e-7)
    q, s = quantize_tiles(x, B)
    deq = dequantize_tiles(q, s, B)
    assert torch.all(torch.isfinite(deq)) and torch.all((deq - x).abs() <= error_bound(x, s.expand(1, B)))


def test_overflowing_inputs_saturate_and_stay_finite():
    big = torch.tensor([[3.0e38, -3.0e38, 1e30, 1.0] + [0.5] * (B - 4)])
    q, s = quantize_tiles(big, B)
    deq = dequantize_tiles(q, s, B)
    assert torch.all(torch.isfinite(q.float())) and torch.all(torch.isfinite(s)) and torch.all(torch.isfinite(deq))
    assert deq[0, 0] == pytest.approx(3.0e38, rel=1e-6) and deq[0, 1] == pytest.approx(-3.0e38, rel=1e-6)
    # values already beyond E4M3's range (a stale scale) saturate to +-448 instead of wrapping or NaN
    y = torch.tensor([449.0, 500.0, 1e6, -1e6, -460.0, 1e30])
    assert cast_to_fp8(y).float().tolist() == [448.0, 448.0, 448.0, -448.0, -448.0, 448.0]


def test_power_of_two_scales_are_exact_powers_rounded_up():
    amax = torch.tensor([0.0, 1e-6, 0.3, 1.0, 448.0, 1000.0, 2.0**-7 * 448])
    plain = scale_from_amax(amax)
    pow2 = scale_from_amax(amax, pow2=True)
    mantissa, _ = torch.frexp(pow2)
    assert torch.all(mantissa == 0.5)  # exactly 2^e
    assert torch.all(pow2 >= plain) and torch.all(pow2 < 2 * plain)
    assert pow2[-1] == 2.0**-7  # already a power of two: unchanged
    assert torch.all(amax / pow2 <= E4M3_MAX)  # rounding up never saturates


def test_power_of_two_scales_make_e4m3_representable_data_exact():
    gen = torch.Generator().manual_seed(4)
    mags = torch.tensor([m for m in torch.arange(256, dtype=torch.uint8).view(FP8_DTYPE).float().tolist()
                         if math.isfinite(m) and 1.0 <= m <= E4M3_MAX])  # every E4M3 value in [1, 448]
    idx = torch.randint(len(mags), (4, 3 * B), generator=gen)
    signs = torch.randint(0, 2, (4, 3 * B), generator=gen) * 2 - 1
    x = mags[idx] * signs * 2.0**-9  # E4M3 numbers times a power of two
    q, s = quantize_tiles(x, B, pow2=True)
    assert torch.equal(dequantize_tiles(q, s, B), x)
    qw, sw = quantize_blocks(x, B, pow2=True)
    assert torch.equal(dequantize_blocks(qw, sw, B), x)
    q_plain, s_plain = quantize_tiles(x, B)  # an amax-derived scale is not a power of two here
    assert not torch.equal(dequantize_tiles(q_plain, s_plain, B), x)


def test_weight_scale_inv_convention_matches_deepseek_rule():
    """Published checkpoints: W = W_q.float() * weight_scale_inv[n // 128, k // 128]."""
    w = torch.randn(300, 200, generator=torch.Generator().manual_seed(5))
    q, scale_inv = quantize_blocks(w)  # default block 128
    assert scale_inv.shape == (3, 2) and scale_inv.dtype == torch.float32
    n = torch.arange(300)[:, None] // 128
    k = torch.arange(200)[None, :] // 128
    assert torch.equal(dequantize_blocks(q, scale_inv), q.float() * scale_inv[n, k])
    assert infer_block_size((300, 200), (3, 2)) == 128


def test_ragged_edges_equal_zero_padding():
    w = torch.randn(B + 7, 2 * B + 3, generator=torch.Generator().manual_seed(6))
    padded = torch.zeros(2 * B, 3 * B)
    padded[: w.shape[0], : w.shape[1]] = w
    q, s = quantize_blocks(w, B)
    q_p, s_p = quantize_blocks(padded, B)
    assert torch.equal(s, s_p)
    assert torch.equal(q.float(), q_p.float()[: w.shape[0], : w.shape[1]])


def test_tiles_over_leading_dims_match_row_by_row():
    x = torch.randn(2, 3, 2 * B, generator=torch.Generator().manual_seed(7))
    q, s = quantize_tiles(x, B)
    q2, s2 = quantize_tiles(x.reshape(6, 2 * B), B)
    assert torch.equal(q.float().reshape(6, -1), q2.float()) and torch.equal(s.reshape(6, -1), s2)


def test_infer_block_size_rejects_mismatched_grids():
    assert infer_block_size((64, 64), (2, 2)) == 32
    with pytest.raises(ValueError):
        infer_block_size((64, 64), (3, 2))


def test_column_tiles_equal_row_tiles_of_the_transpose():
    """Wgrad's 128x1 tiles: quantising down columns == quantising the transpose along its rows."""
    x = torch.randn(2 * B + 9, 3 * B - 2, generator=torch.Generator().manual_seed(8))
    q, s = quantize_column_tiles(x, B)
    q_t, s_t = quantize_tiles(x.t(), B)
    assert q.shape == x.shape and s.shape == (3, 3 * B - 2)
    assert torch.equal(q.float(), q_t.float().t()) and torch.equal(s, s_t.t())
