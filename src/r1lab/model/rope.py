"""Rotary position embedding on interleaved pairs, with YaRN frequency scaling.

DeepSeek's checkpoints rotate pairs `(x_{2j}, x_{2j+1})` by `pos·θ_j`, `θ_j = theta^(-2j/d_R)` (the reference views
the last dim as complex numbers). Hugging Face keeps the same weights and de-interleaves at run time (its output
puts rotated evens first, then odds — a fixed permutation applied to q and k alike, so scores are identical).

YaRN (`config.rope_yarn`) divides low-frequency dims by `rope_factor` and keeps high-frequency dims, with a linear
ramp between `low = floor(corr(beta_fast))` and `high = ceil(corr(beta_slow))`.
"""

from __future__ import annotations

import math

import torch

from r1lab.model.config import ModelConfig


def yarn_correction_range(dim: int, theta: float, original_seq_len: int, beta_fast: float,
                          beta_slow: float) -> tuple[int, int]:
    """`(low, high)` dims of the YaRN ramp, clamped to `[0, dim-1]` (V3: 10, 23)."""

    def corr(rotations: float) -> float:
        return dim * math.log(original_seq_len / (2 * math.pi * rotations)) / (2 * math.log(theta))

    low = math.floor(corr(beta_fast))
    high = math.ceil(corr(beta_slow))
    return max(low, 0), min(high, dim - 1)


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Per-pair angular frequency `[d_R/2]` (fp32), YaRN-scaled when `config.rope_yarn`."""
    d = config.qk_rope_head_dim
    freqs = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    if config.rope_yarn and config.rope_factor > 1.0:
        low, high = yarn_correction_range(d, config.rope_theta, config.original_seq_len, config.beta_fast,
                                          config.beta_slow)
        span = max(high - low, 1e-3)
        ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / span).clamp(0, 1)
        freqs = freqs / config.rope_factor * ramp + freqs * (1 - ramp)
    return freqs.float()


def rope_attention_factor(config: ModelConfig) -> float:
    """HF's cos/sin multiplier `mscale(mscale)/mscale(mscale_all_dim)`; 1 for every DeepSeek checkpoint."""
    return config.mscale(config.rope_mscale) / config.mscale(config.rope_mscale_all_dim)


def rope_cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor, factor: float = 1.0):
    """cos, sin `[*positions.shape, d_R/2]` in fp32 for integer `positions`."""
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq.to(positions.device)
    cos, sin = angles.cos(), angles.sin()
    if factor != 1.0:
        cos, sin = cos * factor, sin * factor
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of `x [B, S, ..., d_R]` by `cos/sin [B, S, d_R/2]` (broadcast over heads); fp32 math."""
    while cos.dim() < x.dim():
        cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    pairs = x.float().unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return out.flatten(-2).to(x.dtype)
