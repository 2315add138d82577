"""Block-wise FP8 against FP32/BF16: checkpoint bytes, and tiny-model pretraining loss FP8 vs BF16.

Run: `.venv/bin/python benchmarks/bench_fp8.py` (no arguments; ~3-4 minutes, one torch thread). Writes
`bench_out/fp8/` (checkpoints, `fp8_vs_bf16_loss.png`) and prints, side by side:

1. Bytes. The tiny preset is saved in FP32, converted to BF16 and FP8 (`r1lab.fp8.checkpoint.convert_checkpoint`)
   and measured: the FP8-quantised weights with their `weight_scale_inv` against the same weights in FP32 / BF16,
   and the whole checkpoint files (embedding, head, router and norms stay high precision). The 671B preset is
   computed from its tensor shapes with `stored_bytes`, the same rule checked here against the tiny files.
2. Training. Tiny-preset pretraining on a synthetic corpus (topic-switching Markov chains), same seed, data
   order and steps, through the shared loop with BF16 autocast: FP32 master weights with BF16 GEMMs versus the
   FP8 policy (attention and FFN/expert projections in block-scaled E4M3). The final training loss is the main
   next-token loss of each run's final weights on the same 64 training rows (a paired measurement; the mean
   mini-batch loss of the last 10 steps is printed next to it); both curves go into one PNG.

Ends with `RESULT fp8_bytes_vs_fp32 <f>`, `RESULT fp8_bytes_vs_bf16 <f>`, `RESULT fp8_loss_rel_diff <f>`.
Needs: the base install only (`make setup`; no extra).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open

from r1lab.fp8.checkpoint import checkpoint_bytes, convert_checkpoint, stored_bytes
from r1lab.fp8.policy import is_fp8_checkpoint_key
from r1lab.fp8.quant import FP8_DTYPE
from r1lab.model import ModelConfig, Transformer

OUT = Path("bench_out/fp8")
STEPS = 200
BATCH = 8
SEQ_LEN = 64
THREADS = 1  # a numerics study: one thread keeps it fast on a shared machine (two oversubscribed threads spin)
LAST = 10  # steps averaged into the smoothed mini-batch loss (reported next to the evaluated one)
EVAL_ROWS = 64  # training rows on which the final weights of both runs are evaluated


# ------------------------------------------------------------------------------------------------ bytes
def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def hf_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the checkpoint `save_pretrained` writes (per-expert weights, MTP copies), on `meta`."""
    with torch.device("meta"):
        model = Transformer(config)
    shapes: dict[str, tuple[int, ...]] = {}
    for key, t in model.state_dict().items():
        if key.endswith(".mlp.experts.gate_up_proj"):  # [E, 2I, D], gate rows first
            prefix, (e, two_i, d) = key[: -len(".gate_up_proj")], t.shape
            for i in range(e):
                shapes[f"{prefix}.{i}.gate_proj.weight"] = shapes[f"{prefix}.{i}.up_proj.weight"] = (two_i // 2, d)
        elif key.endswith(".mlp.experts.down_proj"):  # [E, D, I]
            prefix, (e, d, inter) = key[: -len(".down_proj")], t.shape
            for i in range(e):
                shapes[f"{prefix}.{i}.down_proj.weight"] = (d, inter)
        else:
            shapes[key] = tuple(t.shape)
    for k in range(config.mtp_depth):
        shapes[f"model.layers.{config.n_layers + k}.embed_tokens.weight"] = shapes["model.embed_tokens.weight"]
        shapes[f"model.layers.{config.n_layers + k}.shared_head.head.weight"] = shapes["lm_head.weight"]
    return shapes


def bytes_report() -> dict[str, float]:
    ckpt = OUT / "checkpoints"
    shutil.rmtree(ckpt, ignore_errors=True)
    torch.manual_seed(0)
    config = ModelConfig.from_preset("tiny")
    Transformer(config).save_pretrained(ckpt / "fp32")
    convert_checkpoint(ckpt / "fp32", ckpt / "bf16", "bf16")
    convert_checkpoint(ckpt / "fp32", ckpt / "fp8", "fp8")
    t32, t16, t8 = (read_tensors(ckpt / name) for name in ("fp32", "bf16", "fp8"))
    quantised = [k for k, t in t8.items() if t.dtype == FP8_DTYPE]
    q8 = sum(nbytes(t8[k]) + nbytes(t8[k + "_scale_inv"]) for k in quantised)
    q32 = sum(nbytes(t32[k]) for k in quantised)
    q16 = sum(nbytes(t16[k]) for k in quantised)
    files = {name: checkpoint_bytes(ckpt / name) for name in ("fp32", "bf16", "fp8")}

    shapes = hf_shapes(config)
    assert set(shapes) == set(t32), "hf_shapes disagrees with save_pretrained"
    computed = {name: stored_bytes(shapes, name) for name in ("fp32", "bf16", "fp8")}
    measured = {name: sum(nbytes(t) for t in ts.values()) for name, ts in (("fp32", t32), ("bf16", t16), ("fp8", t8))}
    assert computed == measured, f"stored_bytes {computed} != tensor bytes {measured}"

    big = hf_shapes(ModelConfig.from_preset("deepseek-v3"))
    big_q = {k: s for k, s in big.items() if is_fp8_checkpoint_key(k) and len(s) == 2}
    b = {name: stored_bytes(big, name) for name in ("fp32", "bf16", "fp8")}
    bq = {name: stored_bytes(big_q, name) for name in ("fp32", "bf16", "fp8")}
    n_params = sum(torch.Size(s).numel() for s in big.values())

    print(f"tiny preset: {len(quantised)} projection weights quantised, {sum(t32[k].numel() for k in quantised):,} "
          f"of {sum(t.numel() for t in t32.values()):,} stored elements")
    print(f"  quantised weights + scales   fp8 {q8:>12,} B   fp32 {q32:>12,} B   bf16 {q16:>12,} B   "
          f"fp8/fp32 {q8 / q32:.4f}   fp8/bf16 {q8 / q16:.4f}")
    print(f"  whole checkpoint (files)     fp8 {files['fp8']:>12,} B   fp32 {files['fp32']:>12,} B   "
          f"bf16 {files['bf16']:>12,} B   fp8/fp32 {files['fp8'] / files['fp32']:.4f}   "
          f"fp8/bf16 {files['fp8'] / files['bf16']:.4f}")
    print(f"  stored_bytes() reproduces the measured tensor bytes exactly: {computed['fp8']:,} B (fp8)")
    print(f"deepseek-v3 preset (computed, {n_params / 1e9:.1f}B stored parameters incl. MTP copies of embedding/head):")
    print(f"  quantised weights + scales   fp8 {bq['fp8'] / 1e9:8.1f} GB   fp32 {bq['fp32'] / 1e9:8.1f} GB   "
          f"bf16 {bq['bf16'] / 1e9:8.1f} GB   fp8/fp32 {bq['fp8'] / bq['fp32']:.4f}   fp8/bf16 {bq['fp8'] / bq['bf16']:.4f}")
    print(f"  whole checkpoint             fp8 {b['fp8'] / 1e9:8.1f} GB   fp32 {b['fp32'] / 1e9:8.1f} GB   "
          f"bf16 {b['bf16'] / 1e9:8.1f} GB   fp8/fp32 {b['fp8'] / b['fp32']:.4f}   fp8/bf16 {b['fp8'] / b['bf16']:.4f}")
    return {
        "fp8_bytes_vs_fp32": q8 / q32, "fp8_bytes_vs_bf16": q8 / q16,
        "fp8_ckpt_vs_bf16_tiny": files["fp8"] / files["bf16"], "fp8_ckpt_vs_bf16_671b": b["fp8"] / b["bf16"],
    }


# ------------------------------------------------------------------------------------------------ training
def synthetic_corpus(vocab: int, rows: int, seq_len: int, alphabet: int = 64, topics: int = 4, fanout: int = 4,
                     seed: int = 0) -> torch.Tensor:
    """Rows of topic-dependent Markov chains over `alphabet` token ids (3..alphabet+2, below `vocab`): each row
    follows one of `topics` random successor tables (Zipf over `fanout` successors), so a model must read the
    context (attention) to tell the topic, besides learning bigrams. Entropy floor ≈ 1.2 nats per token."""
    gen = torch.Generator().manual_seed(seed)
    assert alphabet + 3 <= vocab
    succ = torch.randint(3, 3 + alphabet, (topics, 3 + alphabet, fanout), generator=gen)
    probs = 1.0 / torch.arange(1, fanout + 1, dtype=torch.float64)
    topic = torch.randint(topics, (rows,), generator=gen)
    tokens = torch.empty(rows, seq_len, dtype=torch.long)
    tokens[:, 0] = torch.randint(3, 3 + alphabet, (rows,), generator=gen)
    for t in range(1, seq_len):
        choice = torch.multinomial(probs.expand(rows, fanout), 1, generator=gen).squeeze(1)
        tokens[:, t] = succ[topic, tokens[:, t - 1], choice]
    return tokens.flatten()


def pretrain_run(name: str, precision: str, tokens: torch.Tensor):
    from r1lab.train import TrainConfig
    from r1lab.train.core.model_spec import ModelSpec
    from r1lab.train.stages.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny", overrides={"precision": precision}),
        data={"seq_len": SEQ_LEN, "batch_size": BATCH},
        train=TrainConfig(out_dir=str(OUT / "train" / name), max_steps=STEPS, lr=2e-3, warmup_steps=10,
                          precision="bf16", seed=0, progress=False, tensorboard=False),
    )
    return pretrain(cfg, tokens=tokens)


