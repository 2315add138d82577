"""Hugging Face interop: r1lab logits == transformers logits (fp32, 1e-4) in both directions; bad checkpoints."""

import json
import logging

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM

from r1lab.errors import CheckpointError
from r1lab.model import Transformer

TOL = 1e-4
YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}
SHAPES = {
    "qlora_groups2": {},
    "no_qlora_groups4_2shared_2dense": dict(q_lora_rank=None, n_group=4, topk_group=2, n_shared_experts=2,
                                            first_k_dense_replace=2, num_hidden_layers=4),
    "yarn_softmax_scale": dict(rope_parameters=YARN),
    "one_group_route_scale": dict(n_group=1, topk_group=1, num_experts_per_tok=3, routed_scaling_factor=1.0),
}


def hf_model(**overrides) -> DeepseekV3ForCausalLM:
    base = dict(vocab_size=97, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1, n_routed_experts=8,
                routed_scaling_factor=2.5, kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, v_head_dim=12,
                qk_nope_head_dim=16, n_group=2, topk_group=1, num_experts_per_tok=2, first_k_dense_replace=1,
                max_position_embeddings=64, num_nextn_predict_layers=0, initializer_range=0.15)
    base.update(overrides)
    model = DeepseekV3ForCausalLM(DeepseekV3Config(**base)).eval()
    with torch.no_grad():  # small |bias|: transformers' 0.0 group fill agrees with the reference's -inf
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buf.uniform_(-0.02, 0.02)
    return model


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(autouse=True)
def quiet_transformers():
    logging.getLogger("transformers").setLevel(logging.ERROR)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_round_trip_matches_transformers_logits(shape, tmp_path):
    torch.manual_seed(0)
    ref = hf_model(**SHAPES[shape])
    ids = torch.randint(0, 97, (2, 33))
    want = logits(ref, ids)
    ref.save_pretrained(tmp_path / "hf")
    ours = Transformer.from_pretrained(tmp_path / "hf").eval()  # HF -> r1lab
    assert (logits(ours, ids) - want).abs().max() <= TOL
    ours.save_pretrained(tmp_path / "r1")  # r1lab -> HF
    back = AutoModelForCausalLM.from_pretrained(tmp_path / "r1").eval()
    assert type(back).__name__ == "DeepseekV3ForCausalLM"
    assert (logits(back, ids) - want).abs().max() <= TOL
    assert want.abs().max() > 0.5  # not a vacuous comparison of near-zero logits


def test_saved_experts_are_per_expert_and_fused_layout_loads(tmp_path):
    torch.manual_seed(1)
    ref = hf_model()
    ids = torch.randint(0, 97, (2, 17))
    (tmp_path / "fused").mkdir()
    # transformers v5 keeps experts fused in memory: write that layout to disk directly
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "fused/model.safetensors"))
    ref.config.to_json_file(str(tmp_path / "fused/config.json"))
    assert any(k.endswith("experts.gate_up_proj") for k in load_file(str(tmp_path / "fused/model.safetensors")))
    ours = Transformer.from_pretrained(tmp_path / "fused").eval()
    assert (logits(ours, ids) - logits(ref, ids)).abs().max() <= TOL
    ours.save_pretrained(tmp_path / "out")
    keys = load_file(str(tmp_path / "out/model.safetensors")).keys()
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in keys
    assert not any(k.endswith("gate_up_proj") for k in keys)
    config = json.loads((tmp_path / "out/config.json").read_text())
    assert config["model_type"] == "deepseek_v3" and config["architectures"] == ["DeepseekV3ForCausalLM"]


