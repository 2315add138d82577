"""ModelConfig presets/validation and the analytic parameter counts (checked against numel; 671B/37B for V3)."""

import pytest
import torch

from r1lab.errors import ConfigError
from r1lab.model import ModelConfig, Transformer
from r1lab.model.accounting import model_stats, param_counts


def test_presets_and_overrides_round_trip():
    cfg = ModelConfig.from_preset("tiny", vocab_size=1000)
    assert cfg.vocab_size == 1000 and cfg.n_layers == 4 and cfg.mtp_depth == 1
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("overrides, key", [
    ({"vocab_sise": 10}, "vocab_sise"),
    ({"n_expert_groups": 3}, "n_expert_groups"),
    ({"precision": "fp4"}, "precision"),
    ({"qk_rope_head_dim": 15}, "qk_rope_head_dim"),
    ({"n_dense_layers": 9}, "n_dense_layers"),
])
def test_bad_config_names_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        ModelConfig.from_preset("tiny", **overrides)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_preset("huge")


@pytest.mark.parametrize("preset, overrides", [
    ("tiny", {}), ("tiny", {"q_lora_rank": 0, "n_shared_experts": 2, "mtp_depth": 2}),
    ("small", {}),
])
def test_param_counts_match_the_built_model(preset, overrides):
    cfg = ModelConfig.from_preset(preset, **overrides)
    with torch.device("meta"):  # shapes only, nothing allocated
        model = Transformer(cfg)
    counts = param_counts(cfg)
    assert counts["total_params"] == model.num_parameters(include_mtp=False)
    assert counts["mtp_params"] == model.num_parameters() - model.num_parameters(include_mtp=False)
    expert = 3 * cfg.dim * cfg.moe_inter_dim
    inactive = cfg.n_moe_layers * (cfg.n_routed_experts - cfg.n_activated_experts) * expert
    assert counts["active_params"] == counts["total_params"] - inactive


def test_tiny_preset_matches_reference_table():
    counts = param_counts(ModelConfig.from_preset("tiny"))
    assert round(counts["total_params"] / 1e6, 2) == 3.96
    assert round(counts["active_params"] / 1e6, 2) == 2.19
    assert round(counts["mtp_params"] / 1e6, 2) == 1.18


def test_deepseek_v3_is_671b_total_37b_active():
    stats = model_stats(ModelConfig.from_preset("deepseek-v3"))
    assert 670e9 < stats["total_params"] < 672e9
    assert 37e9 < stats["active_params"] < 38e9
    assert 11e9 < stats["mtp_params"] < 12e9  # README_WEIGHTS: 11.5B unique MTP parameters
    # forward FLOPs per token ~ 2 x active matmul params plus attention at 4K context
    assert 2 * 36e9 < stats["forward_flops_per_token"] < 2 * 37.6e9 + stats["attention_flops_per_token"]
