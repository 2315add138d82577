"""Entry point of the torchrun processes of tests/dist: runs one scenario of dist_toy and writes rank 0's
results (metrics JSON + tensors as safetensors) into the output directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import dist_toy
from r1lab import dist


def _save(out: Path, name: str, metrics: dict, tensors: dict[str, torch.Tensor]) -> None:
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(metrics))
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(out / f"{name}.safetensors"))


def trained_state(model) -> dict[str, torch.Tensor]:
    """Full parameters and balance biases (gathered from FSDP shards / expert slices)."""
    from r1lab.dist.checkpoint import full_model_copy

    return {k: v for k, v in full_model_copy(model).state_dict().items()}


def scenario_sft(out: Path, strategy: str) -> None:
    result, model = dist_toy.run_sft(out / f"sft_{strategy}_run", strategy=strategy, balance_alpha=0.0)
    _save(out, f"sft_{strategy}", result.metrics, trained_state(model))


def scenario_rl(out: Path, preset: str) -> None:
    result, model = dist_toy.run_rl(out / f"rl_{preset}_run", preset=preset)
    _save(out, f"rl_{preset}", {k: v for k, v in result.metrics.items() if not isinstance(v, list)}, trained_state(model))


def scenario_ep(out: Path) -> None:
    from r1lab.dist.expert_parallel import apply_expert_parallel, expert_parallel_names, gather_expert_parallel_state

    tok_count = len(dist_toy.char_tokenizer())
    model = dist_toy.tiny_moe(tok_count)
    ids, proj = dist_toy.moe_batch(tok_count)
    apply_expert_parallel(model)
    mine = dist.shard_range(ids.shape[0])
    logits = dist_toy.moe_step(model, ids[mine.start:mine.stop], proj)
    grads, sliced = {}, expert_parallel_names(model)
    for name, p in model.named_parameters():  # replicated weights: sum the ranks' gradients (DP semantics)
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        if name not in sliced:
            torch.distributed.all_reduce(g)
        grads[name] = g
    full_grads = gather_expert_parallel_state(model, grads)  # expert slices -> [E, ...]
    all_logits = torch.cat(dist.gather_objects([logits]), 0)
    counts = {f"counts.{i}": m.gate.load_counts.clone() for i, m in model.moe_layers()}
    model.update_balance_bias(1e-2)
    biases = {f"bias.{i}": m.gate.e_score_correction_bias.clone() for i, m in model.moe_layers()}
    _save(out, "ep", {"local_experts": model.moe_layers()[0][1].experts.gate_up_proj.shape[0]},
          {"logits": all_logits, **{f"grad.{k}": v for k, v in full_grads.items()}, **counts, **biases})


if __name__ == "__main__":
    scenario, out = sys.argv[1], Path(sys.argv[2])
    dist.init_distributed()
    for name in scenario.split(","):
        if name.startswith("rl:"):
            scenario_rl(out, name.split(":")[1])
        elif name == "ep":
            scenario_ep(out)
        else:
            scenario_sft(out, name.split(":")[1] if ":" in name else "ddp")
    dist.shutdown()
