"""Checkpoints: a resumed run equals an uninterrupted one, exactly; nothing is ever pickled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_toy import Toy, batch_for, mse, run_killable, toy_stage

from r1lab.errors import CheckpointError
from r1lab.train import TrainConfig, train
from r1lab.train.core.checkpoint import load_weights
from r1lab.train.core.metrics_log import read_metrics
from r1lab.train.core.state_io import load_state, save_state

HERE = Path(__file__).parent


class Killed(Exception):
    pass


class NoisyStage:
    """Draws from every global generator and keeps its own data cursor, so resume must restore all of them."""

    def __init__(self, kill_at: int | None = None):
        self.cursor = 0
        self.kill_at = kill_at

    def next_batch(self, step, micro):
        import random

        batch = batch_for(self.cursor, micro)
        batch["x"] = batch["x"] + 0.01 * float(np.random.rand()) + 0.01 * random.random()
        return batch

    def loss_fn(self, model, batch):
        return mse(model, batch)

    def after_step(self, model, step, metrics):
        self.cursor += 1
        if step == self.kill_at:
            raise Killed()
        return {"cursor": self.cursor}

    def state_dict(self):
        return {"cursor": self.cursor}

    def load_state_dict(self, state):
        self.cursor = state["cursor"]


def _cfg(out, **kw):
    return TrainConfig(out_dir=str(out), max_steps=9, lr=5e-2, grad_accum=2, warmup_steps=2, save_every=3,
                       progress=False, tensorboard=False, seed=3, **kw)


def _model():
    torch.manual_seed(11)
    return Toy(dropout=0.2)


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    full = _model()
    train(full, NoisyStage(), _cfg(tmp_path / "full"))

    interrupted = _model()
    with pytest.raises(Killed):
        train(interrupted, NoisyStage(kill_at=5), _cfg(tmp_path / "cut"))   # dies after step 5, saved at 3
    resumed = _model()                                                      # a fresh process: fresh model
    train(resumed, NoisyStage(), _cfg(tmp_path / "cut", resume=True))

    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("step_time_s", "tokens_per_s")} for r in rows]
    assert strip(read_metrics(tmp_path / "full")) == strip(read_metrics(tmp_path / "cut"))


def test_hard_kill_mid_run_then_resume_in_a_new_process(tmp_path):
    """A real kill (os._exit inside step 5, checkpoint at 4) of a separate process; the resumed process ends
    with the same weights and metrics as an uninterrupted run."""
    run_killable(str(tmp_path / "a"))
    code = "import sys; sys.path.insert(0, sys.argv[1]); from train_toy import run_killable; " \
           "run_killable(sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1')"
    run = lambda kill, resume: subprocess.run(
        [sys.executable, "-c", code, str(HERE), str(tmp_path / "b"), str(kill), resume],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run(5, "0").returncode == 137
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == [1, 2, 3, 4]   # died inside step 5
    resumed = run(-1, "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = read_metrics(tmp_path / "a")
    b = read_metrics(tmp_path / "b")
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and len(a) == 8
    wa, wb = Toy(), Toy()
    load_weights(wa, tmp_path / "a" / "checkpoint")
    load_weights(wb, tmp_path / "b" / "checkpoint")
    assert all(torch.equal(x, y) for x, y in zip(wa.state_dict().values(), wb.state_dict().values()))


def test_checkpoint_holds_no_pickles(tmp_path):
    train(Toy(), toy_stage(), TrainConfig(out_dir=str(tmp_path), max_steps=2, progress=False, tensorboard=False))
    files = sorted(p for p in (tmp_path / "checkpoint").rglob("*") if p.is_file())
    names = {p.relative_to(tmp_path / "checkpoint").as_posix() for p in files}
    assert {"model.safetensors", "trainer_state/state.json", "trainer_state/optimizer.safetensors",
            "trainer_state/optimizer.json", "trainer_state/rng.safetensors", "trainer_state/rng.json"} <= names
    for p in files:
        assert p.suffix in (".json", ".safetensors"), p
        head = p.read_bytes()[:2]
        assert head[:1] != b"\x80" and head != b"PK", f"{p} looks like a pickle / torch.save zip"
    # safetensors header is JSON after an 8-byte length
    raw = (tmp_path / "checkpoint" / "trainer_state" / "optimizer.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert "exp_avg" in json.loads(raw[8:8 + n]).__repr__()


def test_state_round_trip_keeps_int_keys_tensors_and_values(tmp_path):
    state = {"a": {0: torch.arange(3), 7: {"x": 1.5, "y": None}}, "b": [torch.ones(2, 2), "s", (1, 2)],
             "n": np.arange(4, dtype=np.int32), "scalar": torch.tensor(2.0)}
    save_state(tmp_path, "s", state)
    back = load_state(tmp_path, "s")
    assert torch.equal(back["a"][0], torch.arange(3)) and back["a"][7] == {"x": 1.5, "y": None}
    assert torch.equal(back["b"][0], torch.ones(2, 2)) and back["b"][1:] == ["s", [1, 2]]
    assert back["n"].tolist() == [0, 1, 2, 3] and back["scalar"].item() == 2.0


def test_resume_with_a_different_model_is_a_one_line_error(tmp_path):
    train(Toy(), toy_stage(), TrainConfig(out_dir=str(tmp_path), max_steps=2, progress=False, tensorboard=False))
    other = torch.nn.Linear(4, 1)
    stage = toy_stage()
    stage.loss = lambda model, b: (((model(b["x"]).squeeze(-1) - b["y"]) ** 2).mean(), {})
    with pytest.raises(CheckpointError):
        train(other, stage, TrainConfig(out_dir=str(tmp_path), max_steps=4, progress=False, tensorboard=False,
                                        resume=True))


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    result = train(Toy(), toy_stage(), TrainConfig(out_dir=str(tmp_path), max_steps=2, resume=True,
                                                   progress=False, tensorboard=False))
    assert result.step == 2 and len(read_metrics(tmp_path)) == 2
