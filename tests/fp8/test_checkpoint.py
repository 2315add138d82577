"""FP8 checkpoints: published DeepSeek-V3 layout, round trips through r1lab and `r1lab convert`, atomic writes."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from r1lab.errors import CheckpointError
from r1lab.fp8.checkpoint import (
    checkpoint_bytes,
    convert_checkpoint,
    dequantize_state_dict,
    quantization_config,
    quantize_state_dict,
    save_pretrained_fp8,
    stored_bytes,
)
from r1lab.fp8.quant import FP8_DTYPE, dequantize_blocks, quantize_blocks
from r1lab.model import ModelConfig, Transformer

SMALL = dict(vocab_size=64, dim=64, n_layers=2, n_dense_layers=1, inter_dim=64, moe_inter_dim=32, n_heads=2,
             q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
             n_routed_experts=4, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1, max_seq_len=32,
             fp8_block_size=32)


def read_all(path):
    out = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_preset("tiny", **SMALL)).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_state_dict_round_trip_keeps_layout_and_error_bounds():
    gen = torch.Generator().manual_seed(2)
    sd = {
        "model.layers.0.self_attn.o_proj.weight": torch.randn(70, 40, generator=gen),
        "model.layers.1.mlp.experts.3.down_proj.weight": torch.randn(64, 32, generator=gen),
        "model.layers.1.mlp.gate.weight": torch.randn(4, 64, generator=gen),
        "model.layers.1.mlp.gate.e_score_correction_bias": torch.randn(4, generator=gen),
        "model.norm.weight": torch.randn(64, generator=gen),
        "model.embed_tokens.weight": torch.randn(10, 64, generator=gen),
    }
    q = quantize_state_dict(sd, block=32)
    w = "model.layers.0.self_attn.o_proj.weight"
    assert q[w].dtype == FP8_DTYPE and q[w + "_scale_inv"].shape == (3, 2) and q[w + "_scale_inv"].dtype == torch.float32
    assert q["model.layers.1.mlp.experts.3.down_proj.weight"].dtype == FP8_DTYPE
    assert q["model.layers.1.mlp.gate.weight"].dtype == torch.float32  # router stays fp32
    assert q["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32
    assert q["model.norm.weight"].dtype == torch.bfloat16 and q["model.embed_tokens.weight"].dtype == torch.bfloat16
    back = dequantize_state_dict(q, dtype=torch.float32)
    assert back.keys() == sd.keys()
    assert torch.equal(back[w], dequantize_blocks(q[w], q[w + "_scale_inv"], 32))
    assert rel(back[w], sd[w]) < 0.06
    # re-quantising an FP8 state dict with the same block is exact (idempotent)
    again = quantize_state_dict(q, block=32)
    assert torch.equal(again[w].float(), q[w].float()) and torch.equal(again[w + "_scale_inv"], q[w + "_scale_inv"])


def test_hub_convention_with_inferred_block_size():
    """A Hub-style tensor pair without a config: W = W_q * scale_inv[n // 128, k // 128]."""
    w = torch.randn(300, 260, generator=torch.Generator().manual_seed(3))
    w_q, s = quantize_blocks(w)
    out = dequantize_state_dict({"a.self_attn.q_b_proj.weight": w_q, "a.self_attn.q_b_proj.weight_scale_inv": s},
                                dtype=torch.float32)
    rows, cols = torch.arange(300)[:, None] // 128, torch.arange(260)[None, :] // 128
    assert torch.equal(out["a.self_attn.q_b_proj.weight"], w_q.float() * s[rows, cols])
    with pytest.raises(CheckpointError, match="without"):
        dequantize_state_dict({"x.o_proj.weight": w_q})
    with pytest.raises(CheckpointError, match="scale"):
        dequantize_state_dict({"x.weight": w_q, "x.weight_scale_inv": torch.ones(7, 3)})


def test_fp8_save_and_load_round_trip(tmp_path, model, ids):
    out = tmp_path / "fp8"
    sizes = save_pretrained_fp8(model, out)
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"] == quantization_config(32)
    assert config["model_type"] == "deepseek_v3" and config["dtype"] == "bfloat16"
    tensors = read_all(out)
    fp8_keys = {k for k, t in tensors.items() if t.dtype == FP8_DTYPE}
    assert {k + "_scale_inv" for k in fp8_keys} == {k for k in tensors if k.endswith("_scale_inv")}
    assert "model.layers.1.mlp.experts.0.gate_proj.weight" in fp8_keys
    assert "model.layers.2.eh_proj.weight" in fp8_keys  # MTP projection, as in the published checkpoint
    assert not any(k.startswith(("model.embed_tokens", "lm_head")) or ".mlp.gate.weight" in k for k in fp8_keys)
    assert sizes["bytes_out"] < 0.45 * sizes["bytes_in"]
    loaded = Transformer.from_pretrained(out).eval()
    with torch.no_grad():
        assert rel(loaded(ids).logits, model(ids).logits) < 0.05
        w = "model.layers.0.self_attn.q_a_proj.weight"
        want = dequantize_blocks(tensors[w], tensors[w + "_scale_inv"], 32)
        assert torch.equal(loaded.state_dict()[w], want)


def test_convert_cli_fp8_then_bf16(tmp_path, model, ids):
    src, fp8, bf16 = tmp_path / "src", tmp_path / "fp8", tmp_path / "bf16"
    model.save_pretrained(src)
    (src / "tokenizer.json").write_text("{}")
    (src / "trainer_state").mkdir()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "r1lab.cli", "convert", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    r = cli("--to", "fp8", "--block", 32, "--pow2-scales", src, fp8)
    assert r.returncode == 0, r.stderr
    assert "fp8" in r.stdout
    cfg = json.loads((fp8 / "config.json").read_text())
    assert cfg["quantization_config"]["scale_fmt"] == "ue8m0"
    scales = [t for k, t in read_all(fp8).items() if k.endswith("_scale_inv")]
    assert all(torch.all(torch.frexp(s)[0] == 0.5) for s in scales)  # power-of-two scales on disk
    assert (fp8 / "tokenizer.json").is_file() and not (fp8 / "trainer_state").exists()
    assert checkpoint_bytes(fp8) < 0.45 * checkpoint_bytes(src)

    r = cli("--to", "bf16", fp8, bf16)
    assert r.returncode == 0, r.stderr
    assert "quantization_config" not in json.loads((bf16 / "config.json").read_text())
    dtypes = {k: t.dtype for k, t in read_all(bf16).items()}
    assert not any(k.endswith("_scale_inv") for k in dtypes) and FP8_DTYPE not in dtypes.values()
    assert dtypes["model.layers.0.self_attn.o_proj.weight"] == torch.bfloat16
    with torch.no_grad():
        a = Transformer.from_pretrained(fp8).eval()(ids).logits
        b = Transformer.from_pretrained(bf16).eval()(ids).logits
    assert rel(b, a) < 0.02  # bf16 of FP8 values is nearly exact (E4M3 x fp32 scale rounded to bf16)

    # the byte rule used to size checkpoints too large to build reproduces these files' tensor bytes
    shapes = {k: tuple(t.shape) for k, t in read_all(src).items()}
    for target, path in (("fp32", src), ("fp8", fp8), ("bf16", bf16)):
        assert stored_bytes(shapes, target, block=32) == sum(t.numel() * t.element_size() for t in read_all(path).values())

    r = cli("--to", "int4", src, tmp_path / "x")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = cli("--to", "fp8", tmp_path / "missing", tmp_path / "y")
    assert r.returncode == 2 and "config.json" in r.stderr and not (tmp_path / "y").exists()


def test_sharded_checkpoints_convert_shard_by_shard(tmp_path, model, ids):
    src, dst = tmp_path / "src", tmp_path / "dst"
    model.save_pretrained(src, max_shard_bytes=200_000)
    shards = sorted(p.name for p in src.glob("*.safetensors"))
    assert len(shards) > 1
    convert_checkpoint(src, dst, "fp8", block=32)
    assert sorted(p.name for p in dst.glob("*.safetensors")) == shards
    index = json.loads((dst / "model.safetensors.index.json").read_text())["weight_map"]
    w = "model.layers.0.self_attn.o_proj.weight"
    assert index[w + "_scale_inv"] == index[w]  # a scale lives next to its weight
    with torch.no_grad():
        assert rel(Transformer.from_pretrained(dst).eval()(ids).logits, model(ids).logits) < 0.05


def test_failed_conversion_leaves_the_destination_untouched(tmp_path, model):
    src, dst = tmp_path / "src", tmp_path / "dst"
    model.save_pretrained(src)
    dst.mkdir()
    (dst / "keep.txt").write_text("old")
    bad = {"model.layers.0.self_attn.o_proj.weight": torch.ones(4, 4).to(FP8_DTYPE)}  # FP8 without a scale
    save_file(bad, str(src / "model.safetensors"))
    with pytest.raises(CheckpointError):
        convert_checkpoint(src, dst, "bf16")
    assert [p.name for p in dst.iterdir()] == ["keep.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dst")]  # no temp dir left behind
