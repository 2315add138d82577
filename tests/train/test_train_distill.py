"""Distillation: the KL term in closed form, its gradient, and a run against a teacher."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from train_hf_toy import addition_records, tiny_llama, tiny_tokenizer

from r1lab.errors import ConfigError
from r1lab.train import TrainConfig
from r1lab.train.core.metrics_log import read_metrics
from r1lab.train.stages.distill import DistillConfig, distill, forward_kl
from r1lab.train.stages.sft import SFTDataConfig


def test_forward_kl_closed_form_two_tokens():
    teacher = torch.tensor([[0.0, 0.0]])                 # p = (1/2, 1/2)
    student = torch.tensor([[0.0, math.log(3.0)]])       # q = (1/4, 3/4)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert forward_kl(student, teacher).item() == pytest.approx(expected, rel=1e-6)
    # temperature 2 halves the logits: q = (1/(1+sqrt3), sqrt3/(1+sqrt3)), and the T^2 factor is 4
    r = math.sqrt(3.0)
    q = (1 / (1 + r), r / (1 + r))
    expected_t2 = 4 * (0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1]))
    assert forward_kl(student, teacher, temperature=2.0).item() == pytest.approx(expected_t2, rel=1e-6)


def test_forward_kl_is_zero_on_equal_logits_nonnegative_and_has_gradient_t_times_q_minus_p():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    assert torch.allclose(forward_kl(t, t), torch.zeros(5, dtype=torch.float32), atol=1e-6)
    assert (forward_kl(s, t) >= 0).all()
    T = 1.7
    s.requires_grad_(True)
    forward_kl(s, t, T).sum().backward()
    p, q = torch.softmax(t / T, -1), torch.softmax(s.detach() / T, -1)
    torch.testing.assert_close(s.grad, (T * (q - p)).to(s.grad.dtype), rtol=1e-5, atol=1e-6)


def _cfg(tmp_path, **kw):
    return DistillConfig(data=SFTDataConfig(max_len=64, batch_size=4),
                         train=TrainConfig(out_dir=str(tmp_path / "distill"), lr=1e-2, max_steps=6,
                                           progress=False, tensorboard=False), **kw)


def test_logit_distillation_from_an_identical_teacher_starts_at_zero_kl(tmp_path):
    student = tiny_llama(seed=3)
    teacher = copy.deepcopy(student)
    tok = tiny_tokenizer()
    distill(_cfg(tmp_path, kd_weight=0.5, temperature=2.0), records=addition_records(16), model=student,
            tokenizer=tok, teacher=teacher, teacher_tokenizer=tok)
    rows = read_metrics(tmp_path / "distill")
    assert rows[0]["kd_kl"] == pytest.approx(0.0, abs=1e-6)
    assert rows[0]["loss"] == pytest.approx(0.5 * rows[0]["ce_loss"], rel=1e-5)
    assert rows[-1]["kd_kl"] > 0                          # the student moved, the frozen teacher did not
    assert all(not p.requires_grad for p in teacher.parameters())


def test_logit_distillation_refuses_different_tokenizers(tmp_path):
    other = tiny_tokenizer()
    other.add_tokens(["extra"])
    with pytest.raises(ConfigError, match="different tokenizers"):
        distill(_cfg(tmp_path, kd_weight=0.5), records=addition_records(4), model=tiny_llama(),
                tokenizer=tiny_tokenizer(), teacher=tiny_llama(), teacher_tokenizer=other)


def test_plain_distillation_is_sft_on_traces(tmp_path):
    result = distill(_cfg(tmp_path), records=addition_records(16), model=tiny_llama(), tokenizer=tiny_tokenizer())
    rows = read_metrics(tmp_path / "distill")
    assert "kd_kl" not in rows[0] and result.step == 6
