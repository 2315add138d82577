"""Hugging Face DeepSeek-V3 checkpoint interop: `load_pretrained(dir)` and `save_pretrained(model, dir)`.

Layout on disk: `config.json` (`model_type: deepseek_v3`) + `model.safetensors` or shards with
`model.safetensors.index.json`. Routed experts are written per expert (`mlp.experts.{e}.{gate,up,down}_proj.weight`,
as on the Hub); loading accepts those or the fused v5 layout (`mlp.experts.gate_up_proj [E,2I,D]`, gate rows first;
`mlp.experts.down_proj [E,D,I]`). MTP module k lives at `model.layers.{n_layers+k-1}` with its on-disk copies of
`embed_tokens` and `shared_head.head` (dropped on load: r1lab shares them). FP8 weights with `weight_scale_inv`
are dequantised on load (block size from `quantization_config.weight_block_size`). The full r1lab `ModelConfig` is
kept under the `r1lab` key of config.json so training-only fields (MTP λ, balance α, precision) survive a round trip.

Where transformers 5.x deviates from the DeepSeek reference, r1lab follows the reference:
- group-limited routing: transformers' `DeepseekV3TopkRouter` masks dropped groups with 0.0, the reference with
  -inf. They differ only when a kept expert's biased score `s + b` is negative (possible with sigmoid scores and a
  negative bias); parity tests keep |b| small.
- transformers always scores with sigmoid (`scoring_func` is ignored); r1lab honours `score_func: softmax`.
- RoPE: transformers de-interleaves pairs at run time (evens then odds). That permutes q and k identically, so
  attention scores, and therefore logits, are the same; r1lab rotates interleaved pairs natively.
- transformers ignores MTP weights (`model.layers.61.*` hard-coded); for other depths they show up as unexpected
  keys in its load report — harmless.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from r1lab.atomic import atomic_directory, atomic_write_json
from r1lab.checkpoint_files import (
    CONFIG_NAME,
    INDEX_NAME,
    WEIGHTS_NAME,
    read_config_json,
    read_weights,
)
from r1lab.errors import CheckpointError, ConfigError
from r1lab.fp8.checkpoint import SCALE_SUFFIX, dequantize_state_dict
from r1lab.model.config import ModelConfig

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_EXPERT_KEY = re.compile(r"^(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")


# ----------------------------------------------------------------------------------------------------- config
def to_hf_config(c: ModelConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": c.rope_theta}
    if c.rope_yarn:
        rope = {"rope_type": "yarn", "rope_theta": c.rope_theta, "factor": c.rope_factor,
                "original_max_position_embeddings": c.original_seq_len, "beta_fast": c.beta_fast,
                "beta_slow": c.beta_slow, "mscale": c.rope_mscale, "mscale_all_dim": c.rope_mscale_all_dim}
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "vocab_size": c.vocab_size, "hidden_size": c.dim, "intermediate_size": c.inter_dim,
        "moe_intermediate_size": c.moe_inter_dim, "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads, "num_key_value_heads": c.n_heads,
        "n_shared_experts": c.n_shared_experts, "n_routed_experts": c.n_routed_experts,
        "num_experts_per_tok": c.n_activated_experts, "n_group": c.n_expert_groups, "topk_group": c.n_limited_groups,
        "routed_scaling_factor": c.route_scale, "norm_topk_prob": c.norm_topk_prob, "scoring_func": c.score_func,
        "topk_method": "noaux_tc", "first_k_dense_replace": c.n_dense_layers,
        "kv_lora_rank": c.kv_lora_rank, "q_lora_rank": c.q_lora_rank or None,
        "qk_rope_head_dim": c.qk_rope_head_dim, "qk_nope_head_dim": c.qk_nope_head_dim, "v_head_dim": c.v_head_dim,
        "hidden_act": "silu", "max_position_embeddings": c.max_seq_len, "initializer_range": c.init_std,
        "rms_norm_eps": c.rms_norm_eps, "pad_token_id": c.pad_token_id, "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id, "tie_word_embeddings": False, "rope_parameters": rope,
        "rope_interleave": True, "attention_bias": False, "attention_dropout": 0.0,
        "num_nextn_predict_layers": c.mtp_depth, "dtype": str(dtype).removeprefix("torch."), "use_cache": True,
        "r1lab": c.to_dict(),
    }


def _need(d: dict, key: str, source: str):
    if key not in d:
        raise CheckpointError(f"{source}: missing key '{key}'")
    return d[key]


# The Hugging Face fields that fix a DeepSeek-V3's shapes and routing: transformers reads these, r1lab reads its
# own section, so a checkpoint where they disagree would be two different models to the two libraries.
_STRUCTURAL_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "moe_intermediate_size", "num_hidden_layers",
    "num_attention_heads", "n_shared_experts", "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group",
    "first_k_dense_replace", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
    "num_nextn_predict_layers", "max_position_embeddings",
)


def _check_agrees(d: dict[str, Any], config: ModelConfig, source: str) -> None:
    """The HF fields of config.json must say what its `r1lab` section says (CheckpointError naming the key)."""
    mirror = to_hf_config(config)
    for key in _STRUCTURAL_KEYS:
        if key in d and d[key] != mirror[key]:
            raise CheckpointError(f"{source}: '{key}' is {d[key]!r} but the r1lab section gives {mirror[key]!r}; "
                                  f"the file contradicts itself (edit both, or re-save the model)")


def from_hf_config(d: dict[str, Any], source: str = CONFIG_NAME) -> ModelConfig:
    """ModelConfig from a Hugging Face DeepSeek-V3 config dict (the `r1lab` section wins when present)."""
    if isinstance(d.get("r1lab"), dict):
        try:
            config = ModelConfig.from_dict(d["r1lab"], source=f"{source}: r1lab")
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        _check_agrees(d, config, source)
        return config
    model_type = d.get("model_type")
    if model_type not in ("deepseek_v3", "deepseek_v2", None):
        raise CheckpointError(f"{source}: model_type {model_type!r} is not deepseek_v3")
    if d.get("attention_bias"):
        raise CheckpointError(f"{source}: attention_bias=true is not supported (DeepSeek-V3 has no biases)")
    if d.get("hidden_act", "silu") != "silu":
        raise CheckpointError(f"{source}: hidden_act {d['hidden_act']!r} is not supported (expected 'silu')")
    if not d.get("rope_interleave", True):
        raise CheckpointError(f"{source}: rope_interleave=false (half-split RoPE weights) is not supported")
    heads = _need(d, "num_attention_heads", source)
    if d.get("num_key_value_heads") not in (None, heads):
        raise CheckpointError(f"{source}: num_key_value_heads must equal num_attention_heads={heads}")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "yarn"):
        raise CheckpointError(f"{source}: rope type {rope_type!r} is not supported (default or yarn)")
    theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
    max_pos = d.get("max_position_embeddings", 4096)
    fields: dict[str, Any] = dict(
        vocab_size=_need(d, "vocab_size", source), dim=_need(d, "hidden_size", source),
        n_layers=_need(d, "num_hidden_layers", source), n_dense_layers=d.get("first_k_dense_replace") or 0,
        inter_dim=_need(d, "intermediate_size", source), moe_inter_dim=d.get("moe_intermediate_size", 1),
        n_heads=heads, q_lora_rank=d.get("q_lora_rank") or 0, kv_lora_rank=_need(d, "kv_lora_rank", source),
        qk_nope_head_dim=_need(d, "qk_nope_head_dim", source), qk_rope_head_dim=_need(d, "qk_rope_head_dim", source),
        v_head_dim=_need(d, "v_head_dim", source), n_routed_experts=d.get("n_routed_experts") or 1,
        n_shared_experts=d.get("n_shared_experts") or 0, n_activated_experts=d.get("num_experts_per_tok") or 1,
        n_expert_groups=d.get("n_group") or 1, n_limited_groups=d.get("topk_group") or 1,
        score_func=d.get("scoring_func", "sigmoid"), route_scale=float(d.get("routed_scaling_factor", 1.0)),
        norm_topk_prob=bool(d.get("norm_topk_prob", True)), rms_norm_eps=d.get("rms_norm_eps", 1e-6),
        max_seq_len=max_pos, rope_theta=float(theta), init_std=d.get("initializer_range", 0.02),
        mtp_depth=d.get("num_nextn_predict_layers", d.get("num_mtp_layers", 0)) or 0,
        pad_token_id=d.get("pad_token_id") if isinstance(d.get("pad_token_id"), int) else 0,
        bos_token_id=d.get("bos_token_id") if isinstance(d.get("bos_token_id"), int) else None,
        eos_token_id=d.get("eos_token_id") if isinstance(d.get("eos_token_id"), int) else None,
    )
    if rope_type == "yarn":
        factor = rope.get("factor") or max_pos / rope["original_max_position_embeddings"]
        mscale, mscale_all_dim = rope.get("mscale"), rope.get("mscale_all_dim")
        if not (mscale and mscale_all_dim):  # transformers then scales cos/sin by mscale(factor, 1) only
            mscale, mscale_all_dim = 1.0, 0.0
        fields.update(rope_yarn=True, rope_factor=float(factor),
                      original_seq_len=int(_need(rope, "original_max_position_embeddings", source)),
                      beta_fast=float(rope.get("beta_fast") or 32), beta_slow=float(rope.get("beta_slow") or 1),
                      rope_mscale=float(mscale), rope_mscale_all_dim=float(mscale_all_dim))
    if fields["pad_token_id"] >= fields["vocab_size"]:
        fields["pad_token_id"] = 0
    try:
        return ModelConfig.from_dict(fields, source=source)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


# ----------------------------------------------------------------------------------------------------- tensors
def _fuse_experts(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-expert keys -> stacked `gate_up_proj [E,2I,D]` / `down_proj [E,D,I]`; other keys pass through."""
    out: dict[str, torch.Tensor] = {}
    experts: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for key, t in tensors.items():
        m = _EXPERT_KEY.match(key)
        if m:
            experts.setdefault(m.group(1), {}).setdefault(m.group(3), {})[int(m.group(2))] = t
        else:
            out[key] = t
    for prefix, projs in experts.items():
        for proj in ("gate_proj", "up_proj", "down_proj"):
            if proj not in projs:
                raise CheckpointError(f"missing key '{prefix}.0.{proj}.weight'")
        n = max(max(p) for p in projs.values()) + 1
        for proj, by_e in projs.items():
            for e in range(n):
                if e not in by_e:
                    raise CheckpointError(f"missing key '{prefix}.{e}.{proj}.weight'")
            shapes = {tuple(t.shape) for t in by_e.values()}
            if len(shapes) > 1:
                raise CheckpointError(f"{prefix}.*.{proj}.weight: experts have different shapes {sorted(shapes)}")
        gate = torch.stack([projs["gate_proj"][e] for e in range(n)])
        up = torch.stack([projs["up_proj"][e] for e in range(n)])
        if gate.shape != up.shape:
            raise CheckpointError(f"{prefix}.0.up_proj.weight: expected shape {list(gate.shape[1:])}, "
                                  f"got {list(up.shape[1:])}")
        out[f"{prefix}.gate_up_proj"] = torch.cat([gate, up], dim=1)
        out[f"{prefix}.down_proj"] = torch.stack([projs["down_proj"][e] for e in range(n)])
    return out


