"""Block-wise E4M3 quantisation, the DeepSeek-V3 way (V3 §3.3, docs/V3.md §5).

Every block of values shares one FP32 scale `s = max(amax, 1e-4) / 448`; the stored value is
`q = e4m3(clamp(x / s, -448, 448))` and `x ≈ q * s`. Small blocks (1x128 tiles of activations,
128x128 blocks of weights) keep one outlier from crushing the precision of everything else.

`s` is a *dequantisation multiplier*: it is exactly what the published DeepSeek-V3 FP8 checkpoints
store as `<linear>.weight_scale_inv` (the name means "inverse of the quantisation scale 448/amax").

Shapes: activations `x[..., K]` -> `q[..., K]`, `s[..., ceil(K/b)]`;
weights `w[N, K]` -> `q[N, K]`, `s[ceil(N/b), ceil(K/b)]`. Ragged edges are zero-padded before the
amax, so a partial block is scaled by its real values only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FP8_DTYPE = torch.float8_e4m3fn
E4M3_MAX = 448.0  # largest finite E4M3 value; the format has no inf
AMAX_FLOOR = 1e-4  # keeps all-zero blocks from producing a zero (then inf/NaN) scale
DEFAULT_BLOCK = 128


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def scale_from_amax(amax: torch.Tensor, pow2: bool = False) -> torch.Tensor:
    """Dequantisation multiplier for blocks with the given absolute maxima (fp32, same shape).

    With `pow2` the scale is rounded *up* to a power of two (UE8M0, as in DeepSeek-V3.1 and DeepGEMM on
    SM100): dividing by it is exact, and rounding up keeps `amax / s <= 448` so nothing saturates.
    """
    s = amax.float().clamp(min=AMAX_FLOOR) / E4M3_MAX
    if pow2:
        mantissa, exponent = torch.frexp(s)  # s = mantissa * 2**exponent, mantissa in [0.5, 1)
        exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)  # already a power of two
        s = torch.ldexp(torch.ones_like(s), exponent)
    return s


def cast_to_fp8(y: torch.Tensor) -> torch.Tensor:
    """Saturating cast of already-scaled fp32 values: clamp first, because casts are not guaranteed to saturate."""
    return y.clamp(-E4M3_MAX, E4M3_MAX).to(FP8_DTYPE)


def quantize_tiles(x: torch.Tensor, block: int = DEFAULT_BLOCK, pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise along the last dim in 1 x `block` tiles (activations, gradients).

    x[..., K] (any float dtype) -> (q[..., K] float8_e4m3fn, s[..., ceil(K/block)] fp32).
    """
    k = x.shape[-1]
    kb = ceil_div(k, block)
    xf = x.float()
    if kb * block != k:
        xf = F.pad(xf, (0, kb * block - k))  # [..., kb*block]
    tiles = xf.unflatten(-1, (kb, block))  # [..., kb, block]
    s = scale_from_amax(tiles.abs().amax(dim=-1), pow2)  # [..., kb]
    q = cast_to_fp8(tiles / s.unsqueeze(-1)).flatten(-2)[..., :k]
    return q, s


def quantize_column_tiles(
    x: torch.Tensor, block: int = DEFAULT_BLOCK, pow2: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise a matrix down its columns in `block` x 1 tiles (Wgrad operands, tiled along the token dim).

    x[M, K] -> (q[M, K] float8_e4m3fn, s[ceil(M/block), K] fp32). Equal to `quantize_tiles(x.t())`
    transposed, without materialising the transpose.
    """
    m, k = x.shape
    mb = ceil_div(m, block)
    xf = x.float()
    if mb * block != m:
        xf = F.pad(xf, (0, 0, 0, mb * block - m))  # [mb*block, K]
    tiles = xf.view(mb, block, k)
    s = scale_from_amax(tiles.abs().amax(dim=1), pow2)  # [mb, K]
    q = cast_to_fp8(tiles / s.unsqueeze(1)).view(mb * block, k)[:m]
    return q, s


def dequantize_tiles(q: torch.Tensor, s: torch.Tensor, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Inverse of `quantize_tiles`: q[..., K] fp8, s[..., ceil(K/block)] -> fp32 [..., K]."""
    k = q.shape[-1]
    return q.float() * s.repeat_interleave(block, dim=-1)[..., :k]


def quantize_blocks(w: torch.Tensor, block: int = DEFAULT_BLOCK, pow2: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantise a matrix in `block` x `block` blocks (weights).

    w[N, K] -> (q[N, K] float8_e4m3fn, s[ceil(N/block), ceil(K/block)] fp32) — `s` is `weight_scale_inv`.
    """
    if w.dim() != 2:
        raise ValueError(f"quantize_blocks expects a 2-D weight, got shape {tuple(w.shape)}")
    n, k = w.shape
    nb, kb = ceil_div(n, block), ceil_div(k, block)
    wf = F.pad(w.float(), (0, kb * block - k, 0, nb * block - n))  # [nb*block, kb*block]
    blocks = wf.view(nb, block, kb, block)
    s = scale_from_amax(blocks.abs().amax(dim=(1, 3)), pow2)  # [nb, kb]
    q = cast_to_fp8(blocks / s[:, None, :, None]).view(nb * block, kb * block)[:n, :k]
    return q, s


def expand_block_scale(s: torch.Tensor, shape: tuple[int, int], block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Per-element view of a block scale: s[ceil(N/b), ceil(K/b)] -> [N, K]."""
    n, k = shape
    return s.repeat_interleave(block, dim=0)[:n].repeat_interleave(block, dim=1)[:, :k]


def dequantize_blocks(q: torch.Tensor, s: torch.Tensor, block: int = DEFAULT_BLOCK) -> torch.Tensor:
    """Inverse of `quantize_blocks` (and the DeepSeek-V3 checkpoint rule `W = W_q * scale_inv[n//b, k//b]`)."""
    return q.float() * expand_block_scale(s, tuple(q.shape), block)


def infer_block_size(weight_shape: tuple[int, int], scale_shape: tuple[int, int]) -> int:
    """The block size that maps a weight onto its scale grid (for checkpoints without `weight_block_size`).

    Tries the usual powers of two largest first; raises ValueError when none fits.
    """
    n, k = weight_shape
    for b in (128, 256, 64, 32, 16, 512, 8, 4, 2, 1):
        if (ceil_div(n, b), ceil_div(k, b)) == tuple(scale_shape):
            return b
    raise ValueError(f"no block size maps weight {tuple(weight_shape)} onto scale grid {tuple(scale_shape)}")
