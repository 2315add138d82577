"""RoPE on interleaved pairs and YaRN, against closed forms and the complex-number reference."""

import math

import torch

from r1lab.model import ModelConfig
from r1lab.model.rope import (
    apply_rope,
    rope_cos_sin,
    rope_inv_freq,
    yarn_correction_range,
)


def complex_reference(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """DeepSeek's `apply_rotary_emb`: view pairs as complex numbers and multiply by e^{i·pos·θ}."""
    angles = positions[0, :, None].double() * inv_freq.double()
    freqs = torch.polar(torch.ones_like(angles), angles)
    xc = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)))
    return torch.view_as_real(xc * freqs.to(torch.complex128)[None, :, None]).flatten(-2)


def test_interleaved_rope_equals_complex_pair_reference():
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("tiny")
    inv_freq = rope_inv_freq(cfg)
    positions = torch.arange(0, 40, dtype=torch.long).unsqueeze(0) * 3
    x = torch.randn(1, 40, 4, cfg.qk_rope_head_dim)
    cos, sin = rope_cos_sin(inv_freq, positions)
    got = apply_rope(x, cos, sin)
    want = complex_reference(x, positions.double(), inv_freq.double())
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(1)
    cfg = ModelConfig.from_preset("tiny")
    inv_freq = rope_inv_freq(cfg)
    q, k = torch.randn(1, 1, cfg.qk_rope_head_dim), torch.randn(1, 1, cfg.qk_rope_head_dim)

    def score(pq, pk):
        cq, sq = rope_cos_sin(inv_freq, torch.tensor([[pq]]))
        ck, sk = rope_cos_sin(inv_freq, torch.tensor([[pk]]))
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    assert torch.allclose(score(7, 3), score(107, 103), atol=1e-4)


def test_hf_half_split_layout_is_a_permutation_of_interleaved():
    """transformers de-interleaves (evens first, then odds): same dot products between rotated q and k."""
    torch.manual_seed(2)
    cfg = ModelConfig.from_preset("tiny")
    inv_freq = rope_inv_freq(cfg)
    pos = torch.arange(9).unsqueeze(0)
    cos, sin = rope_cos_sin(inv_freq, pos)
    q, k = torch.randn(1, 9, cfg.qk_rope_head_dim), torch.randn(1, 9, cfg.qk_rope_head_dim)

    def hf(x):
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    perm = torch.cat([torch.arange(0, cfg.qk_rope_head_dim, 2), torch.arange(1, cfg.qk_rope_head_dim, 2)])
    assert torch.allclose(apply_rope(q, cos, sin)[..., perm], hf(q), atol=1e-6)
    assert torch.allclose(apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).mT, hf(q) @ hf(k).mT, atol=1e-5)


def test_yarn_correction_range_for_v3_is_10_to_23():
    assert yarn_correction_range(64, 10000.0, 4096, 32.0, 1.0) == (10, 23)


def test_yarn_keeps_high_frequencies_and_divides_low_ones():
    cfg = ModelConfig.from_preset("deepseek-v3")
    plain = rope_inv_freq(cfg.replace(rope_yarn=False))
    yarn = rope_inv_freq(cfg)
    assert torch.allclose(yarn[:10], plain[:10])  # j < low: extrapolated (kept)
    assert torch.allclose(yarn[23:], plain[23:] / 40.0)  # j >= high: interpolated (divided by s)
    assert torch.all(yarn[10:23] <= plain[10:23]) and torch.all(yarn[10:23] >= plain[10:23] / 40.0)


def test_v3_softmax_scale_includes_mscale_squared():
    cfg = ModelConfig.from_preset("deepseek-v3")
    mscale = 0.1 * math.log(40.0) + 1.0
    assert math.isclose(cfg.softmax_scale, 192**-0.5 * mscale**2)
    assert math.isclose(cfg.softmax_scale / 192**-0.5, 1.874, rel_tol=1e-3)
    assert ModelConfig.from_preset("tiny").softmax_scale == 48**-0.5  # YaRN off: plain 1/sqrt(d_qk)
