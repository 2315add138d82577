"""Block-scaled FP8 GEMM: `C = A · Bᵀ` with A, B quantised along the shared K dimension.

    C[m, n] = Σ_kb (A_q[m, kb] · B_q[n, kb]) · sA[m, kb] · sB[n, kb]

Each 128-wide K block is multiplied on its own and its partial sum is promoted to an FP32 accumulator
with the two scales applied — the V3 promotion scheme (§3.3.2). Two implementations:

- `emulated_scaled_mm`: exact CPU emulation (FP8 values cast back to FP32, per-block FP32 products) —
  the reference and the GPU oracle;
- `cuda_scaled_mm`: `torch._scaled_mm` with DeepSeek block scales (SM90, CUDA >= 12.9), used only after
  `scaled_mm_available` has checked it against the emulation on that device.

Scale layouts: `sa[M, ceil(K/b)]` (1 x b tiles); `sb` either `[N, ceil(K/b)]` (1 x b tiles, Wgrad) or
`[ceil(N/b), ceil(K/b)]` (b x b weight blocks, Fprop / Dgrad).
"""

from __future__ import annotations

import warnings

import torch

from r1lab.fp8.quant import FP8_DTYPE, ceil_div, quantize_blocks, quantize_tiles


def _row_scales(s: torch.Tensor, rows: int, block: int) -> torch.Tensor:
    """Scale per row: [rows, kb] as given, or expand a block grid [ceil(rows/b), kb] to [rows, kb]."""
    if s.shape[0] == rows:
        return s
    if s.shape[0] == ceil_div(rows, block):
        return s.repeat_interleave(block, dim=0)[:rows]
    raise ValueError(f"scale with {s.shape[0]} rows fits neither {rows} rows nor their {block}-row blocks")


@torch.no_grad()
def emulated_scaled_mm(
    a_q: torch.Tensor, sa: torch.Tensor, b_q: torch.Tensor, sb: torch.Tensor, block: int
) -> torch.Tensor:
    """a_q[M, K] fp8, sa[M, kb]; b_q[N, K] fp8, sb[N or ceil(N/b), kb] -> fp32 C[M, N].

    One FP32 GEMM per K block on the exact FP8 values (strided views, no copies), then the block's partial
    sums are scaled by sa ⊗ sb and added to the accumulator. The loop runs over K blocks, never over rows.
    Not differentiable (quantisation has no useful derivative): `Fp8Linear` defines the backward GEMMs.
    """
    m, k = a_q.shape
    n = b_q.shape[0]
    a = a_q.float()  # [M, K], exact
    b = b_q.float()  # [N, K], exact
    sa = sa.float()
    sb = _row_scales(sb.float(), n, block)  # [N, kb]
    out = torch.zeros(m, n, dtype=torch.float32, device=a_q.device)
    partial = torch.empty_like(out)
    for kb, k0 in enumerate(range(0, k, block)):
        torch.mm(a[:, k0 : k0 + block], b[:, k0 : k0 + block].t(), out=partial)  # FP32 within the block
        partial.mul_(sa[:, kb : kb + 1])
        out.addcmul_(partial, sb[:, kb].unsqueeze(0))  # promotion: scaled partial sum into the accumulator
    return out


# ---------------------------------------------------------------------------------------------------
# GPU path: torch._scaled_mm with DeepSeek block scales (1x128 · 128x128 and 1x128 · 1x128).


