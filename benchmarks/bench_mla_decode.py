"""MLA decoding, absorbed vs naive: one decode step of one attention layer of DeepSeek-V3's shape
(`configs/paper.yaml`: 128 heads, latent 512 + rope 64), batch 8, at 1k and 8k tokens of context.

- naive: the per-head K [B,T,H,192] and V [B,T,H,128] cache a standard KV cache holds (what transformers does),
  one query token attending over it;
- absorbed: r1lab's `MLA.absorbed` over the compressed cache (latent [B,T,512] and rope key [B,T,64]), W_uk
  folded into the query and W_uv into the output.
Both get the same query and cache contents (the naive K/V are the latent expanded through `kv_b_proj`), and their
outputs are compared before timing. Timing: CUDA events, median of repeated steps, bf16.

Run on a CUDA machine: `.venv/bin/python benchmarks/bench_mla_decode.py` (no arguments). Without CUDA it runs a
reduced shape on the CPU (a correctness check of the same code; its times say nothing about a GPU) and prints
that it did. Ends with `RESULT mla_absorbed_vs_naive_decode_1k <ratio>` and `..._8k` (naive time / absorbed time).
Needs: the base install only (`make setup`; no extra); a CUDA build of torch for the real figures.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from r1lab.model import ModelConfig
from r1lab.model.attention import MLA
from r1lab.model.rope import rope_cos_sin, rope_inv_freq

BATCH = 8
CONTEXTS = {"1k": 1024, "8k": 8192}


def layer_and_inputs(cfg: ModelConfig, T: int, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """One MLA layer, a decode query at position T and a cache of T earlier tokens (latent and rope key)."""
    torch.manual_seed(seed)
    mla = MLA(cfg, layer=0).to(device=device, dtype=dtype).eval()
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(BATCH, 1, cfg.dim, device=device, dtype=dtype, generator=g)
    inv = rope_inv_freq(cfg).to(device)
    cos, sin = rope_cos_sin(inv, torch.full((BATCH, 1), T, device=device))
    with torch.no_grad():
        q_nope, q_pe = mla.queries(x, cos.to(dtype), sin.to(dtype))
        latent = torch.randn(BATCH, T, cfg.kv_lora_rank, device=device, dtype=dtype, generator=g)
        k_pe = torch.randn(BATCH, T, cfg.qk_rope_head_dim, device=device, dtype=dtype, generator=g)
    return mla, q_nope, q_pe, latent, k_pe


def naive_cache(mla: MLA, latent: torch.Tensor, k_pe: torch.Tensor):
    """The per-head K [B,H,T,nope+rope] and V [B,H,T,v] a standard cache would hold for the same tokens."""
    B, T = latent.shape[:2]
    with torch.no_grad():
        kv = mla.kv_b_proj(latent).unflatten(-1, (mla.n_heads, mla.nope + mla.v_dim))
        k_nope, v = kv.split([mla.nope, mla.v_dim], dim=-1)
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(B, T, mla.n_heads, mla.rope)], dim=-1)
    return k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()


def naive_step(mla: MLA, q_nope, q_pe, k, v) -> torch.Tensor:
    q = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # [B,H,1,192]
    o = F.scaled_dot_product_attention(q, k, v, scale=mla.scale)  # one query sees every cached token
    return o.transpose(1, 2)  # [B,1,H,v]


def absorbed_step(mla: MLA, q_nope, q_pe, latent, k_pe) -> torch.Tensor:
    mask = torch.ones(q_nope.shape[0], 1, latent.shape[1], dtype=torch.bool, device=latent.device)
    return mla.absorbed(q_nope, q_pe, latent, k_pe, mask)


def timed_ms(fn, device: torch.device, repeats: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        cfg, dtype, contexts, repeats = ModelConfig.from_preset("deepseek-v3"), torch.bfloat16, CONTEXTS, 50
        print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16, batch {BATCH}")
    else:  # a reduced shape: the same code paths, checked for agreement; the times are not GPU figures
        cfg = ModelConfig.from_preset("tiny")
        dtype, contexts, repeats = torch.float32, {"1k": 1024, "2k": 2048}, 5
        print("no CUDA: reduced shape (tiny preset, 1k and 2k context) on the CPU; these ratios are not GPU figures")
    worst = 0.0
    for label, T in contexts.items():
        mla, q_nope, q_pe, latent, k_pe = layer_and_inputs(cfg, T, device, dtype)
        k, v = naive_cache(mla, latent, k_pe)
        with torch.no_grad():
            a, b = absorbed_step(mla, q_nope, q_pe, latent, k_pe).float(), naive_step(mla, q_nope, q_pe, k, v).float()
        rel = float((a - b).abs().max() / b.abs().max())
        worst = max(worst, rel)
        t_naive = timed_ms(lambda: naive_step(mla, q_nope, q_pe, k, v), device, repeats)
        t_abs = timed_ms(lambda: absorbed_step(mla, q_nope, q_pe, latent, k_pe), device, repeats)
        cache_naive = (k.numel() + v.numel()) * k.element_size() / 2**20
        cache_abs = (latent.numel() + k_pe.numel()) * latent.element_size() / 2**20
        print(f"context {T:5d}: naive {t_naive:8.3f} ms ({cache_naive:8.1f} MiB cache)  absorbed {t_abs:8.3f} ms "
              f"({cache_abs:7.1f} MiB cache)  naive/absorbed {t_naive / t_abs:5.2f}  max rel diff {rel:.2e}")
        print(f"RESULT mla_absorbed_vs_naive_decode_{label} {t_naive / t_abs:.3f}")
        del mla, k, v, latent, k_pe
    tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-4
    print(f"RESULT mla_absorbed_vs_naive_max_rel_diff {worst:.3e}")
    if worst > tolerance:
        print(f"bench_mla_decode: absorbed and naive outputs differ by {worst:.2e} (> {tolerance})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