def test_mtp_weights_round_trip_and_transformers_ignores_them(tmp_path):
    torch.manual_seed(2)
    model = Transformer(tiny_config(vocab_size=97)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    keys = load_file(str(tmp_path / "ckpt/model.safetensors")).keys()
    n = model.config.n_layers
    for k in ("eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head.norm.weight",
              "shared_head.head.weight", "embed_tokens.weight"):
        assert f"model.layers.{n}.{k}" in keys
    again = Transformer.from_pretrained(tmp_path / "ckpt")
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    ids = torch.randint(0, 97, (2, 11))
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt").eval()
    assert (logits(hf, ids) - logits(model, ids)).abs().max() <= TOL


def test_sharded_checkpoint_loads(tmp_path):
    torch.manual_seed(3)
    model = Transformer(tiny_config(vocab_size=97)).eval()
    model.save_pretrained(tmp_path / "s", max_shard_bytes=200_000)
    assert (tmp_path / "s/model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "s").glob("model-*.safetensors"))) > 1
    ids = torch.randint(0, 97, (1, 9))
    assert torch.equal(logits(Transformer.from_pretrained(tmp_path / "s"), ids), logits(model, ids))


def test_bf16_save_keeps_router_in_fp32(tmp_path):
    model = Transformer(tiny_config(vocab_size=97))
    model.save_pretrained(tmp_path / "b", dtype=torch.bfloat16)
    tensors = load_file(str(tmp_path / "b/model.safetensors"))
    assert tensors["model.layers.1.mlp.gate.weight"].dtype == torch.float32
    assert tensors["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32
    assert tensors["model.layers.1.self_attn.kv_b_proj.weight"].dtype == torch.bfloat16
    loaded = Transformer.from_pretrained(tmp_path / "b", dtype=torch.bfloat16)
    assert loaded.model.layers[1].mlp.gate.weight.dtype == torch.float32
    assert loaded.lm_head.weight.dtype == torch.bfloat16


def _tamper(tmp_path, edit):
    Transformer(tiny_config(vocab_size=97, mtp_depth=0)).save_pretrained(tmp_path / "c")
    path = str(tmp_path / "c/model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)
    return tmp_path / "c"


def test_missing_key_is_named(tmp_path):
    d = _tamper(tmp_path, lambda t: t.pop("model.layers.0.self_attn.kv_b_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing key 'model\.layers\.0\.self_attn\.kv_b_proj\.weight'.*\[128, 32\]"):
        Transformer.from_pretrained(d)


def test_missing_expert_is_named(tmp_path):
    d = _tamper(tmp_path, lambda t: t.pop("model.layers.2.mlp.experts.3.up_proj.weight"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.2\.mlp\.experts\.3\.up_proj\.weight"):
        Transformer.from_pretrained(d)


def test_unexpected_key_is_named(tmp_path):
    d = _tamper(tmp_path, lambda t: t.update({"model.layers.0.self_attn.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected key 'model\.layers\.0\.self_attn\.extra\.weight'"):
        Transformer.from_pretrained(d)


def test_wrong_shape_names_expected_and_actual(tmp_path):
    d = _tamper(tmp_path, lambda t: t.update({"model.norm.weight": torch.ones(65)}))
    with pytest.raises(CheckpointError, match=r"'model\.norm\.weight': expected shape \[64\], got \[65\]"):
        Transformer.from_pretrained(d)


def test_unsupported_dtype_is_named(tmp_path):
    d = _tamper(tmp_path, lambda t: t.update({"model.norm.weight": torch.ones(64, dtype=torch.int32)}))
    with pytest.raises(CheckpointError, match=r"model\.norm\.weight.*int32"):
        Transformer.from_pretrained(d)


def test_missing_config_and_unsupported_rope(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        Transformer.from_pretrained(tmp_path)
    hf_model(rope_interleave=False).save_pretrained(tmp_path / "h")
    with pytest.raises(CheckpointError, match="rope_interleave"):
        Transformer.from_pretrained(tmp_path / "h")


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    model = Transformer(tiny_config(vocab_size=97))
    model.save_pretrained(tmp_path / "ckpt")
    before = (tmp_path / "ckpt/model.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-save")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(RuntimeError):
        model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt/model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind
