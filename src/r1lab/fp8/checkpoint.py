"""FP8 checkpoints in the published DeepSeek-V3 layout, and conversion between FP8 and BF16 directories.

An FP8 checkpoint stores each projection weight (`r1lab.fp8.policy.is_fp8_checkpoint_key`) as
`X.weight` float8_e4m3fn [N, K] plus `X.weight_scale_inv` fp32 [ceil(N/b), ceil(K/b)]; every other
floating tensor in BF16 except the router (`mlp.gate.weight`) and its balance bias, which stay FP32;
`config.json` gains `quantization_config = {quant_method: fp8, fmt: e4m3, activation_scheme: dynamic,
weight_block_size: [b, b]}` (plus `scale_fmt: ue8m0` for power-of-two scales, as in DeepSeek-V3.1).

Loading is key-driven: any `X.weight_scale_inv` marks `X.weight` as quantised, so Hub checkpoints and
r1lab ones read the same way (`r1lab.model.hf.load_pretrained` dequantises on load).
Conversion streams shard by shard and writes the destination atomically.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import torch

from r1lab.atomic import atomic_directory, atomic_write_json
from r1lab.checkpoint_files import (
    CONFIG_NAME,
    INDEX_NAME,
    read_config_json,
    read_safetensors,
    weight_files,
)
from r1lab.errors import CheckpointError
from r1lab.fp8.policy import is_fp8_checkpoint_key
from r1lab.fp8.quant import (
    DEFAULT_BLOCK,
    FP8_DTYPE,
    dequantize_blocks,
    infer_block_size,
    quantize_blocks,
)

SCALE_SUFFIX = "_scale_inv"  # "X.weight" + SCALE_SUFFIX
KEEP_FP32 = ("mlp.gate.weight", "e_score_correction_bias")  # router logits are computed in fp32
FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
TARGETS = ("fp8", "bf16")


def quantization_config(block: int = DEFAULT_BLOCK, pow2: bool = False) -> dict[str, Any]:
    """The `config.json` entry of DeepSeek-V3's FP8 release (transformers reads it as fine-grained FP8)."""
    cfg: dict[str, Any] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                           "weight_block_size": [block, block]}
    if pow2:
        cfg["scale_fmt"] = "ue8m0"
    return cfg


