"""Linear layers prepacked for the CPU's GEMM library.

At decode batch sizes (a few to a few dozen rows) `F.linear` (MKL's sgemm, which re-packs the weight on
every call) is 2-3.5x slower on this project's 2-core AMD CPU than oneDNN's prepacked linear (measured on
SmolLM2's projections at 16 rows; Inductor's own CPU GEMM templates were slower than oneDNN too). Falls
back to `F.linear` where oneDNN is unavailable (GPU, unusual dtypes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def parameter_signature(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter is replaced or updated in place by autograd-visible ops (which bump
    `_version`). Fused optimizer kernels (torch's fused AdamW) update in place without bumping it, so a trainer
    says so explicitly: `Sampler.sync_weights()` re-packs unconditionally."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def _onednn_usable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


def pack_linears(model: torch.nn.Module) -> list[tuple[torch.nn.Linear, "PackedLinear"]]:
    """Every plain `nn.Linear` of `model` whose weight oneDNN can pack, with its packed copy."""
    with torch.no_grad():
        return [(m, PackedLinear(m.weight, m.bias)) for m in model.modules()
                if type(m) is torch.nn.Linear and _onednn_usable(m.weight)]


class PackedLinear:
    """y = x @ W.T + b with W [N, K] packed once; inference only (no autograd)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, *, prepack: bool = True):
        self.out_features, self.in_features = weight.shape
        self.bias = bias.detach() if bias is not None else None
        self.packed = None
        if prepack and _onednn_usable(weight):
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
            except RuntimeError:
                self.packed = None
        self.weight = None if self.packed is not None else weight.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """residual + x @ W.T + b, the add fused into the GEMM when both are in the weight's dtype."""
        if self.packed is not None and residual.dtype == x.dtype:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.packed, self.bias, "add")
        return residual + self(x)
