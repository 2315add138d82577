"""Training: one shared loop (`r1lab.train.loop.train`) and the stages built on it.

Stages: `pretrain(cfg)` (r1lab.train.pretrain), `sft(cfg)` (r1lab.train.sft), `distill(cfg)`
(r1lab.train.distill); RL and rejection sampling live in r1lab.train.rl / r1lab.train.rejection.
"""

from r1lab.train.config import TrainConfig
from r1lab.train.health import HealthAlarm
from r1lab.train.loop import FunctionStage, Stage, TrainResult, train

__all__ = ["FunctionStage", "HealthAlarm", "Stage", "TrainConfig", "TrainResult", "train"]
