"""Tiny-preset training step time, and grouped expert GEMMs against the per-expert loop oracle, side by side.

Run: `.venv/bin/python benchmarks/bench_model.py` (no arguments). Prints measured seconds and ratios, then
`RESULT model_tiny_fwd_bwd_s <s>` (batch 32 x 128 tokens, main + MTP + balance losses) and
`RESULT model_tiny_fwd_bwd_cpu_s <s>` (process CPU time of the same step),
`RESULT model_grouped_experts_speedup <x>` (loop oracle time / grouped time, forward+backward of one MoE layer).
Needs: the base install only (`make setup`; no extra).
"""

from __future__ import annotations

import time

import torch

from r1lab.model import ModelConfig, Transformer
from r1lab.model import linear as linear_mod


def timed(fn, repeats: int = 3) -> float:
    """Best wall-clock seconds of `repeats` calls after one warm-up."""
    return timed_both(fn, repeats)[0]


def timed_both(fn, repeats: int = 3) -> tuple[float, float]:
    """Best (wall, process CPU) seconds; CPU time is less sensitive to other jobs on a shared machine."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny")
    model = Transformer(config).train()
    ids = torch.randint(0, config.vocab_size, (32, 128))

    def step():
        model.zero_grad(set_to_none=True)
        model(ids, labels=ids).loss.backward()

    step_s, step_cpu = timed_both(step)
    moe = model.model.layers[1].mlp
    x = torch.randn(32, 128, config.dim)

    def moe_step():
        moe.zero_grad(set_to_none=True)
        moe(x)[0].square().mean().backward()

    grouped_s = timed(moe_step)
    original = linear_mod._grouped_mm_supported
    linear_mod._grouped_mm_supported = lambda *a: False  # force the per-expert loop oracle
    try:
        loop_s = timed(moe_step)
    finally:
        linear_mod._grouped_mm_supported = original
    print(f"threads {torch.get_num_threads()}")
    print(f"tiny fwd+bwd, 32x128 tokens:       {step_s:.3f} s wall, {step_cpu:.3f} s CPU "
          f"({32 * 128 / step_s:,.0f} tokens/s)")
    print(f"one MoE layer fwd+bwd, grouped:    {grouped_s:.4f} s")
    print(f"one MoE layer fwd+bwd, expert loop: {loop_s:.4f} s  (loop / grouped = {loop_s / grouped_s:.2f}x)")
    print(f"RESULT model_tiny_fwd_bwd_s {step_s:.4f}")
    print(f"RESULT model_tiny_fwd_bwd_cpu_s {step_cpu:.4f}")
    print(f"RESULT model_grouped_experts_speedup {loop_s / grouped_s:.3f}")


if __name__ == "__main__":
    main()
