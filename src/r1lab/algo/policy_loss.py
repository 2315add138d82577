"""The clipped policy-gradient objective shared by GRPO, DAPO, Dr. GRPO, REINFORCE and PPO (docs/RL.md §2, §3, §4, §5).

Per token (minimised):
    l = max(-rho*A, -clip(rho, 1 - eps_low, 1 + eps_high)*A)      (PPO clip, clip-higher when eps_high > eps_low)
    l = min(l, -c*A) where A < 0                                  (dual clip, c > 1)
    l += beta * KL_k(policy || ref)                               (KL in the loss)
with rho = exp(clamp(lp - lp_old, -20, 20)), then aggregated by a registered scheme (`aggregation.py`).
The tokens whose gradient the clip zeroes are exactly those counted in the clip fractions.
"""

from __future__ import annotations

import torch

from r1lab.algo.aggregation import get_aggregation
from r1lab.algo.kl import LOG_RATIO_CLAMP, KLKind, kl_estimate


def _masked_mean(x: torch.Tensor, m: torch.Tensor, n: float) -> float:
    return float((x.to(m.dtype) * m).sum() / n) if n > 0 else 0.0


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    *,
    eps_low: float | None = 0.2,
    eps_high: float | None = 0.2,
    dual_clip: float | None = None,
    beta: float = 0.0,
    kl: KLKind = "k3",
    agg: str = "seq_mean",
    max_len: int | None = None,
    kl_ratio_correction: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and token-averaged metrics for one (micro-)batch.

    logp, old_logp, ref_logp, mask: [B, T] over completion tokens (mask 1 on tokens that count);
    advantages: [B] (outcome, broadcast over tokens) or [B, T] (per token, e.g. GAE).
    eps_low / eps_high = None disables that side of the clip (REINFORCE). Normalisers are those of the tensors
    given; the training loop weighs micro-batches by `Aggregation.weight` to get the step batch's loss.
    `kl_ratio_correction` multiplies the KL term by rho (TRL `use_bias_correction_kl`) for mu > 1.
    Metric names follow the shared loop's convention (`num_*` summed over micro-batches, `*_min` / `*_max`
    extremes, the rest weighted means).
    """
    if logp.shape != old_logp.shape or logp.shape != mask.shape:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask {tuple(mask.shape)} must match")
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp (the frozen reference model's log-probs)")
    dtype = logp.dtype if logp.dtype == torch.float64 else torch.float32
    logp, old_logp = logp.to(dtype), old_logp.to(dtype)
    adv = advantages.to(dtype)
    if adv.dim() == 1:
        adv = adv[:, None]
    adv = adv.expand_as(logp)
    m = mask.to(dtype)

    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)  # [B, T]; exactly 1 on-policy
    lo = None if eps_low is None else 1.0 - eps_low
    hi = None if eps_high is None else 1.0 + eps_high
    clipped_ratio = ratio if lo is None and hi is None else ratio.clamp(lo, hi)
    pg_tok = torch.maximum(-adv * ratio, -adv * clipped_ratio)
    if dual_clip is not None:
        pg_tok = torch.where(adv < 0, torch.minimum(pg_tok, -dual_clip * adv), pg_tok)
    per_token = pg_tok

    kl_tok = None
    if ref_logp is not None:
        kl_tok = kl_estimate(logp, ref_logp.to(dtype), kl)
        if beta != 0.0:
            per_token = per_token + beta * (kl_tok * ratio if kl_ratio_correction else kl_tok)

    scheme = get_aggregation(agg)
    loss = scheme.fn(per_token, mask, max_len=max_len)

    with torch.no_grad():
        n = float(m.sum())
        r = ratio.detach()
        a = adv.detach()
        never = torch.zeros_like(r, dtype=torch.bool)
        low = (r < lo) & (a < 0) if lo is not None else never
        high = (r > hi) & (a > 0) if hi is not None else never
        valid = m > 0
        metrics = {
            "num_tokens": n,
            "clip_ratio/low_mean": _masked_mean(low, m, n),
            "clip_ratio/high_mean": _masked_mean(high, m, n),
            "clip_ratio/region_mean": _masked_mean(low | high, m, n),
            "clip_ratio/dual_mean": _masked_mean((a < 0) & (r > dual_clip), m, n) if dual_clip is not None else 0.0,
            "ratio_mean": _masked_mean(r, m, n),
            "ratio_min": float(r[valid].min()) if n > 0 else 1.0,
            "ratio_max": float(r[valid].max()) if n > 0 else 1.0,
            "approx_kl_old": _masked_mean(kl_estimate(logp.detach(), old_logp, "k3"), m, n),
            "pg_loss": _masked_mean(pg_tok.detach(), m, n),
        }
        if kl_tok is not None:
            metrics["kl"] = _masked_mean(kl_tok.detach(), m, n)
    return loss, metrics
