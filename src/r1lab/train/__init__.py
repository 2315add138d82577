"""Training: one shared loop (`r1lab.train.core.loop.train`) and the stages built on it.

Stages: `pretrain(cfg)` (r1lab.train.stages.pretrain), `sft(cfg)` (r1lab.train.stages.sft), `distill(cfg)`
(r1lab.train.stages.distill); RL and rejection sampling live in r1lab.train.rl / r1lab.sampling.rejection.
"""

from r1lab.train.core.config import TrainConfig
from r1lab.train.core.health import HealthAlarm
from r1lab.train.core.loop import FunctionStage, Stage, TrainResult, train

__all__ = ["FunctionStage", "HealthAlarm", "Stage", "TrainConfig", "TrainResult", "train"]
