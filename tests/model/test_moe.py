"""DeepSeekMoE gate, grouped experts, aux-free bias and the sequence-wise balance loss."""

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from r1lab.model import Transformer
from r1lab.model.linear import grouped_mm_reference
from r1lab.model.moe import (
    MoE,
    bias_update,
    max_violation,
    route,
    sequence_balance_loss,
)

ROUTE = dict(top_k=2, n_group=4, topk_group=2, route_scale=2.5, renormalize=True)


def test_bias_changes_selection_but_never_gate_values():
    torch.manual_seed(0)
    scores = torch.rand(64, 8)
    bias = torch.zeros(8)
    bias[0] = 5.0  # forces expert 0 into every selection
    w0, i0 = route(scores, None, **ROUTE)
    w1, i1 = route(scores, bias, **ROUTE)
    assert not torch.equal(i0.sort(1).values, i1.sort(1).values)
    assert (i1 == 0).any(1).all()
    expected = scores.gather(1, i1)
    assert torch.allclose(w1, 2.5 * expected / expected.sum(1, keepdim=True))  # unbiased scores, renormalised


def test_weights_sum_to_route_scale():
    scores = torch.rand(32, 8)
    w, _ = route(scores, torch.randn(8) * 0.1, **ROUTE)
    assert torch.allclose(w.sum(1), torch.full((32,), 2.5))


def test_masked_groups_are_never_selected_even_with_negative_scores():
    """All biased scores negative: a 0.0 group fill (transformers) would select masked experts, -inf does not."""
    torch.manual_seed(1)
    scores = torch.rand(256, 8)
    bias = torch.full((8,), -3.0)
    _, idx = route(scores, bias, **ROUTE)
    choice = (scores + bias).view(256, 4, 2)
    kept = choice.topk(2, -1).values.sum(-1).topk(2, -1).indices  # [N, topk_group]
    group_of = idx // 2
    assert (group_of.unsqueeze(-1) == kept.unsqueeze(1)).any(-1).all()


def test_group_score_is_sum_of_top2():
    scores = torch.tensor([[0.9, 0.0, 0.5, 0.5, 0.0, 0.0, 0.1, 0.1]])  # groups: .9 | 1.0 | 0 | .2
    _, idx = route(scores, None, top_k=2, n_group=4, topk_group=1, route_scale=1.0, renormalize=True)
    assert sorted(idx[0].tolist()) == [2, 3]  # group 1 wins on the top-2 sum although expert 0 is the best single


def test_grouped_expert_compute_equals_per_token_loop():
    torch.manual_seed(2)
    cfg = tiny_config()
    moe = MoE(cfg, layer=1)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 9, cfg.dim)
    out, _ = moe(x)
    flat = x.reshape(-1, cfg.dim)
    w, idx, _ = moe.gate(flat)
    ref = torch.zeros_like(flat)
    for t in range(flat.shape[0]):
        for k in range(idx.shape[1]):
            e = idx[t, k]
            g, u = (moe.experts.gate_up_proj[e] @ flat[t]).chunk(2)
            ref[t] += w[t, k] * (moe.experts.down_proj[e] @ (F.silu(g) * u))
    ref += moe.shared_experts(flat)
    assert torch.allclose(out.reshape(-1, cfg.dim), ref, atol=1e-5)


def test_grouped_mm_matches_loop_oracle_with_empty_experts():
    torch.manual_seed(3)
    x, w = torch.randn(10, 8), torch.randn(4, 6, 8)
    offsets = torch.tensor([3, 3, 9, 10], dtype=torch.int32)  # expert 1 gets no rows
    from r1lab.model.linear import expert_matmul

    got = expert_matmul(x, w, offsets, tiny_config())
    assert torch.allclose(got, grouped_mm_reference(x, w, offsets), atol=1e-5)