@torch.no_grad()
def final_training_loss(checkpoint: Path, rows: torch.Tensor) -> float:
    """Main next-token loss of the final weights on fixed training rows, in the run's own precision (FP8 layers
    come back from the checkpoint's config; BF16 autocast as in training). Both runs see the same rows, so
    this paired measurement is far less noisy than one step's mini-batch loss."""
    model = Transformer.from_pretrained(checkpoint).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return sum(model(r, labels=r).main_loss.item() for r in rows.split(BATCH)) / len(rows.split(BATCH))


def training_report() -> dict[str, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shutil.rmtree(OUT / "train", ignore_errors=True)
    tokens = synthetic_corpus(ModelConfig.from_preset("tiny").vocab_size, STEPS * BATCH, SEQ_LEN)
    runs, times, final = {}, {}, {}
    eval_rows = tokens.view(-1, SEQ_LEN)[:EVAL_ROWS]  # training rows (one epoch sees every row)
    for name, precision in (("bf16", "fp32"), ("fp8", "fp8")):  # bf16: autocast GEMMs on FP32 master weights
        t0 = time.perf_counter()
        result = pretrain_run(name, precision, tokens)
        times[name] = time.perf_counter() - t0
        runs[name] = result.history
        final[name] = final_training_loss(result.checkpoint, eval_rows)
    ce = {name: [h["ce_loss"] for h in hist] for name, hist in runs.items()}
    total = {name: [h["loss"] for h in hist] for name, hist in runs.items()}
    rel_diff = abs(final["fp8"] - final["bf16"]) / final["bf16"]
    smooth = {name: sum(v[-LAST:]) / LAST for name, v in ce.items()}
    rel_smooth = abs(smooth["fp8"] - smooth["bf16"]) / smooth["bf16"]
    mean_gap = sum((a - b) / b for a, b in zip(ce["fp8"][-50:], ce["bf16"][-50:])) / 50

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    steps = range(1, STEPS + 1)
    top.plot(steps, ce["bf16"], label="BF16 (autocast GEMMs, FP32 master)", lw=1.4)
    top.plot(steps, ce["fp8"], label="FP8 (block-wise E4M3 projections)", lw=1.0, ls="--")
    top.set_ylabel("training loss (next token)")
    top.set_title(f"tiny preset, same seed/data/steps: final training loss gap {100 * rel_diff:.3f}%")
    top.legend()
    bottom.plot(steps, [100 * (a - b) / b for a, b in zip(ce["fp8"], ce["bf16"])], color="gray", lw=1)
    bottom.axhline(0, color="black", lw=0.5)
    bottom.set_ylabel("FP8 - BF16 (%)")
    bottom.set_xlabel("optimizer step")
    fig.tight_layout()
    png = OUT / "fp8_vs_bf16_loss.png"
    fig.savefig(png, dpi=120)
    (OUT / "fp8_vs_bf16_loss.json").write_text(json.dumps({"ce_loss": ce, "loss": total, "final": final}) + "\n")

    print(f"pretraining {STEPS} steps x {BATCH} x {SEQ_LEN} tokens (BF16 autocast in both runs):")
    print(f"  loss at step 1                       bf16 {ce['bf16'][0]:.4f}   fp8 {ce['fp8'][0]:.4f}")
    print(f"  final weights on {EVAL_ROWS} training rows    bf16 {final['bf16']:.4f}   fp8 {final['fp8']:.4f}   "
          f"rel diff {rel_diff:.5f}")
    print(f"  mini-batch loss, mean of last {LAST}     bf16 {smooth['bf16']:.4f}   fp8 {smooth['fp8']:.4f}   "
          f"rel diff {rel_smooth:.5f}")
    print(f"  mean per-step (fp8-bf16)/bf16 over the last 50 steps: {mean_gap:+.5f}")
    print(f"  wall time                      bf16 {times['bf16']:.1f} s   fp8 {times['fp8']:.1f} s   "
          f"fp8/bf16 {times['fp8'] / times['bf16']:.2f}x (CPU emulation of FP8)")
    print(f"  curves: {png}")
    return {"fp8_loss_rel_diff": rel_diff}


def main() -> None:
    torch.set_num_threads(THREADS)
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {**bytes_report(), **training_report()}
    print(f"total {time.perf_counter() - t0:.0f} s")
    for key in ("fp8_ckpt_vs_bf16_tiny", "fp8_ckpt_vs_bf16_671b", "fp8_bytes_vs_fp32", "fp8_bytes_vs_bf16",
                "fp8_loss_rel_diff"):
        print(f"RESULT {key} {results[key]:.6f}")


if __name__ == "__main__":
    main()
