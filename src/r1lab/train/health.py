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
    """Counts consecutive bad steps of the stage's metrics (RL_REFERENCE §15) and reports alarms once.

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
