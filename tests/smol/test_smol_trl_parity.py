"""r1lab's GRPO loss under `trl_objective(beta=0.04)` is TRL's documented default GRPO objective.

Configuration (bench_grpo_vs_trl): G completions per prompt, beta 0.04, mu 1, epsilon 0.2, TRL defaults
loss_type="dapo", scale_rewards="group", use_bias_correction_kl=True. TRL documents (trl 1.x, GRPOConfig):
    A_i  = (r_i - mean(r_group)) / (std(r_group) + 1e-4)        (std with Bessel's correction, `nanstd`)
    rho  = exp(lp - lp_old)
    l_t  = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + beta * rho * (exp(ref - lp) - (ref - lp) - 1)
    loss = sum(mask * l) / sum(mask)                             ("dapo": active tokens of the whole batch)
Each test feeds identical hand-built tensors (log-probs, old and reference log-probs, rewards, a ragged mask)
to r1lab and to the formula written out here, and, when trl is installed, to TRL's own `_compute_loss`;
values and gradients with respect to the policy log-probs must agree.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from r1lab.algo import get_preset, policy_loss
from r1lab.recipe.trl_objective import trl_objective

BETA, EPS, G = 0.04, 0.2, 4


def objective(beta: float = BETA):
    spec = trl_objective(beta=beta, mu=1, epsilon=EPS)
    return get_preset(spec["preset"], **spec["objective"])


def inputs(off_policy: bool = True) -> dict[str, torch.Tensor]:
    """8 completions (2 groups of 4), up to 6 tokens, ragged; old log-probs far enough to hit both clips."""
    g = torch.Generator().manual_seed(0)
    B, T = 2 * G, 6
    logp = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3 - 0.05
    old = logp + (torch.rand(B, T, generator=g, dtype=torch.float64) - 0.5) * 0.8 if off_policy else logp.clone()
    ref = logp + (torch.rand(B, T, generator=g, dtype=torch.float64) - 0.5) * 1.0
    lengths = torch.tensor([6, 3, 5, 1, 4, 6, 2, 5])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float64)
    rewards = torch.tensor([1.0, 0.0, 0.5, 1.5, 0.0, 0.25, 1.0, 1.0], dtype=torch.float64)
    return {"logp": logp, "old": old, "ref": ref, "mask": mask, "rewards": rewards}


def documented_advantages(rewards: torch.Tensor) -> torch.Tensor:
    grouped = rewards.view(-1, G)
    mean = grouped.mean(dim=1, keepdim=True)
    std = ((grouped - mean).square().sum(dim=1, keepdim=True) / (G - 1)).sqrt()
    return ((grouped - mean) / (std + 1e-4)).reshape(-1)


def documented_loss(logp, old, ref, adv, mask) -> torch.Tensor:
    rho = torch.exp(logp - old)
    a = adv[:, None]
    pg = -torch.minimum(rho * a, rho.clamp(1 - EPS, 1 + EPS) * a)
    kl = torch.exp(ref - logp) - (ref - logp) - 1
    per_token = pg + BETA * rho * kl
    return (per_token * mask).sum() / mask.sum()


def r1lab_loss(logp, old, ref, adv, mask) -> torch.Tensor:
    loss, _ = policy_loss(logp, old, adv, mask, ref, **objective().loss_kwargs(max_len=logp.shape[1]))
    return loss


def value_and_grad(fn, x: dict, adv: torch.Tensor, on_policy: bool = False):
    logp = x["logp"].clone().requires_grad_(True)
    old = logp.detach() if on_policy else x["old"]
    loss = fn(logp, old, x["ref"], adv, x["mask"])
    (grad,) = torch.autograd.grad(loss, logp)
    return loss.detach(), grad


def test_advantages_are_the_documented_group_scaling():
    x = inputs()
    adv = objective().advantages(x["rewards"], G)
    torch.testing.assert_close(adv, documented_advantages(x["rewards"]), rtol=1e-12, atol=1e-12)
    # a group of equal rewards carries no signal under both definitions
    flat = torch.tensor([1.0] * G + [0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert objective().advantages(flat, G)[:G].abs().max() == 0
    assert documented_advantages(flat)[:G].abs().max() == 0


@pytest.mark.parametrize("on_policy", [False, True], ids=["off_policy_clipped", "on_policy_mu1"])
def test_loss_and_gradient_equal_the_documented_formula(on_policy):
    x = inputs(off_policy=not on_policy)
    adv = documented_advantages(x["rewards"])
    ours, ours_grad = value_and_grad(r1lab_loss, x, adv, on_policy)
    ref, ref_grad = value_and_grad(documented_loss, x, adv, on_policy)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-10, atol=1e-12)
    assert ours_grad[x["mask"] == 0].abs().max() == 0  # padding never moves the policy
    if not on_policy:  # the inputs do exercise the clip (otherwise the test would not cover it)
        rho = torch.exp(x["logp"] - x["old"])
        assert bool(((rho < 1 - EPS) | (rho > 1 + EPS))[x["mask"] > 0].any())


def test_kl_correction_changes_the_gradient_not_the_on_policy_value():
    """Why `kl_ratio_correction` must be on: on-policy rho == 1, yet d(rho * KL)/d lp != d KL / d lp."""
    x = inputs(off_policy=False)
    adv = documented_advantages(x["rewards"])
    spec = trl_objective(beta=BETA)
    plain = get_preset(spec["preset"], **{**spec["objective"], "kl_ratio_correction": False})

    def uncorrected(logp, old, ref, a, mask):
        return policy_loss(logp, old, a, mask, ref, **plain.loss_kwargs(max_len=logp.shape[1]))[0]

    v1, g1 = value_and_grad(r1lab_loss, x, adv, on_policy=True)
    v0, g0 = value_and_grad(uncorrected, x, adv, on_policy=True)
    torch.testing.assert_close(v1, v0)
    # d(rho * KL)/d lp - dKL/d lp = KL * d rho/d lp = KL on-policy, per token, over the token normaliser
    kl = torch.exp(x["ref"] - x["logp"]) - (x["ref"] - x["logp"]) - 1
    torch.testing.assert_close(g1 - g0, BETA * kl * x["mask"] / x["mask"].sum(), rtol=1e-9, atol=1e-12)
    assert (g1 - g0).abs().max() > 0


# ---- against TRL's own code (skipped when trl is not installed: pip install 'r1lab[bench]') -----------------
def trl_trainer_stub(args):
    """The attributes `GRPOTrainer._compute_loss` reads, set from a real GRPOConfig as its __init__ does."""
    identity = SimpleNamespace(num_processes=1, sync_gradients=True, gather=lambda t: t,
                               gather_for_metrics=lambda t: t, reduce=lambda t, reduction="sum": t)
    return SimpleNamespace(
        args=args, beta=args.beta, loss_type=args.loss_type, epsilon_low=args.epsilon,
        epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        importance_sampling_level=args.importance_sampling_level,
        off_policy_mask_threshold=args.off_policy_mask_threshold, top_entropy_quantile=args.top_entropy_quantile,
        use_vllm=args.use_vllm, vllm_importance_sampling_correction=args.vllm_importance_sampling_correction,
        _entropy_bonus_enabled=args.entropy_coef != 0.0 or args.use_adaptive_entropy, aux_loss_enabled=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1, accelerator=identity,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )


@pytest.fixture(scope="module")
def trl_grpo(tmp_path_factory):
    pytest.importorskip("trl")
    from trl import GRPOConfig
    from trl.trainer.grpo_trainer import GRPOTrainer

    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("trl")), beta=BETA, num_generations=G,
                      per_device_train_batch_size=2 * G, report_to=[], use_cpu=True)
    return args, GRPOTrainer


def test_trl_defaults_are_what_trl_objective_assumes(trl_grpo):
    args, _ = trl_grpo
    assert (args.loss_type, args.scale_rewards, args.importance_sampling_level) == ("dapo", "group", "token")
    assert args.epsilon == EPS and args.epsilon_high is None and args.delta is None
    assert args.use_bias_correction_kl is True and args.num_iterations == 1
    assert args.top_entropy_quantile == 1.0 and args.entropy_coef == 0.0 and args.mask_truncated_completions is False


@pytest.mark.parametrize("on_policy", [False, True], ids=["off_policy_clipped", "on_policy_mu1"])
def test_loss_and_gradient_equal_trl_compute_loss(trl_grpo, on_policy):
    args, GRPOTrainer = trl_grpo
    x = inputs(off_policy=not on_policy)
    adv = documented_advantages(x["rewards"])
    B, T = x["logp"].shape

    def trl_loss(logp, old, ref, a, mask):
        stub = trl_trainer_stub(args)
        stub._get_per_token_logps_and_entropies = lambda *_, **__: (logp, torch.zeros_like(logp), None)
        batch = {"prompt_ids": torch.ones(B, 1, dtype=torch.long), "prompt_mask": torch.ones(B, 1, dtype=torch.long),
                 "completion_ids": torch.ones(B, T, dtype=torch.long), "completion_mask": mask,
                 "advantages": a, "ref_per_token_logps": ref,
                 "num_items_in_batch": mask.sum()}
        if not on_policy:
            batch["old_per_token_logps"] = old
        return GRPOTrainer._compute_loss(stub, None, batch)

    theirs, theirs_grad = value_and_grad(trl_loss, x, adv, on_policy)
    ours, ours_grad = value_and_grad(r1lab_loss, x, adv, on_policy)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-10, atol=1e-12)


def test_advantages_equal_trl_nanstd_scaling(trl_grpo):
    from trl.trainer.utils import nanstd

    r = inputs()["rewards"]
    grouped = r.view(-1, G)
    theirs = ((grouped - grouped.mean(1, keepdim=True)) / (nanstd(grouped, dim=1).view(-1, 1) + 1e-4)).reshape(-1)
    # trl's nanstd applies Bessel's factor in float32 (count / (count - 1) of int counts): float32-level agreement
    torch.testing.assert_close(objective().advantages(r, G), theirs.double(), rtol=1e-6, atol=1e-7)
