"""Analytic model accounting (nothing allocated): parameters, active parameters, FLOPs and KV-cache bytes per token.

The counts follow the module structure of `Transformer` exactly (tests compare them with `numel()` on the tiny and
small presets), so the 671B / 37B of the `deepseek-v3` preset come from the same formula. Buffers (the routing bias)
are not parameters. MTP modules are counted separately (`mtp_params`, shared embedding/head not included) and are not
part of `total_params` / `active_params`, matching how DeepSeek reports 671B (+14B of MTP on the Hub, whose copy of
embedding and head adds 2·V·D).
"""

from __future__ import annotations

from r1lab.model.config import ModelConfig


def attention_params(c: ModelConfig) -> int:
    H, qk = c.n_heads, c.qk_head_dim
    q = c.dim * c.q_lora_rank + c.q_lora_rank + c.q_lora_rank * H * qk if c.q_lora_rank else c.dim * H * qk
    kv = c.dim * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank
    kv += c.kv_lora_rank * H * (c.qk_nope_head_dim + c.v_head_dim)
    return q + kv + H * c.v_head_dim * c.dim


def dense_ffn_params(c: ModelConfig) -> int:
    return 3 * c.dim * c.inter_dim


def moe_params(c: ModelConfig, active: bool = False) -> int:
    experts = c.n_activated_experts if active else c.n_routed_experts
    return c.n_routed_experts * c.dim + 3 * c.dim * c.moe_inter_dim * (experts + c.n_shared_experts)


def block_params(c: ModelConfig, layer: int, active: bool = False) -> int:
    ffn = dense_ffn_params(c) if layer < c.n_dense_layers else moe_params(c, active)
    return 2 * c.dim + attention_params(c) + ffn


def mtp_module_params(c: ModelConfig, k: int = 1, active: bool = False) -> int:
    """One MTP module without the shared embedding/head: block + enorm + hnorm + eh_proj + shared_head.norm."""
    return block_params(c, c.n_layers + k - 1, active) + 3 * c.dim + 2 * c.dim * c.dim


def param_counts(c: ModelConfig) -> dict[str, int]:
    embed = c.vocab_size * c.dim
    total = 2 * embed + c.dim + sum(block_params(c, i) for i in range(c.n_layers))
    active = 2 * embed + c.dim + sum(block_params(c, i, active=True) for i in range(c.n_layers))
    mtp = sum(mtp_module_params(c, k) for k in range(1, c.mtp_depth + 1))
    mtp_active = sum(mtp_module_params(c, k, active=True) for k in range(1, c.mtp_depth + 1))
    return {"total_params": total, "active_params": active, "mtp_params": mtp, "mtp_active_params": mtp_active,
            "total_with_mtp": total + mtp, "embedding_params": embed}


def kv_cache_elements_per_token(c: ModelConfig) -> dict[str, int]:
    """Per token over the main layers: MLA `(d_c + d_R)·l`; MHA `2·H·d_h·l` (d_h = v_head_dim); naive MLA K+V."""
    l = c.n_layers
    return {"mla": (c.kv_lora_rank + c.qk_rope_head_dim) * l,
            "mha": 2 * c.n_heads * c.v_head_dim * l,
            "naive_kv": c.n_heads * (c.qk_head_dim + c.v_head_dim) * l}


def flops_per_token(c: ModelConfig, context: int) -> dict[str, float]:
    """Forward FLOPs per token: `2 × active matmul params` (embedding lookup excluded, head included) plus
    attention at the given context (`2·H·(d_qk + d_v)` per visible key, averaged over causal positions: (L+1)/2).
    Training ≈ 3 × forward (MTP excluded)."""
    counts = param_counts(c)
    norms = c.dim * (2 * c.n_layers + 1) + c.n_layers * (c.kv_lora_rank + (c.q_lora_rank or 0))
    matmul = counts["active_params"] - counts["embedding_params"] - norms
    attn = 2 * c.n_layers * c.n_heads * (c.qk_head_dim + c.v_head_dim) * (context + 1) / 2
    fwd = 2 * matmul + attn
    return {"forward_flops_per_token": float(fwd), "train_flops_per_token": float(3 * fwd),
            "attention_flops_per_token": float(attn), "context": context}


def model_stats(c: ModelConfig, *, context: int | None = None, dtype_bytes: int = 2) -> dict:
    """Everything `r1lab model-info` prints; KV bytes use `dtype_bytes` (2 = bf16)."""
    ctx = context or min(c.max_seq_len, 4096)
    kv = kv_cache_elements_per_token(c)
    stats: dict = dict(param_counts(c))
    stats.update(flops_per_token(c, ctx))
    stats.update({
        "kv_dtype_bytes": dtype_bytes,
        "kv_bytes_per_token_mla": kv["mla"] * dtype_bytes,
        "kv_bytes_per_token_mha": kv["mha"] * dtype_bytes,
        "kv_bytes_per_token_naive_mla": kv["naive_kv"] * dtype_bytes,
        "kv_mla_over_mha": kv["mla"] / kv["mha"],
    })
    return stats
