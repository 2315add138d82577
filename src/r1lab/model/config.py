"""`ModelConfig`: every shape and switch of an r1lab DeepSeek-V3 model, with presets.

Field names follow the DeepSeek reference `ModelArgs` (`dim`, `n_layers`, `n_dense_layers`, ...); `r1lab.model.hf`
maps them to Hugging Face `DeepseekV3Config` names. Presets (docs/V3.md §1):

- `tiny`: CPU-sized, every feature on (MLA with q-LoRA, 8 routed + 1 shared expert, 2 expert groups, MTP depth 1).
  Its `vocab_size` is meant to be overridden by the pipeline's own tokenizer size.
- `small`: a GPU-sized model (~293M total parameters).
- `deepseek-v3`: the real 671B shape, for accounting (`r1lab model-info`) only.

`ModelConfig.from_preset(name, **overrides)`, `to_dict()` / `from_dict()`; `validate()` raises `ConfigError` with one
line naming the offending field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from r1lab.errors import ConfigError
from r1lab.fp8.policy import (
    validate_fp8_fields,  # the rules for the fp8_* fields live with FP8
)

PRECISIONS = ("fp32", "bf16", "fp8")
SCORE_FUNCS = ("sigmoid", "softmax")


@dataclass
class ModelConfig:
    # embedding / trunk
    vocab_size: int = 512
    dim: int = 256
    n_layers: int = 4
    n_dense_layers: int = 1  # the first layers use a dense SwiGLU instead of MoE
    inter_dim: int = 512  # dense SwiGLU width
    rms_norm_eps: float = 1e-6
    # Multi-head Latent Attention
    n_heads: int = 4
    q_lora_rank: int = 128  # 0 = plain query projection (HF q_lora_rank=None)
    kv_lora_rank: int = 128
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 16
    v_head_dim: int = 32
    # RoPE / YaRN (YaRN is an explicit switch, never inferred from max_seq_len)
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    rope_yarn: bool = False
    rope_factor: float = 1.0  # YaRN s
    original_seq_len: int = 256  # YaRN L_orig
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    rope_mscale: float = 1.0  # reference `mscale`; HF `rope_scaling.mscale`
    rope_mscale_all_dim: float = 1.0  # HF `mscale_all_dim`; equal to rope_mscale in DeepSeek's checkpoints
    # DeepSeekMoE
    moe_inter_dim: int = 128
    n_routed_experts: int = 8
    n_shared_experts: int = 1
    n_activated_experts: int = 2
    n_expert_groups: int = 2
    n_limited_groups: int = 1
    score_func: str = "sigmoid"
    route_scale: float = 1.0
    norm_topk_prob: bool = True
    balance_bias: bool = True  # aux-loss-free bias (used for selection only)
    balance_alpha: float = 1e-4  # sequence-wise balance loss weight (0 disables)
    # Multi-Token Prediction
    mtp_depth: int = 1
    mtp_lambda: float = 0.3
    # tokens / init / numerics
    pad_token_id: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    init_std: float = 0.02
    precision: str = "fp32"  # "fp32" | "bf16" | "fp8" (fp8: linear layers built by r1lab.model.fp8)
    fp8_block_size: int = 128
    fp8_exclude_layers: list[int] = field(default_factory=list)  # layer indices kept in high precision
    # FP8 policy (r1lab.fp8.policy): module groups in FP8 (attn, mlp, shared, experts, mtp), UE8M0 scales, GEMM backend
    fp8_modules: list[str] = field(default_factory=lambda: ["attn", "mlp", "shared", "experts"])
    fp8_pow2_scales: bool = False
    fp8_backend: str = "auto"  # auto | emulate | scaled_mm

    # ----- derived -----
    @property
    def qk_head_dim(self) -> int:
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers

    def mscale(self, value: float | None = None) -> float:
        """YaRN attention temperature `0.1·m·ln(s) + 1` (1 when YaRN is off or s <= 1)."""
        m = self.rope_mscale if value is None else value
        if not self.rope_yarn or self.rope_factor <= 1.0:
            return 1.0
        return 0.1 * m * math.log(self.rope_factor) + 1.0

    @property
    def softmax_scale(self) -> float:
        """`(d_h + d_h^R)^-1/2 · mscale²`, the same for the naive and the absorbed form."""
        return self.qk_head_dim**-0.5 * self.mscale(self.rope_mscale_all_dim) ** 2

    # ----- construction -----
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        if name not in PRESETS:
            raise ConfigError(f"model preset {name!r}: unknown (choose from {', '.join(PRESETS)})")
        data = dict(PRESETS[name])
        data.update(overrides)
        return cls.from_dict(data, source=f"preset {name!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown key '{unknown[0]}'")
        cfg = cls(**data)
        cfg.validate(source)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "ModelConfig":
        return ModelConfig.from_dict({**self.to_dict(), **changes})

    def validate(self, source: str = "model config") -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{source}: key '{key}': {why} (got {getattr(self, key)!r})")

        for key in ("vocab_size", "dim", "n_layers", "inter_dim", "n_heads", "kv_lora_rank", "qk_nope_head_dim",
                    "qk_rope_head_dim", "v_head_dim", "max_seq_len", "moe_inter_dim", "fp8_block_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise bad(key, "must be a positive integer")
        for key in ("n_dense_layers", "q_lora_rank", "n_shared_experts", "mtp_depth", "pad_token_id"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(key, "must be a non-negative integer")
        if self.n_dense_layers > self.n_layers:
            raise bad("n_dense_layers", f"must be <= n_layers={self.n_layers}")
        if self.qk_rope_head_dim % 2:
            raise bad("qk_rope_head_dim", "must be even (RoPE rotates pairs)")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        fp8_problem = validate_fp8_fields(self)
        if fp8_problem:
            raise ConfigError(f"{source}: {fp8_problem}")
        if self.score_func not in SCORE_FUNCS:
            raise bad("score_func", f"must be one of {', '.join(SCORE_FUNCS)}")
        if self.pad_token_id >= self.vocab_size:
            raise bad("pad_token_id", f"must be < vocab_size={self.vocab_size}")
        if self.n_moe_layers > 0 or self.mtp_depth > 0:
            if self.n_routed_experts <= 0:
                raise bad("n_routed_experts", "must be positive")
            if not 0 < self.n_activated_experts <= self.n_routed_experts:
                raise bad("n_activated_experts", f"must be in 1..n_routed_experts={self.n_routed_experts}")
            if self.n_expert_groups <= 0 or self.n_routed_experts % self.n_expert_groups:
                raise bad("n_expert_groups", f"must divide n_routed_experts={self.n_routed_experts}")
            if self.n_expert_groups > 1 and self.n_routed_experts // self.n_expert_groups < 2:
                raise bad("n_expert_groups", "needs >= 2 experts per group (group score = top-2 sum)")
            if not 0 < self.n_limited_groups <= self.n_expert_groups:
                raise bad("n_limited_groups", f"must be in 1..n_expert_groups={self.n_expert_groups}")
            per_group = self.n_routed_experts // self.n_expert_groups
            if self.n_limited_groups * per_group < self.n_activated_experts:
                raise bad("n_limited_groups", "kept groups hold fewer experts than n_activated_experts")
        if self.rope_yarn and self.rope_factor < 1.0:
            raise bad("rope_factor", "must be >= 1 with rope_yarn")


_TINY: dict[str, Any] = dict(
    vocab_size=512, dim=256, n_layers=4, n_dense_layers=1, inter_dim=512, moe_inter_dim=128, n_heads=4,
    q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
    n_routed_experts=8, n_shared_experts=1, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1,
    score_func="sigmoid", route_scale=1.0, max_seq_len=256, original_seq_len=256, rope_theta=10000.0,
    mtp_depth=1, mtp_lambda=0.3, balance_alpha=1e-4, init_std=0.02,
)

_SMALL: dict[str, Any] = dict(
    vocab_size=32768, dim=768, n_layers=12, n_dense_layers=1, inter_dim=2048, moe_inter_dim=256, n_heads=12,
    q_lora_rank=384, kv_lora_rank=256, qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64,
    n_routed_experts=32, n_shared_experts=1, n_activated_experts=4, n_expert_groups=4, n_limited_groups=2,
    score_func="sigmoid", route_scale=1.0, max_seq_len=2048, original_seq_len=2048, rope_theta=10000.0,
    mtp_depth=1, mtp_lambda=0.3, balance_alpha=1e-4, init_std=0.02,
)

# configs/config_671B.json of deepseek-ai/DeepSeek-V3 (YaRN s=40 from a 4K original context).
_DEEPSEEK_V3: dict[str, Any] = dict(
    vocab_size=129280, dim=7168, n_layers=61, n_dense_layers=3, inter_dim=18432, moe_inter_dim=2048, n_heads=128,
    q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
    n_routed_experts=256, n_shared_experts=1, n_activated_experts=8, n_expert_groups=8, n_limited_groups=4,
    score_func="sigmoid", route_scale=2.5, max_seq_len=163840, original_seq_len=4096, rope_theta=10000.0,
    rope_yarn=True, rope_factor=40.0, beta_fast=32.0, beta_slow=1.0, rope_mscale=1.0, rope_mscale_all_dim=1.0,
    mtp_depth=1, mtp_lambda=0.3, balance_alpha=1e-4, init_std=0.006, bos_token_id=0, eos_token_id=1,
    pad_token_id=1,
)

PRESETS: dict[str, dict[str, Any]] = {"tiny": _TINY, "small": _SMALL, "deepseek-v3": _DEEPSEEK_V3}
