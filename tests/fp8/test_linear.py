"""`Fp8Linear`: forward and both backward GEMMs follow the V3 recipe, gradients track FP32, drop-in for nn.Linear."""

import pytest
import torch
import torch.nn as nn

from r1lab.fp8.linear import Fp8Linear, Fp8Recipe, fp8_grouped_mm, fp8_linear
from r1lab.fp8.quant import (
    dequantize_blocks,
    dequantize_tiles,
    quantize_blocks,
    quantize_tiles,
)

B = 32
RECIPE = Fp8Recipe(block_size=B)


def fake_quant_tiles(t: torch.Tensor) -> torch.Tensor:
    return dequantize_tiles(*quantize_tiles(t, B), B)


def fake_quant_blocks(t: torch.Tensor) -> torch.Tensor:
    return dequantize_blocks(*quantize_blocks(t, B), B)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def make(m=40, k=3 * B, n=2 * B + 5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=gen).requires_grad_()
    w = (torch.randn(n, k, generator=gen) / k**0.5).requires_grad_()
    g = torch.randn(m, n, generator=gen)
    return x, w, g


def test_all_three_gemms_follow_the_v3_recipe():
    """Fprop 1x128·128x128, Dgrad 1x128·128x128 (same weight blocks), Wgrad 128x1·128x1 from the cached FP8 input."""
    x, w, g = make()
    y = fp8_linear(x, w, recipe=RECIPE)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    with torch.no_grad():
        wq = fake_quant_blocks(w)
        torch.testing.assert_close(y, fake_quant_tiles(x) @ wq.t(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx, fake_quant_tiles(g) @ wq, rtol=1e-5, atol=1e-5)
        x_cached = fake_quant_tiles(x)  # what the forward pass kept
        want_gw = fake_quant_tiles(g.t()) @ fake_quant_tiles(x_cached.t()).t()  # tiles along the token dim
        torch.testing.assert_close(gw, want_gw, rtol=1e-5, atol=1e-5)


def test_gradients_match_fp32_within_fp8_tolerance():
    x, w, g = make(m=64, k=4 * B, n=3 * B, seed=1)
    y8 = fp8_linear(x, w, recipe=RECIPE)
    gx8, gw8 = torch.autograd.grad(y8, (x, w), g)
    y32 = x @ w.t()
    gx32, gw32 = torch.autograd.grad(y32, (x, w), g)
    assert rel(y8, y32) < 0.06 and rel(gx8, gx32) < 0.06 and rel(gw8, gw32) < 0.08
    for a, b in ((gx8, gx32), (gw8, gw32)):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.995


def test_master_weight_and_gradient_stay_fp32_while_activations_follow_input_dtype():
    layer = Fp8Linear(2 * B, B, block_size=B)
    assert layer.weight.dtype == torch.float32
    x = torch.randn(3, 5, 2 * B, dtype=torch.bfloat16, requires_grad=True)
    y = layer(x)
    assert y.shape == (3, 5, B) and y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and layer.weight.grad.dtype == torch.float32


def test_autocast_does_not_lower_the_accumulation_precision():
    x, w, _ = make(seed=2)
    plain = fp8_linear(x, w, recipe=RECIPE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = fp8_linear(x, w, recipe=RECIPE)
    assert torch.equal(under, plain)


def test_drop_in_for_nn_linear():
    torch.manual_seed(0)
    ref = nn.Linear(2 * B, B, bias=True)
    torch.manual_seed(0)
    fp8 = Fp8Linear(2 * B, B, bias=True, block_size=B)
    assert ref.state_dict().keys() == fp8.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), fp8.state_dict().values()))
    shared = Fp8Linear.from_linear(ref, RECIPE)
    assert shared.weight is ref.weight and shared.bias is ref.bias
    x = torch.randn(6, 2 * B)
    assert rel(shared(x), ref(x)) < 0.06
    assert "fp8_block=32" in repr(shared)


def test_effective_weight_is_the_dequantised_weight_with_straight_through_gradient():
    layer = Fp8Linear(3 * B, 2 * B, block_size=B)
    w_eff = layer.effective_weight()
    torch.testing.assert_close(w_eff, fake_quant_blocks(layer.weight.detach()))
    w_eff.sum().backward()
    assert torch.equal(layer.weight.grad, torch.ones_like(layer.weight))


def test_grouped_experts_match_per_expert_linears():
    gen = torch.Generator().manual_seed(3)
    e, n, k = 4, B, 2 * B
    weight = torch.randn(e, n, k, generator=gen).requires_grad_()
    counts = [5, 0, 40, 3]  # an expert without tokens gets a zero gradient
    offsets = torch.tensor(counts).cumsum(0).to(torch.int32)
    x = torch.randn(sum(counts), k, generator=gen)
    out = fp8_grouped_mm(x, weight, offsets, RECIPE)
    rows = torch.split(x, counts)
    want = torch.cat([fp8_linear(r, weight[i], recipe=RECIPE) for i, r in enumerate(rows) if len(r)])
    assert torch.equal(out, want)
    out.sum().backward()
    assert torch.all(weight.grad[1] == 0) and all(weight.grad[i].abs().sum() > 0 for i in (0, 2, 3))
    assert fp8_grouped_mm(x[:0], weight, torch.zeros(e, dtype=torch.int32), RECIPE).shape == (0, n)


def test_empty_batch_and_ragged_features():
    layer = Fp8Linear(B + 5, 7, block_size=B)
    x = torch.randn(0, B + 5, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.shape == (0, 7) and torch.all(layer.weight.grad == 0)
    x = torch.randn(3, B + 5)
    assert rel(layer(x), x @ layer.weight.t()) < 0.06


def test_a_small_fp8_stack_trains_like_fp32():
    def run(make_layer):
        torch.manual_seed(0)
        net = nn.Sequential(make_layer(2 * B, 4 * B), nn.GELU(), make_layer(4 * B, 2 * B))
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        target = torch.randn(2 * B, 2 * B, generator=gen) / 8
        losses = []
        for _ in range(60):
            x = torch.randn(32, 2 * B, generator=gen)
            loss = (net(x) - x @ target).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    fp32 = run(lambda i, o: nn.Linear(i, o, bias=False))
    fp8 = run(lambda i, o: Fp8Linear(i, o, block_size=B))
    assert fp8[-1] < 0.2 * fp8[0]
    assert abs(fp8[-1] - fp32[-1]) / fp32[-1] < 0.1


def test_recipe_rejects_unknown_backend():
    with pytest.raises(ValueError):
        Fp8Recipe(backend="magic")
    with pytest.raises(ValueError):
        Fp8Recipe(block_size=0)
