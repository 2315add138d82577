"""Distillation (R1 §2.4): SFT of a student on verified teacher traces, optionally with logit distillation.

Plain distillation is SFT on the rejection-sampled JSONL (`prompt`, `completion`) — what R1 did for its
Qwen/Llama students. With `teacher` set and `kd_weight > 0`, and only when teacher and student share a
tokenizer, the loss becomes `(1 - kd_weight) * CE + kd_weight * T^2 * KL(p_teacher^T || p_student^T)`,
the forward KL at temperature T averaged over the completion tokens (Hinton et al. 2015).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from r1lab.errors import ConfigError
from r1lab.sources import load_model
from r1lab.train.core.loop import TrainResult, train
from r1lab.train.stages.lm_loss import causal_lm_loss, labelled_logits
from r1lab.train.stages.sft import SFTConfig, SFTStage, prepare_sft


class DistillConfig(SFTConfig):
    """SFTConfig (`model` is the student, `data.path` the teacher's verified traces) plus logit distillation."""

    teacher: str | None = Field(None, description="teacher checkpoint dir / source name for logit distillation")
    kd_weight: float = Field(0.0, ge=0, le=1, description="weight of the KL term (0: plain SFT on the traces)")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of the KL term")


def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
               ) -> torch.Tensor:
    """Per-position `T^2 * KL(softmax(teacher/T) || softmax(student/T))`, logits `[N, V]` -> `[N]`.

    The T^2 factor keeps the gradient scale independent of T (the soft targets' gradients shrink as 1/T^2).
    """
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return (t.exp() * (t - s)).sum(-1) * temperature**2


def same_tokenizer(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a.get_vocab() == b.get_vocab()


class DistillStage(SFTStage):
    """SFT rows; adds the teacher's KL term when a teacher is attached."""

    def __init__(self, base: SFTStage, teacher: Any = None, kd_weight: float = 0.0, temperature: float = 1.0):
        self.__dict__.update(base.__dict__)
        self.teacher, self.kd_weight, self.temperature = teacher, kd_weight, temperature
        if teacher is not None:
            teacher.eval().requires_grad_(False)

    def loss_fn(self, model, batch: dict[str, torch.Tensor]):
        ids, labels, positions = batch["input_ids"], batch["labels"], batch.get("positions")
        if self.teacher is None or self.kd_weight == 0:
            return causal_lm_loss(model, ids, labels, positions)
        ce, metrics, student = causal_lm_loss(model, ids, labels, positions, return_logits=True)
        self.teacher.to(ids.device)
        with torch.no_grad():
            teacher = labelled_logits(self.teacher, ids, labels, positions)
        vocab = min(student.shape[-1], teacher.shape[-1], len(self.tokenizer))  # drop embedding padding
        kl = forward_kl(student[:, :vocab], teacher[:, :vocab], self.temperature)
        kl_mean = kl.mean() if kl.numel() else ce * 0.0
        loss = (1.0 - self.kd_weight) * ce + self.kd_weight * kl_mean
        return loss, {**metrics, "kd_kl": kl_mean.detach()}


def distill(cfg: DistillConfig, *, records: list[dict] | None = None, model: Any = None, tokenizer: Any = None,
            teacher: Any = None, teacher_tokenizer: Any = None) -> TrainResult:
    model, base = prepare_sft(cfg, records=records, model=model, tokenizer=tokenizer)
    if teacher is None and cfg.teacher is not None and cfg.kd_weight > 0:
        teacher, teacher_tokenizer = load_model(cfg.teacher)
    if teacher is not None and cfg.kd_weight > 0:
        if teacher_tokenizer is not None and not same_tokenizer(base.tokenizer, teacher_tokenizer):
            raise ConfigError(f"distill: teacher {cfg.teacher or 'model'} and the student use different "
                              "tokenizers; logit distillation needs a shared one (set kd_weight=0)")
    stage = DistillStage(base, teacher, cfg.kd_weight, cfg.temperature)
    return train(model, stage, cfg.train, run_config={"stage": "distill", **cfg.model_dump(mode="json")})
