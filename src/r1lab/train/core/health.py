"""Run-health alarms: NaN/inf always stop the run; entropy collapse and zero reward spread warn or stop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from r1lab.errors import R1labError


class HealthAlarm(R1labError):
    """Training stopped because the run is unhealthy; the message says what happened and what was kept."""


def first_nonfinite(values: dict[str, float]) -> str | None:
    """Name of the first metric that is NaN or infinite, else None."""
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            return k
    return None


@dataclass
class SoftAlarms:
    """Counts consecutive bad steps of the stage's metrics (docs/RL.md §15) and reports alarms once.

    - entropy collapse: metric `entropy` below `entropy_floor`;
    - no learning signal: metric `frac_reward_zero_std` equal to 1 (every group has zero reward spread).
    """

    entropy_floor: float | None
    patience: int
    _streak: dict[str, int] = field(default_factory=dict)

    def check(self, metrics: dict[str, float]) -> list[str]:
        bad = {
            "entropy_collapse": self.entropy_floor is not None and "entropy" in metrics
            and metrics["entropy"] < self.entropy_floor,
            "zero_reward_spread": metrics.get("frac_reward_zero_std", 0.0) >= 1.0,
        }
        fired = []
        for name, is_bad in bad.items():
            self._streak[name] = self._streak.get(name, 0) + 1 if is_bad else 0
            if self._streak[name] == self.patience:
                fired.append(self._describe(name, metrics))
        return fired

    def _describe(self, name: str, metrics: dict[str, float]) -> str:
        if name == "entropy_collapse":
            return (f"entropy collapse: entropy {metrics['entropy']:.4g} < {self.entropy_floor} for "
                    f"{self.patience} steps (raise eps_high or lower the LR)")
        return (f"no learning signal: every group had zero reward spread for {self.patience} steps "
                f"(adjust task difficulty or enable dynamic sampling)")


@dataclass
class DivergenceAlarms:
    """Hard alarms for a run that has diverged without producing NaN (each stops the stage):

    - the next-token CE (`ce_loss`, LM stages) averaged over the last `window` steps is above ln(vocab), a
      uniform guess, after 2 x `window` steps; or above `rise_factor` x its mean over the first `window` steps;
    - the gradient norm is exactly 0 for `window` steps while the loss is not 0 (a dead network: an
      all-zero-advantage RL batch has loss 0 and is the soft "no learning signal" alarm instead);
    - the gradient norm exceeds `explode_factor` x the median of the first `window` steps for `window` steps.
    `window` 0 switches them all off.
    """

    window: int
    rise_factor: float | None
    explode_factor: float | None
    vocab_size: int | None
    _ce: list[float] = field(default_factory=list)
    _grad: list[float] = field(default_factory=list)
    _loss: list[float] = field(default_factory=list)

    def check(self, metrics: dict[str, float]) -> str | None:
        w = self.window
        if w <= 0:
            return None
        self._loss.append(float(metrics["loss"]))
        self._grad.append(float(metrics["grad_norm"]))
        if "ce_loss" in metrics:
            self._ce.append(float(metrics["ce_loss"]))
        recent_grads = self._grad[-w:]
        if len(self._grad) >= w and all(g == 0.0 for g in recent_grads) and self._loss[-1] != 0.0:
            return (f"gradient norm 0 for {w} steps while the loss is {self._loss[-1]:.4g}: the model has "
                    f"diverged (lower train.lr)")
        if self.explode_factor is not None and len(self._grad) >= 2 * w:
            early = sorted(self._grad[:w])[w // 2]
            if early > 0 and min(recent_grads) > self.explode_factor * early:
                return (f"gradient norm above {self.explode_factor:g} x its early median ({early:.3g}) for {w} "
                        f"steps (now {recent_grads[-1]:.3g}): training is diverging (lower train.lr)")
        if len(self._ce) >= 2 * w:
            recent = sum(self._ce[-w:]) / w
            early = sum(self._ce[:w]) / w
            if self.vocab_size and recent > math.log(self.vocab_size):
                return (f"loss {recent:.4g} (mean of the last {w} steps) is above {math.log(self.vocab_size):.4g}, "
                        f"a uniform guess over {self.vocab_size} tokens: the model has diverged (lower train.lr)")
            if self.rise_factor is not None and early > 0 and recent > self.rise_factor * early:
                return (f"loss {recent:.4g} (mean of the last {w} steps) rose above {self.rise_factor:g} x its "
                        f"early mean {early:.4g}: training is diverging (lower train.lr)")
        return None
