"""`Fp8Linear`: a drop-in `nn.Linear` whose three GEMMs run in block-scaled E4M3 (V3 §3.3, Fig. 6).

- Fprop  `y  = x · Wᵀ`   : x in 1x128 tiles, W in 128x128 blocks.
- Dgrad  `dx = dy · W`   : dy in 1x128 tiles, the same quantised W (128x128 blocks are transposition-invariant).
- Wgrad  `dW = dyᵀ · x`  : both re-tiled 128x1 (1x128 along the token dimension), x read back from the FP8
  copy cached by the forward pass, as V3 does to save activation memory.

The parameter itself stays a high-precision master weight (FP32 by default) and its gradient arrives in the
parameter's dtype, so optimizers and checkpoints see an ordinary Linear. Autocast is switched off inside
the GEMMs: the FP32 promotion is the point of the recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from r1lab.fp8.gemm import scaled_mm
from r1lab.fp8.quant import (
    DEFAULT_BLOCK,
    dequantize_blocks,
    dequantize_tiles,
    quantize_blocks,
    quantize_column_tiles,
    quantize_tiles,
)

BACKENDS = ("auto", "emulate", "scaled_mm")


@dataclass(frozen=True)
class Fp8Recipe:
    """How an FP8 GEMM quantises: block edge, power-of-two (UE8M0) scales, and which GEMM implementation."""

    block_size: int = DEFAULT_BLOCK
    pow2_scales: bool = False
    backend: str = "auto"  # auto: cuBLAS block-scaled GEMM where verified (SM90), else exact emulation

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"FP8 block_size must be positive, got {self.block_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"FP8 backend must be one of {BACKENDS}, got {self.backend!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _pad_rows(t: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero rows appended so the token dimension fills whole tiles (zeros add nothing to a contraction)."""
    extra = -t.shape[0] % multiple
    return F.pad(t, (0, 0, 0, extra)) if extra else t


class _Fp8LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, recipe: Fp8Recipe) -> torch.Tensor:
        # x[M, K], weight[N, K] -> y[M, N] in x.dtype
        b, p2 = recipe.block_size, recipe.pow2_scales
        with torch.autocast(device_type=x.device.type, enabled=False):
            x_q, x_s = quantize_tiles(x, b, p2)  # [M, K], [M, kb]
            w_q, w_s = quantize_blocks(weight, b, p2)  # [N, K], [nb, kb]
            y = scaled_mm(x_q, x_s, w_q, w_s, b, recipe.backend)
        ctx.save_for_backward(x_q, x_s, w_q, w_s)
        ctx.recipe = recipe
        ctx.x_dtype, ctx.w_dtype = x.dtype, weight.dtype
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x_q, x_s, w_q, w_s = ctx.saved_tensors
        recipe: Fp8Recipe = ctx.recipe
        b, p2 = recipe.block_size, recipe.pow2_scales
        grad_x = grad_w = None
        with torch.autocast(device_type=grad_y.device.type, enabled=False):
            g = grad_y.float()  # [M, N]
            if ctx.needs_input_grad[0]:
                g_q, g_s = quantize_tiles(g, b, p2)  # 1x128 along N
                grad_x = scaled_mm(g_q, g_s, w_q.t(), w_s.t(), b, recipe.backend).to(ctx.x_dtype)  # [M, K]
            if ctx.needs_input_grad[1]:
                x = dequantize_tiles(x_q, x_s, b)  # [M, K] from the cached FP8 copy
                gc_q, gc_s = quantize_column_tiles(_pad_rows(g, b), b, p2)  # [M', N], [mb, N]: 128x1 tiles of dy
                xc_q, xc_s = quantize_column_tiles(_pad_rows(x, b), b, p2)  # [M', K], [mb, K]: 128x1 tiles of x
                grad_w = scaled_mm(gc_q.t(), gc_s.t(), xc_q.t(), xc_s.t(), b, recipe.backend)  # [N, K]
                grad_w = grad_w.to(ctx.w_dtype)
        return grad_x, grad_w, None


def fp8_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, recipe: Fp8Recipe = Fp8Recipe()
) -> torch.Tensor:
    """`F.linear` with block-scaled FP8 GEMMs: x[..., K], weight[N, K] -> [..., N]; the bias is added in full precision."""
    lead = x.shape[:-1]
    y = _Fp8LinearFunction.apply(x.reshape(-1, x.shape[-1]), weight, recipe).reshape(*lead, weight.shape[0])
    return y + bias.to(y.dtype) if bias is not None else y


class Fp8Linear(nn.Linear):
    """`nn.Linear` with FP8 compute; same parameters, state-dict keys and initialisation as `nn.Linear`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        device=None,
        dtype=None,
        *,
        block_size: int = DEFAULT_BLOCK,
        pow2_scales: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.recipe = Fp8Recipe(block_size, pow2_scales, backend)

    @classmethod
    def from_linear(cls, linear: nn.Linear, recipe: Fp8Recipe = Fp8Recipe()) -> "Fp8Linear":
        """Wrap an existing Linear, sharing (not copying) its parameters."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.in_features, new.out_features = linear.in_features, linear.out_features
        new.weight = linear.weight
        new.bias = linear.bias
        new.recipe = recipe
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.bias, self.recipe)

    def effective_weight(self) -> torch.Tensor:
        """The weight the FP8 GEMM multiplies by (block-quantised then dequantised), for code that uses the
        matrix directly (MLA's absorbed form). Straight-through: gradients reach the master weight unchanged."""
        w = self.weight
        with torch.no_grad():
            w_q, w_s = quantize_blocks(w, self.recipe.block_size, self.recipe.pow2_scales)
            delta = dequantize_blocks(w_q, w_s, self.recipe.block_size).to(w.dtype) - w
        return w + delta

    def extra_repr(self) -> str:
        r = self.recipe
        return f"{super().extra_repr()}, fp8_block={r.block_size}, pow2_scales={r.pow2_scales}, backend={r.backend}"


def fp8_grouped_mm(
    x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, recipe: Fp8Recipe = Fp8Recipe()
) -> torch.Tensor:
    """Routed-expert GEMM in FP8: rows of x[M, K] sorted by expert times their expert's weight[E, N, K] -> [M, N].

    `offsets[E]` are cumulative row ends. Each expert's weight is its own set of 128x128 blocks and each
    expert's tokens form their own 128x1 tiles in Wgrad, as in a grouped FP8 kernel; a loop over experts
    (one host sync for the offsets) keeps the emulation simple.
    """
    ends = offsets.tolist()
    starts = [0] + ends[:-1]
    parts = [fp8_linear(x[s:e], weight[i], None, recipe) for i, (s, e) in enumerate(zip(starts, ends)) if e > s]
    return torch.cat(parts, dim=0) if parts else x.new_zeros(0, weight.shape[1])
