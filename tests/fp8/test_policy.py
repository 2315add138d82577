"""Precision policy: which modules of a DeepSeek-V3 model compute in FP8 and which checkpoint keys are stored in FP8."""

import pytest
import torch
import torch.nn as nn

import r1lab.model.fp8 as model_fp8
from r1lab.errors import ConfigError
from r1lab.fp8.linear import Fp8Linear
from r1lab.fp8.policy import is_fp8_checkpoint_key, recipe_from_config, uses_fp8
from r1lab.model import ModelConfig, Transformer

SMALL = dict(vocab_size=64, dim=64, n_layers=3, n_dense_layers=1, inter_dim=64, moe_inter_dim=32, n_heads=2,
             q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
             n_routed_experts=4, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1, max_seq_len=32,
             fp8_block_size=32)


def fp8_modules(model: nn.Module) -> set[str]:
    return {name for name, m in model.named_modules() if isinstance(m, Fp8Linear)}


def count_grouped_calls(monkeypatch) -> list:
    calls = []
    original = model_fp8.fp8_grouped_mm

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(model_fp8, "fp8_grouped_mm", counting)
    return calls


def test_default_policy_matches_v3(monkeypatch):
    """Attention, dense FFN, shared and routed experts in FP8; embedding, head, router, norms, eh_proj not."""
    model = Transformer(ModelConfig.from_preset("tiny", **SMALL, precision="fp8"))
    names = fp8_modules(model)
    for i in range(3):
        for proj in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"):
            assert f"model.layers.{i}.self_attn.{proj}" in names
    assert {"model.layers.0.mlp.gate_proj", "model.layers.2.mlp.shared_experts.down_proj"} <= names
    high = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding)) and n not in names]
    assert sorted(high) == ["lm_head", "model.embed_tokens", "model.layers.3.eh_proj"]
    assert all(not isinstance(m, Fp8Linear) for n, m in model.named_modules() if n.endswith("mlp.gate"))
    calls = count_grouped_calls(monkeypatch)
    ids = torch.randint(0, 64, (2, 16))
    model(ids, labels=ids)  # labels make the MTP module run too
    assert len(calls) == 2 * 3  # gate_up and down for each of the 3 MoE layers (2 main + 1 MTP)
    assert all(c["block_size"] == 32 for c in calls)


def test_module_groups_and_layers_are_switchable(monkeypatch):
    only_experts = Transformer(ModelConfig.from_preset("tiny", **SMALL, precision="fp8", fp8_modules=["experts"]))
    assert fp8_modules(only_experts) == set()
    calls = count_grouped_calls(monkeypatch)
    ids = torch.randint(0, 64, (1, 8))
    only_experts(ids, labels=ids)
    assert len(calls) == 6

    cfg = ModelConfig.from_preset("tiny", **SMALL, precision="fp8", fp8_modules=["attn", "mtp"],
                                  fp8_exclude_layers=[1])
    names = fp8_modules(Transformer(cfg))
    assert "model.layers.3.eh_proj" in names
    assert not any(n.startswith("model.layers.1.") for n in names)
    assert not any(".mlp." in n for n in names)
    assert uses_fp8(cfg, 0, "attn.o_proj") and not uses_fp8(cfg, 1, "attn.o_proj")
    assert not uses_fp8(ModelConfig.from_preset("tiny", **SMALL), 0, "attn.o_proj")


def test_recipe_comes_from_the_model_config():
    cfg = ModelConfig.from_preset("tiny", **SMALL, precision="fp8", fp8_pow2_scales=True, fp8_backend="emulate")
    recipe = recipe_from_config(cfg)
    assert (recipe.block_size, recipe.pow2_scales, recipe.backend) == (32, True, "emulate")
    layer = Transformer(cfg).model.layers[0].self_attn.o_proj
    assert layer.recipe == recipe


@pytest.mark.parametrize("bad", [dict(fp8_modules=["attention"]), dict(fp8_backend="cutlass")])
def test_bad_fp8_fields_are_config_errors(bad):
    with pytest.raises(ConfigError, match="fp8|backend"):
        ModelConfig.from_preset("tiny", **SMALL, **bad)


def test_fp8_model_computes_close_to_fp32_with_the_same_weights():
    torch.manual_seed(0)
    ref = Transformer(ModelConfig.from_preset("tiny", **SMALL))
    fp8 = Transformer(ModelConfig.from_preset("tiny", **SMALL, precision="fp8"))
    fp8.load_state_dict(ref.state_dict())  # same keys: FP8 changes compute, not parameters
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
    a, b = ref(ids).logits, fp8(ids).logits
    assert ((a - b).norm() / a.norm()) < 0.05


def test_checkpoint_keys_stored_in_fp8_follow_the_published_layout():
    fp8_keys = [
        "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.7.self_attn.kv_a_proj_with_mqa.weight", "model.layers.7.self_attn.kv_b_proj.weight",
        "model.layers.7.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight",
        "model.layers.3.mlp.shared_experts.up_proj.weight", "model.layers.3.mlp.experts.255.gate_proj.weight",
        "model.layers.61.eh_proj.weight",
    ]
    kept = [
        "model.embed_tokens.weight", "lm_head.weight", "model.layers.3.mlp.gate.weight",
        "model.layers.3.mlp.gate.e_score_correction_bias", "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_a_layernorm.weight", "model.layers.61.shared_head.head.weight",
        "model.layers.61.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.o_proj.weight_scale_inv",
    ]
    assert all(is_fp8_checkpoint_key(k) for k in fp8_keys)
    assert not any(is_fp8_checkpoint_key(k) for k in kept)