def cuda_scaled_mm(
    a_q: torch.Tensor, sa: torch.Tensor, b_q: torch.Tensor, sb: torch.Tensor, block: int
) -> torch.Tensor:
    """Same contract as `emulated_scaled_mm`, on cuBLAS. Needs block == 128 and K, N multiples of 16.

    Layouts follow PyTorch's blockwise tests: A row-major, B column-major (`b_q.t()`), the A scale
    outer-dim-major (stride (1, M)), a 128x128 B scale as the transpose of a contiguous [N/128, K/128],
    a 1x128 B scale as a contiguous [K/128, N]. cuBLAS only emits bf16 for block scaling.
    """
    if block != 128:
        raise ValueError("torch._scaled_mm block scaling is defined for 128-wide blocks only")
    n = b_q.shape[0]
    scale_a = sa.float().t().contiguous().t()  # [M, kb], stride (1, M)
    if sb.shape[0] == n:  # N >= 16 > ceil(N/128), so the two layouts cannot be confused
        scale_b = sb.float().t().contiguous()  # 1x128: [kb, N] contiguous
    else:
        scale_b = sb.float().contiguous().t()  # 128x128: [kb, N/128], stride (1, kb)
    out = torch._scaled_mm(
        a_q.contiguous(), b_q.contiguous().t(), scale_a, scale_b, out_dtype=torch.bfloat16, use_fast_accum=False
    )
    return out.float()


_PROBE_RESULTS: dict[tuple[str, int], bool] = {}


def scaled_mm_available(device: torch.device) -> bool:
    """True when `cuda_scaled_mm` runs on `device` and agrees with the emulation (checked once per device).

    Block-scaled `_scaled_mm` needs SM90 and CUDA >= 12.9, and its scale layouts have changed between
    releases (a silent-wrong-result bug was fixed in PyTorch PR #166752), so capability alone is not
    trusted: a small probe of both recipes must match the emulation, otherwise we warn and emulate.
    """
    if device.type != "cuda" or not torch.cuda.is_available() or not hasattr(torch, "_scaled_mm"):
        return False
    key = (device.type, device.index if device.index is not None else torch.cuda.current_device())
    if key not in _PROBE_RESULTS:
        _PROBE_RESULTS[key] = _probe(device)
    return _PROBE_RESULTS[key]


def _probe(device: torch.device) -> bool:
    if torch.cuda.get_device_capability(device) < (9, 0):
        return False
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(256, 384, generator=gen).to(device)
    w = torch.randn(256, 384, generator=gen).to(device)
    try:
        a_q, sa = quantize_tiles(a)
        w_q, sw = quantize_blocks(w)
        t_q, st = quantize_tiles(w)  # 1x128 B operand (the Wgrad recipe)
        for b_q, sb in ((w_q, sw), (t_q, st)):
            got = cuda_scaled_mm(a_q, sa, b_q, sb, 128)
            want = emulated_scaled_mm(a_q, sa, b_q, sb, 128)
            rel = (got - want).norm() / want.norm()
            if not torch.isfinite(rel) or rel > 1e-2:
                warnings.warn(f"torch._scaled_mm block scaling disagrees with the FP8 emulation (rel {rel:.3g}); emulating")
                return False
    except (RuntimeError, TypeError, ValueError) as e:
        warnings.warn(f"torch._scaled_mm block scaling unavailable ({str(e).splitlines()[0]}); emulating")
        return False
    return True


def scaled_mm(
    a_q: torch.Tensor, sa: torch.Tensor, b_q: torch.Tensor, sb: torch.Tensor, block: int, backend: str = "auto"
) -> torch.Tensor:
    """Dispatch: "emulate" always emulates; "auto" uses cuBLAS when the probe passed and shapes allow it;
    "scaled_mm" insists on cuBLAS (errors propagate). Returns fp32 [M, N]."""
    if a_q.dtype != FP8_DTYPE or b_q.dtype != FP8_DTYPE:
        raise TypeError(f"scaled_mm operands must be {FP8_DTYPE}, got {a_q.dtype} and {b_q.dtype}")
    if backend == "scaled_mm":
        return cuda_scaled_mm(a_q, sa, b_q, sb, block)
    if backend == "auto" and block == 128 and a_q.shape[1] % 128 == 0 and b_q.shape[0] % 16 == 0:
        if scaled_mm_available(a_q.device):
            return cuda_scaled_mm(a_q, sa, b_q, sb, block)
    if backend not in ("auto", "emulate", "scaled_mm"):
        raise ValueError(f"unknown FP8 GEMM backend {backend!r} (expected auto, emulate or scaled_mm)")
    return emulated_scaled_mm(a_q, sa, b_q, sb, block)
