"""The shared loop: schedule, accumulation invariance, clipping, parameter groups, logging, alarms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from train_toy import Toy, batch_for, mse, toy_stage

from r1lab.train import FunctionStage, HealthAlarm, TrainConfig, train
from r1lab.train.core.checkpoint import checkpoint_step
from r1lab.train.core.loop import (
    accumulate_gradients,
    aggregate_metrics,
    clip_gradients,
)
from r1lab.train.core.metrics_log import read_metrics
from r1lab.train.core.optim import decay_split
from r1lab.train.core.schedule import lr_factor


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(out_dir=str(tmp_path / "stage"), max_steps=10, lr=1e-2, progress=False, tensorboard=False)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------- schedule
def test_warmup_is_linear_then_cosine_reaches_min_ratio():
    f = [lr_factor(s, 12, warmup_steps=2, kind="cosine", min_ratio=0.1) for s in range(12)]
    assert f[0] == pytest.approx(1 / 3) and f[1] == pytest.approx(2 / 3)
    assert f[2] == pytest.approx(1.0)                   # first step after warmup: the peak
    assert f[11] == pytest.approx(0.1)                  # last step: the floor
    mid = 2 + 9 / 2                                     # halfway through the decay: (1 + 0.1) / 2
    assert lr_factor(int(mid), 12, 2, "cosine", 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    assert all(a >= b for a, b in zip(f[2:], f[3:]))


def test_linear_and_constant_schedules():
    assert lr_factor(5, 11, 0, "linear", 0.0) == pytest.approx(0.5)
    assert all(lr_factor(s, 10, 0, "constant") == 1.0 for s in range(10))


# ---------------------------------------------------------------- accumulation
def _grads(model, stage, micro_batches):
    model.zero_grad(set_to_none=True)
    accumulate_gradients(model, stage, micro_batches)
    return [p.grad.clone() for p in model.parameters()]


def test_accumulation_matches_one_big_batch_for_equal_and_unequal_splits():
    torch.manual_seed(0)
    model = Toy().double()
    full = {k: v.double() for k, v in batch_for(0, 0, rows=12).items()}

    def split(sizes):
        out, i = [], 0
        for n in sizes:
            out.append({k: v[i:i + n] for k, v in full.items()})
            i += n
        return out

    per_row = FunctionStage(batch_for, mse, weight=lambda b: b["x"].shape[0])
    reference = _grads(model, per_row, [full])
    for sizes in ([3, 3, 3, 3], [6, 6], [1, 4, 7]):
        for a, b in zip(reference, _grads(model, per_row, split(sizes))):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # without weights, equal splits are still the plain mean of micro-batch means = the big-batch mean
    unweighted = FunctionStage(batch_for, mse)
    for a, b in zip(reference, _grads(model, unweighted, split([4, 4, 4]))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_metrics_aggregate_by_weight_sum_and_max():
    agg = aggregate_metrics([{"loss": 1.0, "num_tokens": 3, "pred_max": 2.0},
                             {"loss": 4.0, "num_tokens": 5, "pred_max": 7.0}], [1.0, 3.0])
    assert agg == {"loss": (1.0 + 12.0) / 4, "num_tokens": 8, "pred_max": 7.0}


# ---------------------------------------------------------------- clipping and groups
def test_clipping_reports_preclip_norm_and_scales_to_max():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert clip_gradients([a, b], max_norm=1.0) == pytest.approx(5.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.0]))
    torch.testing.assert_close(b.grad, torch.tensor([0.8]))
    assert clip_gradients([a, b], max_norm=None) == pytest.approx(1.0)      # no clipping: norm only


def test_norms_biases_and_embeddings_are_not_decayed():
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 3), nn.LayerNorm(3))
    decay, no_decay = decay_split([model])
    assert [tuple(p.shape) for p in decay] == [(3, 3)]
    assert len(no_decay) == 4                          # embedding, linear bias, norm weight + bias
    decay, _ = decay_split([model], decay_embeddings=True)
    assert len(decay) == 2


def test_fused_adamw_takes_the_same_steps_as_foreach(tmp_path):
    """The two kernels are one update rule: 20 steps of the toy end at the same weights (float rounding)."""
    finals = []
    for impl in ("foreach", "fused"):
        torch.manual_seed(0)
        model = Toy()
        train(model, toy_stage(), cfg(tmp_path / impl, max_steps=20, lr=0.05, weight_decay=0.1, adamw_impl=impl))
        finals.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*finals):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    assert not all(torch.allclose(a, p) for a, p in zip(finals[0], Toy().parameters()))  # it did train


def test_unknown_adamw_kernel_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="adamw_impl"):
        cfg(tmp_path, adamw_impl="apex")


# ---------------------------------------------------------------- the loop end to end
def test_loss_falls_and_every_step_is_logged(tmp_path):
    torch.manual_seed(0)
    result = train(Toy(), toy_stage(), cfg(tmp_path, max_steps=40, grad_accum=2, warmup_steps=3, lr=0.1,
                                           tensorboard=True))
    rows = read_metrics(tmp_path / "stage")
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"]
    assert rows[0]["num_tokens"] == 8 and rows[0]["tokens_per_s"] > 0
    assert rows[0]["learning_rate"] == pytest.approx(0.1 / 4)
    assert result.step == 40 and checkpoint_step(tmp_path / "stage") == 40
    assert any((tmp_path / "stage" / "tb").iterdir())


def test_bf16_autocast_runs(tmp_path):
    torch.manual_seed(0)
    result = train(Toy(), toy_stage(), cfg(tmp_path, max_steps=3, precision="bf16"))
    assert math.isfinite(result.metrics["loss"])


def test_after_step_metrics_are_logged(tmp_path):
    stage = toy_stage(after=lambda model, step, m: {"custom": step * 2.0})
    train(Toy(), stage, cfg(tmp_path, max_steps=3))
    assert [r["custom"] for r in read_metrics(tmp_path / "stage")] == [2.0, 4.0, 6.0]


class _StopsAt(FunctionStage):
    """A toy stage that asks to stop once step `at` is done, and keeps that decision in its state."""

    def __init__(self, at: int):
        super().__init__(batch_for, mse, after=self._after)
        self.at, self.stopped = at, False

    def _after(self, model, step, metrics):
        self.stopped = self.stopped or step >= self.at

    def should_stop(self):
        return "gate reached" if self.stopped else None

    def state_dict(self):
        return {"stopped": self.stopped}

    def load_state_dict(self, state):
        self.stopped = state["stopped"]


def test_a_stage_that_asks_to_stop_ends_early_with_a_checkpoint_and_a_resume_ends_at_once(tmp_path):
    result = train(Toy(), _StopsAt(4), cfg(tmp_path, max_steps=10))
    assert result.step == 4 and checkpoint_step(tmp_path / "stage") == 4
    assert [r["step"] for r in read_metrics(tmp_path / "stage")] == [1, 2, 3, 4]
    again = train(Toy(), _StopsAt(99), cfg(tmp_path, max_steps=10, resume=True))  # the decision is restored
    assert again.step == 4 and checkpoint_step(tmp_path / "stage") == 4
    assert len(read_metrics(tmp_path / "stage")) == 4


# ---------------------------------------------------------------- health alarms
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    def loss(model, batch):
        l, m = mse(model, batch)
        return (l * float("nan") if batch["step"] == 6 else l), m

    def batches(step, micro):
        return {**batch_for(step, micro), "step": step}

    stage = FunctionStage(batches, loss)
    torch.manual_seed(0)
    with pytest.raises(HealthAlarm, match=r"step 7: loss is nan.*step 4\)"):
        train(Toy(), stage, cfg(tmp_path, save_every=4))
    assert checkpoint_step(tmp_path / "stage") == 4
    assert [r["step"] for r in read_metrics(tmp_path / "stage")] == [1, 2, 3, 4, 5, 6]


def test_nan_gradient_stops_before_the_update(tmp_path):
    def loss(model, batch):
        l, m = mse(model, batch)
        w = model.head.weight
        return l + (w - w.detach()).abs().sqrt().sum() * 0, m   # d sqrt(|0|) = inf, times 0 = nan

    model = Toy()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(HealthAlarm, match="step 1: gradient norm is nan.*no checkpoint"):
        train(model, FunctionStage(batch_for, loss), cfg(tmp_path))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def _entropy_stage(values):
    def loss(model, batch):
        l, m = mse(model, batch)
        return l, {**m, "entropy": values[batch["step"]]}
    return FunctionStage(lambda s, i: {**batch_for(s, i), "step": s}, loss)


def test_entropy_collapse_warns_once_after_patience(tmp_path):
    values = [1.0, 0.5, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001]
    train(Toy(), _entropy_stage(values), cfg(tmp_path, max_steps=8, alarm_patience=3, entropy_floor=0.01))
    alarms = (tmp_path / "stage" / "alarms.jsonl").read_text().splitlines()
    assert len(alarms) == 1 and '"step": 5' in alarms[0] and "entropy collapse" in alarms[0]


def test_zero_reward_spread_can_stop_the_run(tmp_path):
    stage = toy_stage(after=lambda model, step, m: {"frac_reward_zero_std": 1.0})
    with pytest.raises(HealthAlarm, match="step 2: no learning signal"):
        train(Toy(), stage, cfg(tmp_path, alarm_patience=2, alarm_action="stop"))
    assert checkpoint_step(tmp_path / "stage") == 2
