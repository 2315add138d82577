"""Acceptance: expert parallelism (2 ranks, gloo all-to-all, 2 of the 4 routed experts per rank) gives the same
forward and backward as the single-process MoE model; FSDP2 gives the same SFT step as one process."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import dist_toy

TOL = 1e-5  # relative: gradients here reach ~50, where float32 summation order alone moves the last digits


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 round-off, relative to each tensor's own scale (any thread count, any order)."""
    scale = max(float(b.abs().max()), 1.0) if b.numel() else 1.0
    return bool(torch.allclose(a, b, rtol=TOL, atol=TOL * scale))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ep")
    dist_toy.torchrun("ep,sft:fsdp", out)
    return out


def test_expert_parallel_forward_backward_equals_single_process(two_ranks):
    vocab = len(dist_toy.char_tokenizer())
    model = dist_toy.tiny_moe(vocab)
    ids, proj = dist_toy.moe_batch(vocab)
    logits = dist_toy.moe_step(model, ids, proj)
    got = load_file(str(two_ranks / "ep.safetensors"))
    assert json.loads((two_ranks / "ep.json").read_text())["local_experts"] == 2
    assert close(got["logits"], logits)
    for name, p in model.named_parameters():
        ref = p.grad if p.grad is not None else torch.zeros_like(p)
        assert close(got[f"grad.{name}"], ref), name
    # expert weights really received gradient through the all-to-all backward
    assert all(got[f"grad.{n}"].abs().sum() > 0 for n, _ in model.named_parameters() if "experts.down_proj" in n
               and n.startswith("model.layers.1."))
    # each rank counted only its own tokens; the bias update all-reduces the counts, so the biases equal the
    # single-process ones
    model_counts = model.moe_layers()[0][1].gate.load_counts.clone()
    assert got["counts.1"].sum() == model_counts.sum() / 2 == ids.numel() * model.config.n_activated_experts / 2
    model.update_balance_bias(1e-2)
    for i, m in model.moe_layers():
        assert torch.allclose(got[f"bias.{i}"], m.gate.e_score_correction_bias)


def test_fsdp2_sft_step_equals_single_process(two_ranks, tmp_path):
    result, model = dist_toy.run_sft(tmp_path / "single", balance_alpha=0.0)
    metrics = json.loads((two_ranks / "sft_fsdp.json").read_text())
    for key in ("loss", "num_tokens", "grad_norm"):
        assert metrics[key] == pytest.approx(result.metrics[key], abs=TOL, rel=TOL), key
    ranked = load_file(str(two_ranks / "sft_fsdp.safetensors"))
    for k, v in model.state_dict().items():
        assert close(v, ranked[k]), k
    # the checkpoint holds full tensors in the single-process layout (any world size resumes it)
    ckpt = load_file(str(two_ranks / "sft_fsdp_run" / "checkpoint" / "model.safetensors"))
    mine = load_file(str(tmp_path / "single" / "checkpoint" / "model.safetensors"))
    assert set(ckpt) == set(mine)
    for k in mine:
        assert close(mine[k], ckpt[k]), k
