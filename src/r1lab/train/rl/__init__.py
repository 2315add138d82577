"""The RL stage as three phases: collect a rollout batch (sample, score, advantages; `collect`), cut it into
micro-batches (`batch`), and the loss (`r1lab.algo.policy_loss` through `stage.RLStage.loss_fn`)."""

from r1lab.train.rl.stage import (
    RLConfig,
    RLStage,
    RolloutConfig,
    freeze,
    frozen_copy,
    rl,
    rollout_dtype,
)

__all__ = ["RLConfig", "RLStage", "RolloutConfig", "freeze", "frozen_copy", "rl", "rollout_dtype"]
