"""How the RL stage batches a rollout: micro-batch invariance, mu passes over stored old log-probs, the frozen
reference, overlong filtering and dynamic sampling (docs/RL.md §14)."""

from __future__ import annotations

import pytest
import torch
from rl_toy import REWARDS, char_tokenizer, config, records, tiny_llama, tiny_r1lab

from r1lab.train.core.loop import accumulate_gradients
from r1lab.train.rl import RLStage, frozen_copy


def _stage(tmp_path, grad_accum, preset, make_model=tiny_llama, **over):
    tok = char_tokenizer()
    model = make_model(len(tok))
    cfg = config(tmp_path / f"s{grad_accum}", preset=preset, train={"grad_accum": grad_accum}, **over)
    obj = cfg.objective_config
    return RLStage(cfg, model, tok, records(), reward_fns=REWARDS,
                   reference=frozen_copy(model) if obj.needs_reference else None), model


@pytest.mark.parametrize("preset,make_model", [("r1", tiny_llama), ("dapo", tiny_llama), ("dr_grpo", tiny_r1lab)])
def test_micro_batching_does_not_change_the_update(tmp_path, preset, make_model):
    grads = []
    for accum in (1, 4):
        stage, model = _stage(tmp_path, accum, preset, make_model)
        batches = [stage.next_batch(0, i) for i in range(accum)]
        metrics = accumulate_gradients(model, stage, batches)
        grads.append([p.grad.clone() for p in model.parameters()])
        assert metrics["num_tokens"] == stage.buffer["comp_mask"].sum()
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_mu_passes_reuse_the_stored_old_logprobs(tmp_path):
    tok = char_tokenizer()
    cfg = config(tmp_path / "mu", preset="dapo", objective={"mu": 2, "dynamic_sampling": False}, num_rollouts=1)
    stage = RLStage(cfg, tiny_llama(len(tok)), tok, records(), reward_fns=REWARDS)
    from r1lab.train.core.loop import train

    res = train(stage.model, stage, cfg.train)
    first, second = res.history
    assert abs(first["ratio_max"] - 1) < 1e-5 and abs(first["ratio_min"] - 1) < 1e-5  # pi_old is pi_theta
    assert max(abs(second["ratio_max"] - 1), abs(second["ratio_min"] - 1)) > 1e-3  # second pass is off-policy
    assert first["rollout"] == second["rollout"] == 0  # one rollout served both passes
    assert first["logprob_mismatch/mean"] < 1e-4  # the engine's log-probs match the trainer's


def test_reference_is_frozen_or_absent(tmp_path):
    stage, _ = _stage(tmp_path, 1, "r1")
    assert stage.reference is not None and not any(p.requires_grad for p in stage.reference.parameters())
    stage, _ = _stage(tmp_path, 1, "dapo")
    assert stage.reference is None  # beta == 0: the reference model is never built nor run
    stage.next_batch(0, 0)
    assert "ref_logp" not in stage.buffer


def test_overlong_filtering_and_dynamic_sampling(tmp_path):
    tok = char_tokenizer()
    cfg = config(tmp_path / "dapo", preset="dapo", rewards=[{"name": "all_a"}], rollout={"max_new_tokens": 3},
                 objective={"max_sampling_rounds": 20, "extra_rewards": []})
    stage = RLStage(cfg, tiny_llama(len(tok)), tok, records(), reward_fns=REWARDS)
    stage.next_batch(0, 0)
    buf, G = stage.buffer, cfg.rollout.group_size
    assert buf["rewards"].numel() == cfg.rollout.prompts_per_step * G  # batch kept full
    groups = buf["rewards"].view(-1, G)
    assert (groups.amax(1) != groups.amin(1)).all()  # no zero-spread group
    assert stage.stats["frac_reward_zero_std"] == 0.0 and stage.stats["dynamic_sampling/rounds"] >= 1
    truncated = buf["truncated"]
    assert truncated.any()
    assert buf["comp_mask"][truncated].sum() == 0 and (buf["comp_mask"][~truncated].sum(1) > 0).all()