def _cast_plain(key: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if t.dtype in FLOAT_DTYPES and not key.endswith(KEEP_FP32):
        return t.to(dtype)
    return t


def quantize_state_dict(
    tensors: dict[str, torch.Tensor], block: int = DEFAULT_BLOCK, pow2: bool = False, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.Tensor]:
    """HF-layout tensors -> FP8 layout: projection weights to E4M3 + `weight_scale_inv`, the rest to `dtype`.

    Tensors that are already FP8 (with their scale) are dequantised first, so re-quantising is allowed.
    """
    plain = dequantize_state_dict(tensors, dtype=torch.float32, only_quantised=True)
    out: dict[str, torch.Tensor] = {}
    for key, t in plain.items():
        if is_fp8_checkpoint_key(key) and t.dim() == 2 and t.dtype in FLOAT_DTYPES:
            out[key], out[key + SCALE_SUFFIX] = quantize_blocks(t, block, pow2)
        else:
            out[key] = _cast_plain(key, t, dtype)
    return out


def dequantize_state_dict(
    tensors: dict[str, torch.Tensor],
    block: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
    only_quantised: bool = False,
) -> dict[str, torch.Tensor]:
    """FP8 layout -> plain tensors: every `X.weight` with `X.weight_scale_inv` dequantised to `dtype`.

    `block` defaults to what maps each weight onto its scale grid. Other floating tensors are cast to
    `dtype` too (router kept fp32) unless `only_quantised`.
    """
    out: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if key.endswith(SCALE_SUFFIX):
            if key[: -len(SCALE_SUFFIX)] not in tensors:
                raise CheckpointError(f"{key}: scale without its weight '{key[: -len(SCALE_SUFFIX)]}'")
            continue
        scale = tensors.get(key + SCALE_SUFFIX)
        if scale is not None:
            out[key] = _dequantize_one(key, t, scale, block).to(dtype)
        elif t.dtype == FP8_DTYPE:
            raise CheckpointError(f"{key}: float8 weight without '{key + SCALE_SUFFIX}'")
        else:
            out[key] = t if only_quantised else _cast_plain(key, t, dtype)
    return out


def _dequantize_one(key: str, w: torch.Tensor, scale: torch.Tensor, block: int | None) -> torch.Tensor:
    if w.dim() != 2 or scale.dim() != 2:
        raise CheckpointError(f"{key}: FP8 weight and scale must be 2-D, got {list(w.shape)} and {list(scale.shape)}")
    try:
        b = block or infer_block_size(tuple(w.shape), tuple(scale.shape))
    except ValueError as e:
        raise CheckpointError(f"{key}{SCALE_SUFFIX}: {e}") from None
    grid = (-(-w.shape[0] // b), -(-w.shape[1] // b))
    if tuple(scale.shape) != grid:
        raise CheckpointError(f"{key}{SCALE_SUFFIX}: expected shape {list(grid)} for block {b}, got {list(scale.shape)}")
    return dequantize_blocks(w, scale.float(), b)


# ------------------------------------------------------------------------------------------------ directories
def convert_checkpoint(
    src: str | Path, dst: str | Path, to: str, *, block: int = DEFAULT_BLOCK, pow2: bool = False
) -> dict[str, int]:
    """Rewrite checkpoint directory `src` as an FP8 (`to="fp8"`) or BF16 (`to="bf16"`) one at `dst`.

    Shards keep their names (one shard in memory at a time); other top-level files (tokenizer, generation
    config) are copied; sub-directories such as `trainer_state/` are not, since they describe the source
    weights. `dst` appears complete or not at all. Returns byte counts of the weights before and after.
    """
    src, dst = Path(src), Path(dst)
    if to not in TARGETS:
        raise CheckpointError(f"convert --to {to!r}: expected one of {', '.join(TARGETS)}")
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"{dst}: destination must differ from the source directory")
    config = read_config_json(src)[1]
    old_q = config.get("quantization_config") or {}
    src_block = (old_q.get("weight_block_size") or [None])[0] if old_q.get("quant_method") == "fp8" else None
    files = weight_files(src)
    bytes_in = bytes_out = 0
    weight_map: dict[str, str] = {}
    with atomic_directory(dst) as tmp:
        from safetensors.torch import save_file  # paid where used (CLI start-up)

        for name in files:
            tensors = read_safetensors(src / name)
            bytes_in += _nbytes(tensors.values())
            if to == "fp8":
                new = quantize_state_dict(dequantize_state_dict(tensors, src_block, torch.float32, True), block, pow2)
            else:
                new = dequantize_state_dict(tensors, src_block, torch.bfloat16)
            new = {k: v.contiguous() for k, v in new.items()}
            save_file(new, str(tmp / name), metadata={"format": "pt"})
            bytes_out += _nbytes(new.values())
            weight_map.update({k: name for k in new})
        if (src / INDEX_NAME).is_file():
            atomic_write_json(tmp / INDEX_NAME, {"metadata": {"total_size": bytes_out}, "weight_map": weight_map})
        config.pop("quantization_config", None)
        if to == "fp8":
            config["quantization_config"] = quantization_config(block, pow2)
        config["dtype"] = "bfloat16"  # of the unquantised tensors, as in the published FP8 config
        if "torch_dtype" in config:  # older transformers spelling
            config["torch_dtype"] = "bfloat16"
        atomic_write_json(tmp / CONFIG_NAME, config)
        for extra in src.iterdir():
            if extra.is_file() and extra.name not in (CONFIG_NAME, INDEX_NAME) and extra.suffix != ".safetensors":
                shutil.copy2(extra, tmp / extra.name)
    return {"bytes_in": bytes_in, "bytes_out": bytes_out}


def save_pretrained_fp8(model, path: str | Path, *, block: int | None = None, pow2: bool | None = None) -> dict[str, int]:
    """`model.save_pretrained` in the FP8 layout (block and scale format default to the model's config)."""
    cfg = model.config
    block = block or getattr(cfg, "fp8_block_size", DEFAULT_BLOCK)
    pow2 = getattr(cfg, "fp8_pow2_scales", False) if pow2 is None else pow2
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.hp-", dir=path.parent) as tmp:
        model.save_pretrained(Path(tmp) / "hp")
        return convert_checkpoint(Path(tmp) / "hp", path, "fp8", block=block, pow2=pow2)


def _nbytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def checkpoint_bytes(path: str | Path) -> int:
    """Bytes of the weight files of a checkpoint directory (what a user downloads, headers included)."""
    path = Path(path)
    return sum((path / name).stat().st_size for name in weight_files(path))


def stored_bytes(shapes: dict[str, tuple[int, ...]], target: str, block: int = DEFAULT_BLOCK) -> int:
    """Bytes of the tensors with these HF keys/shapes as `convert_checkpoint` stores them, without allocating:
    target "fp32" (all 4 bytes), "bf16" (2 bytes, router fp32) or "fp8" (E4M3 + fp32 scales for projection
    weights, the rest as in bf16). Used to size checkpoints too large to build (the 671B preset)."""
    if target not in ("fp32", *TARGETS):
        raise ValueError(f"target must be fp32, fp8 or bf16, got {target!r}")
    total = 0
    for key, shape in shapes.items():
        numel = 1
        for d in shape:
            numel *= d
        if target == "fp32" or key.endswith(KEEP_FP32):
            total += 4 * numel
        elif target == "fp8" and is_fp8_checkpoint_key(key) and len(shape) == 2:
            total += numel + 4 * (-(-shape[0] // block)) * (-(-shape[1] // block))
        else:
            total += 2 * numel
    return total