def _split_experts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        if key.endswith(".mlp.experts.gate_up_proj"):
            prefix = key[: -len(".gate_up_proj")]
            gate, up = t.chunk(2, dim=1)
            for e in range(t.shape[0]):
                out[f"{prefix}.{e}.gate_proj.weight"] = gate[e]
                out[f"{prefix}.{e}.up_proj.weight"] = up[e]
        elif key.endswith(".mlp.experts.down_proj"):
            prefix = key[: -len(".down_proj")]
            for e in range(t.shape[0]):
                out[f"{prefix}.{e}.down_proj.weight"] = t[e]
        else:
            out[key] = t
    return out


def _mtp_layers_present(tensors: dict[str, torch.Tensor], n_layers: int) -> int:
    k = 0
    while f"model.layers.{n_layers + k}.eh_proj.weight" in tensors:
        k += 1
    return k


# ----------------------------------------------------------------------------------------------------- load/save
def checkpoint_config(path: str | Path) -> ModelConfig:
    """The `ModelConfig` of a Hugging Face or r1lab DeepSeek-V3 checkpoint directory."""
    cfg_file, raw = read_config_json(path)
    return from_hf_config(raw, source=str(cfg_file))


def load_pretrained(model_cls: type, path: str | Path, *, dtype: torch.dtype | None = None,
                    device: str | torch.device = "cpu", config_overrides: dict[str, Any] | None = None):
    """Build a `model_cls` (r1lab's `Transformer`) from a Hugging Face or r1lab DeepSeek-V3 directory; bad
    checkpoints -> CheckpointError. The class is passed in so that this module never imports the model's."""
    path = Path(path)
    cfg_file, raw = read_config_json(path)
    config = from_hf_config(raw, source=str(cfg_file))
    tensors = read_weights(path)
    if any(k.endswith(SCALE_SUFFIX) for k in tensors):  # an FP8 checkpoint: fp32 weights, other tensors as stored
        block = (raw.get("quantization_config") or {}).get("weight_block_size")
        tensors = dequantize_state_dict(tensors, int(block[0]) if block else None, torch.float32, only_quantised=True)
    mtp = _mtp_layers_present(tensors, config.n_layers)
    changes = dict(config_overrides or {})
    if mtp != config.mtp_depth:
        changes["mtp_depth"] = mtp
    if changes:
        try:
            config = config.replace(**changes)
        except ConfigError as e:
            raise CheckpointError(f"{cfg_file}: {e}") from None
    for k in range(config.mtp_depth):  # on-disk copies of the shared embedding and head
        tensors.pop(f"model.layers.{config.n_layers + k}.embed_tokens.weight", None)
        tensors.pop(f"model.layers.{config.n_layers + k}.shared_head.head.weight", None)
    tensors = _fuse_experts(tensors)
    tensors = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}

    with torch.device("meta"):  # shapes only: the weights come from the checkpoint, no random init
        model = model_cls(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise CheckpointError(f"{path}: missing key '{missing[0]}' (expected shape {list(expected[missing[0]].shape)})"
                              + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    unexpected = [k for k in tensors if k not in expected]
    if unexpected:
        raise CheckpointError(f"{path}: unexpected key '{unexpected[0]}' (shape {list(tensors[unexpected[0]].shape)})"
                              + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    for key, ref in expected.items():
        t = tensors[key]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{path}: key '{key}': expected shape {list(ref.shape)}, got {list(t.shape)}")
        if t.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{path}: key '{key}': unsupported dtype {str(t.dtype).removeprefix('torch.')} "
                                  "(expected float32, bfloat16 or float16)")
    model.load_state_dict({k: tensors[k].to(expected[k].dtype) for k in expected}, strict=True, assign=True)
    model.init_runtime_buffers()
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if still_meta:  # a module with state outside its state dict (none today): build it for real instead
        model = model_cls(config)
        model.load_state_dict({k: tensors[k] for k in expected}, strict=True)
    if dtype is not None:
        cast_model(model, dtype)
    return model.to(device)


def cast_model(model, dtype: torch.dtype):
    """Cast parameters to `dtype` but keep the router weight and balance bias in fp32 (as HF and V3 do)."""
    for name, module in model.named_modules():
        for pname, p in list(module.named_parameters(recurse=False)):
            if not (name.endswith("mlp.gate") and pname == "weight"):
                p.data = p.data.to(dtype)
    return model


def save_pretrained(model, path: str | Path, *, dtype: torch.dtype | None = None,
                    max_shard_bytes: int = 5 * 2**30) -> None:
    """Write an HF DeepSeek-V3 directory atomically: per-expert keys, MTP copies of embedding/head, config.json.

    Weights larger than `max_shard_bytes` are split into `model-0000i-of-0000n.safetensors` plus an index.
    """
    from safetensors.torch import save_file  # paid where used (CLI start-up)

    config: ModelConfig = model.config
    state = {k: v.detach() for k, v in model.state_dict().items()}
    for k in range(config.mtp_depth):
        state[f"model.layers.{config.n_layers + k}.embed_tokens.weight"] = state["model.embed_tokens.weight"]
        state[f"model.layers.{config.n_layers + k}.shared_head.head.weight"] = state["lm_head.weight"]
    state = _split_experts(state)
    keep_fp32 = ("e_score_correction_bias", "mlp.gate.weight")
    tensors = {}
    for key, t in state.items():
        if dtype is not None and not key.endswith(keep_fp32):
            t = t.to(dtype)
        tensors[key] = t.to("cpu").contiguous().clone()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = t
        size += nbytes
    weight_dtype = dtype or model.lm_head.weight.dtype
    with atomic_directory(path) as tmp:
        atomic_write_json(tmp / CONFIG_NAME, to_hf_config(config, weight_dtype))
        if len(shards) == 1:
            save_file(shards[0], str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        else:
            weight_map = {}
            for i, shard in enumerate(shards, start=1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(tmp / name), metadata={"format": "pt"})
                weight_map.update({k: name for k in shard})
            total = sum(t.numel() * t.element_size() for t in tensors.values())
            atomic_write_json(tmp / INDEX_NAME, {"metadata": {"total_size": total}, "weight_map": weight_map})
