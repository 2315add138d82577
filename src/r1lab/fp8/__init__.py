"""Block-wise FP8 (E4M3) the DeepSeek-V3 way: quantisers, block-scaled GEMM, `Fp8Linear`, FP8 checkpoints.

- `quant`: 1x128 tile / 128x128 block quantisers and dequantisers (`weight_scale_inv` convention).
- `gemm`: block-scaled GEMM with per-128-K-block FP32 promotion; exact CPU emulation and `torch._scaled_mm`.
- `linear`: `Fp8Linear` / `fp8_linear` / `fp8_grouped_mm` (Fprop, Dgrad, Wgrad all in FP8; FP32 master weights).
- `policy`: which modules run in FP8 and which checkpoint tensors are stored in FP8.
- `checkpoint`: quantise / dequantise state dicts and checkpoint directories (`r1lab convert`).
"""

from r1lab.fp8.checkpoint import (
    convert_checkpoint,
    dequantize_state_dict,
    quantization_config,
    quantize_state_dict,
    save_pretrained_fp8,
)
from r1lab.fp8.gemm import emulated_scaled_mm, scaled_mm, scaled_mm_available
from r1lab.fp8.linear import Fp8Linear, Fp8Recipe, fp8_grouped_mm, fp8_linear
from r1lab.fp8.policy import enable_fp8, recipe_from_config, uses_fp8
from r1lab.fp8.quant import (
    AMAX_FLOOR,
    DEFAULT_BLOCK,
    E4M3_MAX,
    FP8_DTYPE,
    dequantize_blocks,
    dequantize_tiles,
    quantize_blocks,
    quantize_column_tiles,
    quantize_tiles,
    scale_from_amax,
)

__all__ = [
    "convert_checkpoint",
    "dequantize_state_dict",
    "enable_fp8",
    "quantization_config",
    "quantize_column_tiles",
    "quantize_state_dict",
    "recipe_from_config",
    "save_pretrained_fp8",
    "uses_fp8",
    "AMAX_FLOOR",
    "DEFAULT_BLOCK",
    "E4M3_MAX",
    "FP8_DTYPE",
    "Fp8Linear",
    "Fp8Recipe",
    "dequantize_blocks",
    "dequantize_tiles",
    "emulated_scaled_mm",
    "fp8_grouped_mm",
    "fp8_linear",
    "quantize_blocks",
    "quantize_tiles",
    "scale_from_amax",
    "scaled_mm",
    "scaled_mm_available",
]