def test_gradients_reach_router_weights_but_not_the_bias():
    torch.manual_seed(4)
    model = Transformer(tiny_config()).train()
    x = torch.randint(1, 64, (2, 16))
    model(x, labels=x).loss.backward()
    gate = model.model.layers[1].mlp.gate
    assert gate.weight.grad is not None and gate.weight.grad.abs().sum() > 0
    assert not gate.e_score_correction_bias.requires_grad
    assert "e_score_correction_bias" not in dict(model.named_parameters())
    assert "model.layers.1.mlp.gate.e_score_correction_bias" in model.state_dict()


def test_bias_update_rule_on_hand_built_load():
    counts = torch.tensor([10.0, 2.0, 6.0, 6.0])  # mean 6: overloaded down, underloaded up, balanced unchanged
    new = bias_update(torch.zeros(4), counts, gamma=0.01)
    assert torch.allclose(new, torch.tensor([-0.01, 0.01, 0.0, 0.0]))
    assert max_violation(counts).item() == pytest.approx((10 - 6) / 6)


def test_counts_accumulate_over_microbatches_and_reset_after_update():
    torch.manual_seed(5)
    model = Transformer(tiny_config()).train()
    x = torch.randint(1, 64, (4, 16))
    model(x[:2], labels=x[:2])  # labels: the MTP module (also MoE) runs too
    model(x[2:], labels=x[2:])
    split = [moe.gate.load_counts.clone() for _, moe in model.moe_layers()]
    for _, moe in model.moe_layers():
        moe.gate.load_counts.zero_()
    model(x, labels=x)
    whole = [moe.gate.load_counts.clone() for _, moe in model.moe_layers()]
    for a, b in zip(split, whole):
        assert torch.equal(a, b)  # micro-batching does not change the step's counts
        assert a.sum() == 4 * 16 * 2  # every token routed to K=2 experts, none dropped
    stats = model.update_balance_bias(0.01)
    assert [s["load"] for s in stats] == [c.tolist() for c in whole]
    for (_, moe), c in zip(model.moe_layers(), whole):
        assert torch.equal(moe.gate.e_score_correction_bias, bias_update(torch.zeros(8), c, 0.01))
        assert moe.gate.load_counts.sum() == 0
    model.eval()
    model(x, labels=x)
    assert all(moe.gate.load_counts.sum() == 0 for _, moe in model.moe_layers())  # eval forwards do not count


def test_balance_loss_on_hand_computed_example():
    # one sequence, T=2 tokens, E=4 experts, K=1
    scores = torch.tensor([[[0.5, 0.25, 0.25, 0.0], [0.2, 0.2, 0.2, 0.4]]])
    idx = torch.tensor([[[0], [3]]])
    # f = E/(K T) * hits = 4/2 * [1,0,0,1] = [2,0,0,2]; P = mean of normalised scores = [.35,.225,.225,.2]
    assert sequence_balance_loss(scores, idx, 4).item() == pytest.approx(2 * 0.35 + 2 * 0.2)
    # a masked second token: T=1, f=[4,0,0,0], P=[.5,.25,.25,0]
    mask = torch.tensor([[True, False]])
    assert sequence_balance_loss(scores, idx, 4, mask).item() == pytest.approx(4 * 0.5)


def test_balance_loss_gradient_flows_only_through_probabilities():
    scores = torch.rand(1, 5, 4, requires_grad=True)
    idx = torch.randint(0, 4, (1, 5, 2))
    sequence_balance_loss(scores, idx, 4).backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_bf16_autocast_keeps_router_fp32_and_runs_experts_in_bf16():
    torch.manual_seed(6)
    cfg = tiny_config()
    moe = MoE(cfg, layer=1)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 8, cfg.dim)
    ref, _ = moe(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert moe.gate.scores(x.reshape(-1, cfg.dim)).dtype == torch.float32
        w, idx, _ = moe.gate(x.reshape(-1, cfg.dim))
        assert moe.experts(x.reshape(-1, cfg.dim), w, idx).dtype == torch.bfloat16
        out, _ = moe(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
