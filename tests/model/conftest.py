import pytest
import torch

from r1lab.model import ModelConfig, Transformer


def tiny_config(**overrides) -> ModelConfig:
    """The tiny preset shrunk for unit tests (same features: q-LoRA, groups, shared expert, MTP)."""
    base = dict(vocab_size=64, dim=64, inter_dim=96, moe_inter_dim=32, n_layers=3, kv_lora_rank=32, q_lora_rank=48,
                qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, max_seq_len=64, original_seq_len=64,
                init_std=0.1)
    base.update(overrides)
    return ModelConfig.from_preset("tiny", **base)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return Transformer(tiny_config()).eval()
