"""Named presets: each reproduces a hand-computed loss on one fixed batch (docs/RL.md §9, §14)."""

import math

import pytest
import torch

from r1lab.algo import (
    ObjectiveConfig,
    get_preset,
    list_presets,
    policy_loss,
    register_preset,
)
from r1lab.config import validate
from r1lab.errors import ConfigError

D = torch.float64
# One group of two completions: rewards 1 and 0. Row 0 ratios 1.1, 1.5, 0.9; row 1 ratios 0.7, 1.0 (+ a pad).
REWARDS = torch.tensor([1.0, 0.0], dtype=D)
OLD = torch.zeros(2, 3, dtype=D)
LOGP = torch.log(torch.tensor([[1.1, 1.5, 0.9], [0.7, 1.0, 3.0]], dtype=D))
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=D)
REF = LOGP + math.log(2.0)  # k3 = 1 - log 2 on every token
K3 = 1 - math.log(2)
L_MAX = 4


def preset_loss(name: str) -> float:
    cfg = get_preset(name)
    adv = cfg.advantages(REWARDS, group_size=2)
    loss, _ = policy_loss(LOGP, OLD, adv, MASK, REF if cfg.needs_reference else None, **cfg.loss_kwargs(max_len=L_MAX))
    return loss.item()


def _a(eps: float) -> float:
    """|A| of rewards (1, 0) with Bessel std sqrt(1/2)."""
    return 0.5 / (math.sqrt(0.5) + eps)


def test_r1_paper_grpo():
    a = _a(1e-6)  # seq-mean: 1/2 [(-1.1 - 1.2 - 0.9) a / 3 + (0.8 + 1.0) a / 2] + beta * k3
    assert preset_loss("r1") == pytest.approx(0.5 * (-3.2 / 3 + 1.8 / 2) * a + 0.001 * K3, abs=1e-12)
    assert preset_loss("r1_paper") == preset_loss("r1")


def test_grpo_deepseekmath():
    a = _a(1e-6)
    assert preset_loss("grpo_deepseekmath") == pytest.approx(0.5 * (-3.2 / 3 + 1.8 / 2) * a + 0.04 * K3, abs=1e-12)


def test_dr_grpo_constant_normaliser_no_std():
    # A = +-0.5, loss summed over tokens / (B * L_max)
    assert preset_loss("dr_grpo") == pytest.approx(0.5 * (-3.2 + 1.8) / (2 * L_MAX), abs=1e-12)


def test_dapo_clip_higher_token_mean():
    a = _a(1e-6)  # 1.5 clipped at 1.28
    assert preset_loss("dapo") == pytest.approx((-1.1 - 1.28 - 0.9 + 0.8 + 1.0) * a / 5, abs=1e-12)


def test_reinforce_unclipped_token_mean():
    assert preset_loss("reinforce") == pytest.approx(0.5 * (-1.1 - 1.5 - 0.9 + 0.7 + 1.0) / 5, abs=1e-12)


def test_trl_default_eps_1e4():
    assert preset_loss("trl_default") == pytest.approx((-3.2 + 1.8) * _a(1e-4) / 5, abs=1e-12)


def test_ppo_preset_uses_critic_and_kl_in_reward():
    cfg = get_preset("ppo")
    assert cfg.uses_critic and cfg.kl_placement == "reward" and cfg.kl == "k1"
    assert cfg.loss_kwargs()["beta"] == 0.0  # KL lives in the reward, not the loss
    with pytest.raises(ValueError, match="gae"):
        cfg.advantages(REWARDS, 2)


def test_switch_table():
    table = {name: get_preset(name) for name in list_presets()}
    assert set(table) == {"r1", "grpo_deepseekmath", "dr_grpo", "dapo", "reinforce", "ppo", "trl_default"}
    assert table["dapo"].dynamic_sampling and table["dapo"].overlong_filter and table["dapo"].extra_rewards == ["overlong"]
    assert (table["dapo"].eps_low, table["dapo"].eps_high) == (0.2, 0.28)
    assert not any(table[n].needs_reference for n in ("dr_grpo", "dapo", "reinforce", "trl_default"))
    assert table["r1"].needs_reference and table["r1"].beta == 0.001
    assert all(cfg.invariant for cfg in table.values())


def test_overrides_are_validated_and_presets_are_fresh_copies():
    cfg = get_preset("r1", beta=0.0, mu=4)
    assert (cfg.beta, cfg.mu, cfg.scale) == (0.0, 4, "group")
    assert get_preset("r1").beta == 0.001
    for bad in (dict(agg="sum"), dict(advantage="vtrace"), dict(dual_clip=0.5), dict(mu=0), dict(nope=1)):
        with pytest.raises(ValueError):
            get_preset("r1", **bad)
    with pytest.raises(KeyError, match="known"):
        get_preset("grpo9")


def test_config_yaml_errors_are_one_line():
    with pytest.raises(ConfigError, match="agg"):
        validate(ObjectiveConfig, {"agg": "sum"}, "rl.yaml")


def test_register_preset(monkeypatch):
    import r1lab.algo.presets as presets

    monkeypatch.setattr(presets, "_PRESETS", dict(presets._PRESETS))
    register_preset("test_rloo_tokens", advantage="rloo", agg="token_mean")
    cfg = get_preset("test_rloo_tokens")
    assert cfg.advantages(REWARDS, 2).tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match="already"):
        register_preset("test_rloo_tokens")
