"""Per-token KL estimators between the policy and a frozen reference (Schulman, "Approximating KL", 2020).

With log r = lp_ref - lp and samples from the policy:
  k1 = -log r           unbiased, high variance, can be negative (in-reward penalty)
  k2 = (log r)^2 / 2    biased, >= 0; its gradient is the on-policy gradient of KL(policy || ref)
  k3 = r - 1 - log r    unbiased, >= 0, zero iff lp == lp_ref (GRPO / R1 in-loss KL)
k3 is computed as verl's `low_var_kl`: log r clamped to [-20, 20] and the value to [-10, 10], so one
token with a wild ratio cannot blow up the loss.
"""

from __future__ import annotations

from typing import Literal

import torch

KLKind = Literal["k1", "k2", "k3"]

LOG_RATIO_CLAMP = 20.0
K3_CLAMP = 10.0


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: KLKind = "k3") -> torch.Tensor:
    """Elementwise KL estimate; same shape as `logp`. Gradients flow through `logp` only if it requires them."""
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r.square()
    if kind == "k3":
        log_r = log_r.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        return (torch.exp(log_r) - 1.0 - log_r).clamp(-K3_CLAMP, K3_CLAMP)
    raise ValueError(f"kl must be 'k1', 'k2' or 'k3', got {kind!r}")
