"""The one place that creates the projection layers of attention and FFNs, and multiplies stacked expert weights.

Why: FP8 (V3 §3.3) swaps the GEMMs of attention and expert projections while the embedding, output head, router and
norms stay in high precision. Every such projection is built by `make_linear(...)` and every routed-expert GEMM goes
through `expert_matmul(...)`, so the precision policy lives here and nowhere else.

Contract for `r1lab.model.fp8` (used only when `config.precision == "fp8"` and the layer is not in
`config.fp8_exclude_layers`):
- `fp8.Fp8Linear(in_features, out_features, *, block_size)` — an `nn.Module` with a `.weight [out, in]` Parameter
  (fp32 master) whose forward is `x @ W^T` through FP8 emulation/kernels; optional `.effective_weight()` returning the
  weight the GEMM actually uses (the absorbed MLA form reads it).
- `fp8.fp8_grouped_mm(x [M, K], weight [E, N, K], offsets [E] int32 cumulative row ends, *, block_size) -> [M, N]`.

Roles passed to `make_linear` (for per-role policies): `attn.q_a_proj`, `attn.q_b_proj`, `attn.q_proj`,
`attn.kv_a_proj_with_mqa`, `attn.kv_b_proj`, `attn.o_proj`, `mlp.{gate,up,down}_proj` (dense),
`shared.{gate,up,down}_proj`, `mtp.eh_proj`.
"""

from __future__ import annotations

import torch
from torch import nn

from r1lab.fp8.policy import uses_fp8 as policy_uses_fp8
from r1lab.model import fp8
from r1lab.model.config import ModelConfig


def uses_fp8(config: ModelConfig, layer: int | None, role: str = "") -> bool:
    """precision == fp8, the role's group in `config.fp8_modules` (default: not `mtp`), layer not excluded."""
    return policy_uses_fp8(config, layer, role)


def make_linear(in_features: int, out_features: int, config: ModelConfig, *, role: str,
                layer: int | None = None) -> nn.Module:
    """A bias-free projection `[*, in] -> [*, out]` for `role` in `layer`, in the precision the config asks for."""
    if uses_fp8(config, layer, role):
        return fp8.Fp8Linear(in_features, out_features, block_size=config.fp8_block_size,
                             pow2_scales=config.fp8_pow2_scales, backend=config.fp8_backend)
    return nn.Linear(in_features, out_features, bias=False)


def effective_weight(linear: nn.Module) -> torch.Tensor:
    """The `[out, in]` weight a projection multiplies by (dequantised for FP8 layers)."""
    fn = getattr(linear, "effective_weight", None)
    return fn() if callable(fn) else linear.weight


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (`_grouped_mm` rejects expanded grads)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def _grouped_mm_supported(x: torch.Tensor, weight: torch.Tensor) -> bool:
    if not hasattr(torch, "_grouped_mm") or x.dtype != weight.dtype:
        return False
    align = 16 // x.element_size()
    if x.shape[-1] % align or weight.shape[1] % align:
        return False
    if x.device.type == "cpu":
        return x.dtype in (torch.float32, torch.bfloat16)
    if x.device.type == "cuda":
        return x.dtype == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (8, 0)
    return False


def grouped_mm_reference(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Oracle: a loop over experts (one host sync for the offsets). `x [M,K]`, `weight [E,N,K]` -> `[M,N]`."""
    ends = offsets.tolist()
    starts = [0] + ends[:-1]
    parts = [x[s:e] @ weight[i].t() for i, (s, e) in enumerate(zip(starts, ends))]
    return torch.cat(parts, dim=0) if parts else x.new_zeros(0, weight.shape[1])


def expert_matmul(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, config: ModelConfig,
                  layer: int | None = None) -> torch.Tensor:
    """Rows of `x [M, K]` sorted by expert times their expert's `weight [E, N, K]` -> `[M, N]`.

    `offsets [E]` (int32) are cumulative row ends: expert e owns rows `offsets[e-1]:offsets[e]`.
    """
    if uses_fp8(config, layer, "experts"):
        return fp8.fp8_grouped_mm(x, weight, offsets, block_size=config.fp8_block_size,
                                  pow2_scales=config.fp8_pow2_scales, backend=config.fp8_backend)
    if torch.is_autocast_enabled(x.device.type):  # behave like F.linear under autocast
        x = x.to(torch.get_autocast_dtype(x.device.type))
    weight = weight.to(x.dtype)
    if _grouped_mm_supported(x, weight):
        out = torch._grouped_mm(x, weight.transpose(-2, -1), offs=offsets)
        return _ContiguousGrad.apply(out)
    return grouped_mm_reference(x, weight, offsets)
