"""GPU check of the block-scaled FP8 GEMM: `torch._scaled_mm` (cuBLAS, SM90) against the CPU emulation, and speed vs BF16.

Run on a CUDA machine: `.venv/bin/python benchmarks/gpu_fp8_check.py` (no arguments, ~1-2 minutes on one H100/H200).
Without a GPU, or on one older than SM90, it prints why and exits 0.

For a few GEMM shapes (M tokens, N outputs, K inputs) it quantises x [M,K] in 1x128 tiles and w [N,K] in 128x128
blocks on the GPU, then compares the cuBLAS product with `emulated_scaled_mm` run on the CPU copies of the same FP8
operands: largest absolute difference, largest difference relative to max|C|, and DeepGEMM's
`1 - 2Σxy/Σ(x²+y²)`. Both recipes are checked: Fprop/Dgrad (1x128 · 128x128) and Wgrad (1x128 · 1x128).
Speed: CUDA-event timing of the FP8 GEMM alone and with our (unfused, PyTorch-op) quantisation, against a BF16
`x @ w.T`, as ratios. Finally `Fp8Linear` forward+backward with backend "auto" is compared to backend "emulate".

Ends with `RESULT fp8_gpu_max_rel_diff <f>` (worst over shapes and recipes) and `RESULT fp8_gpu_gemm_speedup_vs_bf16 <f>`
(largest shape, GEMM only); exits 1 when a comparison fails its tolerance.
Needs: the base install with a CUDA build of torch, on a GPU machine (no extra).
"""

from __future__ import annotations

import sys

import torch

SHAPES = [(128, 256, 256), (1024, 2048, 1024), (4096, 4096, 4096), (4096, 7168, 2048), (8192, 2048, 7168)]
DIFF_TOLERANCE = 1e-4  # cuBLAS rounds C to bf16: expect ~1e-6; layout bugs give ~1


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_fp8_check: no CUDA GPU on this machine; nothing to check (the CPU emulation is tested by tests/fp8)")
        return 0
    dev = torch.device("cuda")
    cap = torch.cuda.get_device_capability(dev)
    print(f"device {torch.cuda.get_device_name(dev)} (SM{cap[0]}{cap[1]}), torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    if cap < (9, 0):
        print("gpu_fp8_check: block-scaled torch._scaled_mm needs SM90 (Hopper); skipping")
        return 0

    from r1lab.fp8.gemm import cuda_scaled_mm, emulated_scaled_mm, scaled_mm_available
    from r1lab.fp8.linear import Fp8Linear, Fp8Recipe
    from r1lab.fp8.quant import quantize_blocks, quantize_tiles

    print(f"scaled_mm_available (probe vs emulation): {scaled_mm_available(dev)}")
    failures, worst_rel, speedup = 0, 0.0, float("nan")
    gen = torch.Generator(device=dev).manual_seed(0)

    def timed_ms(fn, repeats: int = 20) -> float:
        for _ in range(3):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / repeats

    print(f"{'M':>6} {'N':>6} {'K':>6}  {'recipe':<14} {'max|diff|':>10} {'rel':>10} {'dg_diff':>10}  "
          f"{'bf16 ms':>8} {'fp8 ms':>8} {'+quant ms':>9}  {'fp8/bf16':>8} {'TFLOPS fp8':>10}")
    for m, n, k in SHAPES:
        x = torch.randn(m, k, device=dev, generator=gen, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=dev, generator=gen, dtype=torch.bfloat16)
        x_q, x_s = quantize_tiles(x)
        for recipe, (b_q, b_s) in (("1x128.128x128", quantize_blocks(w)), ("1x128.1x128", quantize_tiles(w))):
            try:
                got = cuda_scaled_mm(x_q, x_s, b_q, b_s, 128).cpu()
            except Exception as e:  # report and continue: the lead wants every shape's outcome
                print(f"{m:>6} {n:>6} {k:>6}  {recipe:<14} FAILED: {type(e).__name__}: {str(e).splitlines()[0]}")
                failures += 1
                continue
            want = emulated_scaled_mm(x_q.cpu(), x_s.cpu(), b_q.cpu(), b_s.cpu(), 128)
            max_abs = (got - want).abs().max().item()
            rel = max_abs / want.abs().max().item()
            dg = (1 - 2 * (got.double() * want.double()).sum() / (got.double() ** 2 + want.double() ** 2).sum()).item()
            worst_rel = max(worst_rel, rel)
            failures += dg > DIFF_TOLERANCE
            line = f"{m:>6} {n:>6} {k:>6}  {recipe:<14} {max_abs:>10.3e} {rel:>10.3e} {dg:>10.2e}"
            if recipe == "1x128.128x128":
                bf16_ms = timed_ms(lambda: x @ w.t())
                fp8_ms = timed_ms(lambda: cuda_scaled_mm(x_q, x_s, b_q, b_s, 128))
                full_ms = timed_ms(lambda: cuda_scaled_mm(*quantize_tiles(x), *quantize_blocks(w), 128))
                speedup = bf16_ms / fp8_ms
                tflops = 2 * m * n * k / fp8_ms / 1e9
                line += f"  {bf16_ms:>8.3f} {fp8_ms:>8.3f} {full_ms:>9.3f}  {speedup:>8.2f} {tflops:>10.1f}"
            print(line)

    # end to end: Fp8Linear on cuBLAS vs on the emulation, forward and both gradients
    torch.manual_seed(0)
    layer = Fp8Linear(2048, 1024).to(dev)
    x = torch.randn(512, 2048, device=dev, requires_grad=True)
    grads = {}
    for backend in ("auto", "emulate"):
        layer.recipe = Fp8Recipe(128, False, backend)
        x.grad, layer.weight.grad = None, None
        y = layer(x)
        y.backward(torch.ones_like(y))
        grads[backend] = (y.detach().float(), x.grad.clone(), layer.weight.grad.clone())
    for name, a, b in zip(("y", "dx", "dW"), grads["auto"], grads["emulate"]):
        rel = ((a - b).norm() / b.norm()).item()
        worst_rel = max(worst_rel, rel)
        failures += rel > 1e-2
        print(f"Fp8Linear auto vs emulate: {name} relative L2 difference {rel:.3e}")

    print(f"RESULT fp8_gpu_max_rel_diff {worst_rel:.6e}")
    print(f"RESULT fp8_gpu_gemm_speedup_vs_bf16 {speedup:.4f}")
    if failures:
        print(f"gpu_fp8_check: {failures} comparison(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
