"""`TrainConfig`: the settings of the shared loop, embedded as `train:` in every stage config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from r1lab.config import StrictModel
from r1lab.dist.config import DistConfig


class TrainConfig(StrictModel):
    """Optimizer, schedule, precision, checkpointing, logging and health alarms of one training stage."""

    out_dir: str = Field("runs/default/stage", description="stage directory: checkpoint/, metrics.jsonl, tb/")
    seed: int = Field(0, description="feeds Python, NumPy and torch generators (and the stage's data order)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; None: the stage decides (e.g. from epochs)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="decay after warmup")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final LR as a fraction of the peak")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled decay (never on norms/biases)")
    decay_embeddings: bool = Field(False, description="apply weight decay to embedding tables too")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    adamw_impl: Literal["foreach", "fused"] = Field(
        "foreach", description="torch's AdamW kernel: 'fused' is the same update to float rounding and ~6x faster "
        "on a CPU (transformers' default optimizer on torch>=2.8); 'foreach' is what the tiny recipe was tuned with")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    max_grad_norm: float | None = Field(1.0, description="clip the global grad norm to this; None: no clipping")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the forward pass")
    device: str = Field("auto", description="'auto' (cuda when available), 'cpu', 'cuda', 'cuda:1', ...")
    save_every: int = Field(0, ge=0, description="checkpoint every N optimizer steps (0: only at the end)")
    log_every: int = Field(1, ge=1, description="write metrics every N steps")
    tensorboard: bool = Field(True, description="write TensorBoard events to <out_dir>/tb")
    wandb: bool = Field(False, description="also log to Weights & Biases when it is installed")
    wandb_project: str = Field("r1lab", description="W&B project name")
    progress: bool = Field(True, description="show a progress bar with ETA")
    resume: bool = Field(False, description="continue from <out_dir>/checkpoint when it exists")
    entropy_floor: float | None = Field(0.01, description="alarm when metric 'entropy' stays below this (nats)")
    alarm_patience: int = Field(5, ge=1, description="consecutive bad steps before a soft alarm fires")
    alarm_action: Literal["warn", "stop"] = Field(
        "warn", description="soft alarms (entropy collapse, zero reward spread): warn, or stop after checkpointing")
    divergence_window: int = Field(
        20, ge=0, description="hard alarms over this many steps: loss above chance or rising far above its early "
        "value, gradient norm stuck at 0 or exploding (stop the stage); 0 switches them off")
    loss_rise_factor: float | None = Field(3.0, gt=1, description="stop when the windowed loss exceeds this x its early mean")
    grad_explode_factor: float | None = Field(
        1e4, gt=1, description="stop when the gradient norm stays above this x its early median")
    dist: DistConfig = Field(default_factory=DistConfig,
                             description="under torchrun: DDP / FSDP2, expert parallelism (docs/DISTRIBUTED.md)")
