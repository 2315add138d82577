"""Training with `precision: fp8`: a model built (or switched) to FP8 trains through the shared loop."""

import torch

import r1lab.model.fp8 as model_fp8
from r1lab.fp8.linear import Fp8Linear
from r1lab.fp8.policy import enable_fp8
from r1lab.model import ModelConfig, Transformer
from r1lab.train import TrainConfig
from r1lab.train.core.model_spec import ModelSpec
from r1lab.train.stages.pretrain import PretrainConfig, pretrain

SMALL = dict(vocab_size=32, dim=64, n_layers=2, n_dense_layers=1, inter_dim=64, moe_inter_dim=32, n_heads=2,
             q_lora_rank=32, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
             n_routed_experts=4, n_activated_experts=2, n_expert_groups=2, n_limited_groups=1, max_seq_len=32,
             fp8_block_size=32)


def periodic_tokens(n: int = 4096) -> torch.Tensor:
    """A learnable stream: a fixed random sequence of period 24 repeated."""
    period = torch.randint(1, 32, (24,), generator=torch.Generator().manual_seed(0))
    return period.repeat(n // 24 + 1)[:n]


def test_pretrain_with_fp8_precision_learns_and_checkpoints(tmp_path):
    cfg = PretrainConfig(
        model=ModelSpec(preset="tiny", overrides={**SMALL, "precision": "fp8"}),
        data={"seq_len": 24, "batch_size": 8},
        train=TrainConfig(out_dir=str(tmp_path / "run"), max_steps=12, lr=3e-3, progress=False, tensorboard=False,
                          seed=0),
    )
    result = pretrain(cfg, tokens=periodic_tokens())
    losses = [h["ce_loss"] for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0]
    reloaded = Transformer.from_pretrained(result.checkpoint)
    assert reloaded.config.precision == "fp8"
    assert any(isinstance(m, Fp8Linear) for m in reloaded.modules())
    assert reloaded.model.layers[0].self_attn.o_proj.weight.dtype == torch.float32  # FP32 master weights


def test_enable_fp8_switches_a_loaded_model_in_place(monkeypatch):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_preset("tiny", **SMALL))
    params_before = {n: p for n, p in model.named_parameters()}
    built = Transformer(ModelConfig.from_preset("tiny", **SMALL, precision="fp8"))
    built.load_state_dict(model.state_dict())
    swapped = enable_fp8(model)
    assert swapped == sum(isinstance(m, Fp8Linear) for m in built.modules())
    assert {n: p for n, p in model.named_parameters()} == params_before  # same Parameter objects
    calls = []
    original = model_fp8.fp8_grouped_mm
    monkeypatch.setattr(model_fp8, "fp8_grouped_mm", lambda *a, **k: calls.append(1) or original(*a, **k))
    ids = torch.randint(0, 32, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(ids, labels=ids).loss, built(ids, labels=ids).loss)
    assert calls  # routed experts follow the config at call time
