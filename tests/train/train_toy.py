"""A tiny regression problem shared by the loop tests: deterministic data per step, dropout for RNG use."""

from __future__ import annotations

import torch
from torch import nn

from r1lab.train import FunctionStage

DIM = 4


class Toy(nn.Module):
    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(DIM, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.head(self.drop(torch.tanh(self.norm(self.proj(x))))).squeeze(-1)


def batch_for(step: int, micro: int, rows: int = 4) -> dict:
    g = torch.Generator().manual_seed(1000 * step + micro)
    x = torch.randn(rows, DIM, generator=g)
    return {"x": x, "y": x @ torch.tensor([1.0, -2.0, 0.5, 3.0])}


def mse(model, batch):
    pred = model(batch["x"])
    loss = ((pred - batch["y"]) ** 2).mean()
    return loss, {"num_tokens": batch["x"].shape[0], "pred_max": pred.max()}


def toy_stage(num_steps: int = 10, **kw) -> FunctionStage:
    return FunctionStage(batch_for, mse, num_steps=num_steps, **kw)


def run_killable(out_dir: str, kill_at: int = -1, resume: bool = False) -> None:
    """8 steps with dropout, checkpoints every 2; `os._exit(137)` right after step `kill_at` (a hard kill)."""
    import os

    from r1lab.train import TrainConfig, train

    def after(model, step, metrics):
        if step == kill_at:
            os._exit(137)

    torch.manual_seed(0)
    train(Toy(dropout=0.3), toy_stage(after=after),
          TrainConfig(out_dir=out_dir, max_steps=8, save_every=2, lr=3e-2, progress=False, tensorboard=False,
                      resume=resume))
