"""The r1lab objective that equals TRL's `GRPOTrainer` default objective (trl 1.x), for like-for-like runs.

TRL's `GRPOConfig` defaults (checked against the installed trl by tests/smol/test_smol_trl_parity.py):
    scale_rewards="group"           A_i = (r_i - mean_g r) / (std_g r + 1e-4), std with Bessel's correction
    loss_type="dapo"                sum of masked per-token losses / active tokens of the whole step batch
    epsilon=0.2 (epsilon_high=None) rho clipped to [0.8, 1.2]
    importance_sampling_level="token"
    use_bias_correction_kl=True     the k3 KL term is multiplied by rho (value unchanged on-policy, gradient not)
so per token  l = -min(rho*A, clip(rho, 1-eps, 1+eps)*A) + beta * rho * (exp(ref-lp) - (ref-lp) - 1).
r1lab's `trl_default` preset already has the advantage and aggregation; the KL correction is the one switch
that must be added (it matters only when beta != 0). docs/TRL.md maps every other GRPOConfig option.
"""

from __future__ import annotations

from typing import Any

TRL_PRESET = "trl_default"


def trl_objective(beta: float = 0.0, mu: int = 1, epsilon: float = 0.2) -> dict[str, Any]:
    """`{"preset": ..., "objective": {...}}` for an `RLConfig` that computes TRL's default GRPO loss."""
    return {"preset": TRL_PRESET,
            "objective": {"beta": beta, "mu": mu, "eps_low": epsilon, "eps_high": epsilon,
                          "kl": "k3", "kl_ratio_correction": True}}  # TRL's default; no effect when beta == 0
