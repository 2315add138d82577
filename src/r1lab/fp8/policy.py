"""Which parts of a DeepSeek-V3 model run (and are stored) in FP8, and which stay in high precision.

V3 §3.3.1: the GEMMs of the attention projections and of the FFN / expert projections run in FP8; the
embedding, the output head, the MoE router (gate), the normalisations and the attention core
(softmax(QKᵀ)V) stay in BF16/FP32, as do master weights, gradients and optimizer state.

Compute policy (model config): `precision: fp8` switches it on; `fp8_modules` picks module groups
(`attn`, `mlp` = dense FFN, `shared` = shared experts, `experts` = routed experts, `mtp` = MTP's `eh_proj`);
`fp8_exclude_layers` keeps whole layers in high precision. Roles are the names `r1lab.model.linear` gives
each projection (`attn.q_a_proj`, `mlp.gate_proj`, `shared.down_proj`, `experts`, `mtp.eh_proj`, ...).

Storage policy (checkpoints): every projection weight of those groups, as in the published DeepSeek-V3
FP8 checkpoints (MTP's `eh_proj` included); embeddings, heads, router and norms stay BF16.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from r1lab.fp8.linear import Fp8Linear, Fp8Recipe

FP8_MODULE_GROUPS = ("attn", "mlp", "shared", "experts", "mtp")
DEFAULT_FP8_MODULES = ("attn", "mlp", "shared", "experts")  # eh_proj computes in high precision by default
HIGH_PRECISION_MODULES = ("embedding", "output head", "router (MoE gate)", "norms", "attention softmax")

_PROJ = r"(?:gate_proj|up_proj|down_proj)"
_CHECKPOINT_FP8_KEY = re.compile(
    r"(?:^|\.)(?:"
    r"self_attn\.(?:q_a_proj|q_b_proj|q_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
    rf"|mlp\.{_PROJ}|mlp\.shared_experts\.{_PROJ}|mlp\.experts\.\d+\.{_PROJ}"
    r"|eh_proj"
    r")\.weight$"
)


def role_group(role: str) -> str:
    """`attn.q_a_proj` -> `attn`; `experts` -> `experts`."""
    return role.split(".", 1)[0]


def uses_fp8(config: Any, layer: int | None, role: str) -> bool:
    """Whether the projection `role` of `layer` computes in FP8 under `config` (a ModelConfig or alike)."""
    if getattr(config, "precision", "fp32") != "fp8":
        return False
    if role_group(role) not in getattr(config, "fp8_modules", DEFAULT_FP8_MODULES):
        return False
    return layer is None or layer not in getattr(config, "fp8_exclude_layers", ())


def recipe_from_config(config: Any) -> Fp8Recipe:
    """The quantisation recipe a model config asks for (block edge, UE8M0 scales, GEMM backend)."""
    return Fp8Recipe(
        block_size=getattr(config, "fp8_block_size", 128),
        pow2_scales=getattr(config, "fp8_pow2_scales", False),
        backend=getattr(config, "fp8_backend", "auto"),
    )


def validate_fp8_fields(config: Any) -> str | None:
    """Why the FP8 fields of a config are invalid (one line), or None when they are fine."""
    unknown = [m for m in getattr(config, "fp8_modules", ()) if m not in FP8_MODULE_GROUPS]
    if unknown:
        return f"fp8_modules: unknown group {unknown[0]!r} (choose from {', '.join(FP8_MODULE_GROUPS)})"
    try:
        recipe_from_config(config)
    except ValueError as e:
        return str(e)
    return None


def is_fp8_checkpoint_key(key: str) -> bool:
    """Whether a Hugging Face DeepSeek-V3 state-dict key is stored as FP8 + `weight_scale_inv`."""
    return bool(_CHECKPOINT_FP8_KEY.search(key))


_MODULE_ROLE = re.compile(
    r"^model\.layers\.(\d+)\.(?:self_attn\.(q_a_proj|q_b_proj|q_proj|kv_a_proj_with_mqa|kv_b_proj|o_proj)"
    rf"|mlp\.({_PROJ})|mlp\.shared_experts\.({_PROJ})|(eh_proj))$"
)


def module_role(name: str) -> tuple[int, str] | None:
    """(layer, role) of an r1lab Transformer projection from its module name, None for anything else."""
    m = _MODULE_ROLE.match(name)
    if not m:
        return None
    layer = int(m.group(1))
    if m.group(2):
        return layer, f"attn.{m.group(2)}"
    if m.group(3):
        return layer, f"mlp.{m.group(3)}"
    if m.group(4):
        return layer, f"shared.{m.group(4)}"
    return layer, "mtp.eh_proj"


def enable_fp8(model, **fp8_fields: Any) -> int:
    """Switch an already-built r1lab Transformer (e.g. loaded from an FP32/BF16 checkpoint) to FP8 compute.

    Sets `model.config.precision = "fp8"` (plus any `fp8_*` fields given), which routed experts read at call
    time, and swaps each projection the policy selects for an `Fp8Linear` sharing its parameters, so the
    optimizer, state dict and checkpoints are unchanged. Returns how many modules were swapped.
    """
    config = model.config
    for key, value in {"precision": "fp8", **fp8_fields}.items():
        setattr(config, key, value)
    config.validate()
    recipe = recipe_from_config(config)
    swapped = 0
    for name, module in list(model.named_modules()):
        role = module_role(name)
        if role is None or type(module) is not torch.nn.Linear or not uses_fp8(config, *role):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Fp8Linear.from_linear(module, recipe))
        swapped += 1
    return swapped
