"""The one training loop every stage (pretrain, SFT, RL, distill) runs on.

A stage is any object with two methods; the loop owns everything else (optimizer, schedule, accumulation,
clipping, autocast, seeding, checkpoints, metrics, progress bar, health alarms):

    class MyStage:
        def next_batch(self, step: int, micro: int) -> Batch: ...        # micro-batch `micro` of step `step`
        def loss_fn(self, model, batch) -> tuple[Tensor, dict[str, float]]: ...   # mean loss of the micro-batch
        # optional:
        num_steps: int                                  # used when TrainConfig.max_steps is None
        def batch_weight(self, batch) -> float          # share of the global batch (e.g. its token count)
        def after_step(self, model, step, metrics) -> dict | None   # after optimizer.step (e.g. MoE bias update)
        def should_stop(self) -> str | None             # a reason ends the stage early (after a checkpoint)
        def state_dict(self) -> Any / load_state_dict(state)        # data position, own generators
        def save_artifacts(self, directory: Path)       # tokenizer files etc. into each checkpoint
        extra_modules: dict[str, nn.Module]             # trained alongside the model (e.g. a PPO critic)

    result = train(model, stage, TrainConfig(out_dir=..., max_steps=100, lr=1e-3, grad_accum=4))

Semantics:
- Steps: `step` passed to `next_batch` is the 0-based optimizer step; logged/checkpointed steps count completed
  optimizer steps (1-based). Deterministic `next_batch(step, micro)` makes resume exact with no stage state.
- Accumulation: the step's micro-batches are fetched first; micro loss i is scaled by w_i / sum(w) with w from
  `batch_weight` (default 1), so a global token-mean or sequence-mean is independent of the micro-batch split.
- LR: peak `lr` times `schedule.lr_factor(step)` (warmup + cosine/linear/constant), set before each step.
- Clipping: the global L2 norm of all gradients is logged *before* clipping as `grad_norm`.
- Metrics: the stage's loss_fn metrics are averaged over micro-batches with the same weights (keys `num_*` are
  summed, `*_max` maxed, `*_min` minimised); the loop adds `loss`, `grad_norm`, `learning_rate`,
  `step_time_s` and `tokens_per_s` (when the stage reports `num_tokens`); `after_step` may add more,
  including lists of numbers (kept in metrics.jsonl only, e.g. per-expert load `moe/load/L1`).
- Checkpoints: every `save_every` steps and at the end, via `r1lab.train.core.checkpoint` (atomic, safetensors + JSON).
  `resume=True` restores weights, optimizer, RNG and stage state and continues; a killed run resumed this way
  ends with the same weights and metrics as an uninterrupted one on CPU.
- Health: a NaN/inf loss or gradient stops the run before the optimizer step, keeps the last checkpoint and
  raises `HealthAlarm` (an `R1labError`). Entropy collapse (`entropy` metric) and zero reward spread
  (`frac_reward_zero_std` == 1) for `alarm_patience` steps warn, or checkpoint and stop (`alarm_action`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from r1lab.dist import device_for_rank, setup_data_parallel
from r1lab.errors import Interrupted
from r1lab.host_memory import retain_freed_memory
from r1lab.train.core.checkpoint import (
    CHECKPOINT,
    checkpoint_step,
    load_checkpoint,
    save_checkpoint,
)
from r1lab.train.core.config import TrainConfig
from r1lab.train.core.health import (
    DivergenceAlarms,
    HealthAlarm,
    SoftAlarms,
    first_nonfinite,
)
from r1lab.train.core.metrics_log import MetricsLogger
from r1lab.train.core.optim import build_adamw
from r1lab.train.core.rng import seed_everything
from r1lab.train.core.schedule import lr_factor


@runtime_checkable
class Stage(Protocol):
    def next_batch(self, step: int, micro: int) -> Any: ...

    def loss_fn(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]: ...


@dataclass
class FunctionStage:
    """A stage from plain functions (handy for tests and small scripts)."""

    next_batch_fn: Callable[[int, int], Any]
    loss: Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, Any]]]
    num_steps: int | None = None
    after: Callable[[nn.Module, int, dict], dict | None] | None = None
    weight: Callable[[Any], float] | None = None

    def next_batch(self, step: int, micro: int) -> Any:
        return self.next_batch_fn(step, micro)

    def loss_fn(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.loss(model, batch)

    def after_step(self, model: nn.Module, step: int, metrics: dict) -> dict | None:
        return self.after(model, step, metrics) if self.after is not None else None

    def batch_weight(self, batch: Any) -> float:
        return self.weight(batch) if self.weight is not None else 1.0


@dataclass
class TrainResult:
    step: int                      # completed optimizer steps
    metrics: dict[str, float]      # the last step's metrics
    checkpoint: Path               # <out_dir>/checkpoint
    history: list[dict[str, float]] = field(default_factory=list)  # metrics of the steps run in this call


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def autocast_context(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_float(v: Any) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def aggregate_metrics(per_micro: list[dict[str, Any]], weights: list[float]) -> dict[str, float]:
    """Combine micro-batch metrics: weighted mean, except `num_*` (sum), `*_max` (max), `*_min` (min)."""
    out: dict[str, float] = {}
    keys = dict.fromkeys(k for m in per_micro for k in m)
    for k in keys:
        pairs = [(_as_float(m[k]), w) for m, w in zip(per_micro, weights) if k in m]
        vals = [v for v, _ in pairs]
        if k.startswith("num_"):
            out[k] = sum(vals)
        elif k.endswith("_max"):
            out[k] = max(vals)
        elif k.endswith("_min"):
            out[k] = min(vals)
        else:
            wsum = sum(w for _, w in pairs)
            out[k] = sum(v * w for v, w in pairs) / wsum if wsum else sum(vals) / len(vals)
    return out


def accumulate_gradients(model: nn.Module, stage: Any, micro_batches: list[Any], *,
                         precision: str = "fp32", device: torch.device | None = None,
                         step: int = 0, dp: Any = None) -> dict[str, float]:
    """Forward + backward every micro-batch, loss i scaled by w_i / sum(w); returns aggregated metrics.

    With `dp` (r1lab.dist.DataParallel) sum(w) and the metrics cover every rank's micro-batches.

    Raises HealthAlarm (before any further backward) when a micro-batch loss is NaN or infinite.
    """
    device = device or next(model.parameters()).device
    weight_fn = getattr(stage, "batch_weight", None)
    weights = [float(weight_fn(b)) if weight_fn is not None else 1.0 for b in micro_batches]
    total = sum(weights) if dp is None else dp.global_weight(sum(weights))
    if total <= 0:
        raise ValueError("micro-batch weights sum to zero (empty global batch)")
    per_micro = []
    for i, (batch, w) in enumerate(zip(micro_batches, weights)):
        if dp is not None:  # DDP decides at forward time whether this backward reduces gradients
            dp.prepare_backward(last=i == len(micro_batches) - 1)
        with autocast_context(precision, device):
            loss, metrics = stage.loss_fn(model, to_device(batch, device))
        value = _as_float(loss)
        if not math.isfinite(value):
            raise HealthAlarm(f"step {step + 1}: loss is {value} on micro-batch {i}")
        if loss.requires_grad:
            (loss * (w / total)).backward()
        per_micro.append({"loss": value, **metrics})
    if dp is not None:
        return dp.reduce_metrics(per_micro, weights, aggregate_metrics)
    return aggregate_metrics(per_micro, weights)


def clip_gradients(params: list[nn.Parameter], max_norm: float | None) -> float:
    """Global L2 norm of the gradients *before* clipping; clips in place when `max_norm` is set."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
        norm = norm.full_tensor()
    if max_norm is not None and math.isfinite(norm.item()):
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return float(norm.item())


def _total_steps(cfg: TrainConfig, stage: Any) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    n = getattr(stage, "num_steps", None)
    if not n:
        raise ValueError("set train.max_steps (the stage does not define num_steps)")
    return int(n)


def train(model: nn.Module, stage: Any, cfg: TrainConfig, *, run_config: dict | None = None) -> TrainResult:
    """Run `stage` on `model` for the configured number of optimizer steps; see the module docstring."""

    dp = setup_data_parallel(cfg.dist)  # None unless torchrun started several processes
    main = dp is None or dp.is_main
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device) if dp is None else device_for_rank(cfg.device)
    if device.type == "cpu":
        retain_freed_memory()  # steps reuse warm pages instead of page-faulting fresh ones (r1lab.host_memory)
    total = _total_steps(cfg, stage)
    extra: dict[str, nn.Module] = dict(getattr(stage, "extra_modules", None) or {})
    model.to(device)
    for m in extra.values():
        m.to(device)
    if dp is not None:
        dp.wrap(model, extra, device)
    optimizer = build_adamw([model, *extra.values()], cfg.lr, cfg.weight_decay, tuple(cfg.betas), cfg.eps,
                            cfg.decay_embeddings, cfg.adamw_impl)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    config_record = {"train": cfg.model_dump(mode="json"), **(run_config or {})}

    start, last_metrics, resume_step = 0, {}, None
    if cfg.resume and checkpoint_step(out_dir) is not None:
        restored = (load_checkpoint(out_dir, model=model, optimizer=optimizer, extra_modules=extra) if dp is None
                    else dp.load_checkpoint(load_checkpoint, out_dir, model=model, optimizer=optimizer,
                                            extra_modules=extra))
        start = resume_step = restored["step"]
        last_metrics = restored["metrics"]
        if restored["stage_state"] is not None and hasattr(stage, "load_state_dict"):
            stage.load_state_dict(restored["stage_state"])
        if _stop_reason(stage):
            total = start  # it had ended early: nothing left to run
    else:
        seed_everything(cfg.seed)

    logger = _NullLogger() if not main else MetricsLogger(out_dir, tensorboard=cfg.tensorboard, wandb=cfg.wandb,
                           wandb_project=cfg.wandb_project, run_config=config_record, resume_step=resume_step)
    alarms = SoftAlarms(cfg.entropy_floor, cfg.alarm_patience)
    divergence = DivergenceAlarms(cfg.divergence_window, cfg.loss_rise_factor, cfg.grad_explode_factor,
                                  vocab_size(model))
    last_saved = start if resume_step is not None else None
    history: list[dict[str, float]] = []

    def checkpoint(done_steps: int, metrics: dict[str, float]) -> None:
        nonlocal last_saved
        kwargs = dict(step=done_steps, train_config=config_record, metrics=metrics,
                      stage_state=stage.state_dict() if hasattr(stage, "state_dict") else None,
                      save_artifacts=getattr(stage, "save_artifacts", None))
        if dp is None:
            save_checkpoint(out_dir, model=model, optimizer=optimizer, extra_modules=extra, **kwargs)
        else:
            dp.save_checkpoint(save_checkpoint, out_dir, model=model, optimizer=optimizer, extra_modules=extra,
                               **kwargs)
        last_saved = done_steps

    def kept() -> str:
        if last_saved is None:
            return "no checkpoint was written yet"
        return f"last good checkpoint kept at {out_dir / CHECKPOINT} (step {last_saved})"

    bar = tqdm(total=total, initial=start, disable=not cfg.progress or not main, desc=out_dir.name, dynamic_ncols=True)
    step = start
    try:
        for step in range(start, total):
            t0 = time.perf_counter()
            lr = cfg.lr * lr_factor(step, total, cfg.warmup_steps, cfg.schedule, cfg.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = lr
            model.train()
            for m in extra.values():
                m.train()
            micro_batches = [stage.next_batch(step, i) for i in range(cfg.grad_accum)]
            if dp is not None:
                micro_batches = [dp.shard_batch(stage, b) for b in micro_batches]
            optimizer.zero_grad(set_to_none=True)
            try:
                metrics = accumulate_gradients(model, stage, micro_batches, precision=cfg.precision,
                                               device=device, step=step, dp=dp)
            except HealthAlarm as e:
                raise HealthAlarm(f"{e}; stopped, {kept()}") from None
            grad_norm = clip_gradients(params, cfg.max_grad_norm)
            if not math.isfinite(grad_norm):
                raise HealthAlarm(f"step {step + 1}: gradient norm is {grad_norm} (loss {metrics['loss']:.4g}); "
                                  f"stopped before the optimizer step, {kept()}")
            optimizer.step()
            done = step + 1
            extra_metrics = stage.after_step(model, done, metrics) if hasattr(stage, "after_step") else None
            step_time = time.perf_counter() - t0
            metrics.update(grad_norm=grad_norm, learning_rate=lr, step_time_s=step_time)
            if "num_tokens" in metrics:
                metrics["tokens_per_s"] = metrics["num_tokens"] / max(step_time, 1e-9)
            metrics.update({k: [float(x) for x in v] if isinstance(v, (list, tuple)) else _as_float(v)
                            for k, v in (extra_metrics or {}).items()})
            bad = first_nonfinite(metrics)
            if bad in ("loss", "grad_norm"):
                raise HealthAlarm(f"step {done}: {bad} is {metrics[bad]}; stopped, {kept()}")
            diverged = divergence.check(metrics)
            if diverged:
                raise HealthAlarm(f"step {done}: {diverged}; stopped, {kept()}")
            fired = alarms.check(metrics)
            history.append(metrics)
            last_metrics = metrics
            if done % cfg.log_every == 0 or done == total or fired:
                logger.log(done, metrics)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4g}", lr=f"{lr:.2e}", refresh=False)
            for message in fired if main else ():
                _record_alarm(out_dir, done, message)
                bar.write(f"warning: step {done}: {message}")
            if fired and cfg.alarm_action == "stop":
                checkpoint(done, metrics)
                raise HealthAlarm(f"step {done}: {fired[0]}; stopped, {kept()}")
            stop = _stop_reason(stage)
            if (cfg.save_every and done % cfg.save_every == 0) or done == total or stop:
                checkpoint(done, metrics)
            if stop:
                if main:
                    bar.write(f"{out_dir.name}: stopped after step {done} of {total}: {stop}")
                total = done
                break
        if last_saved != total:  # resumed a finished run, or total reached without a save
            checkpoint(total, last_metrics)
    except KeyboardInterrupt:
        raise Interrupted(f"at step {step + 1} of {total} ({kept()})") from None
    finally:
        bar.close()
        logger.close()
    return TrainResult(step=total, metrics=last_metrics, checkpoint=out_dir / CHECKPOINT, history=history)


def _stop_reason(stage: Any) -> str | None:
    should_stop = getattr(stage, "should_stop", None)
    return should_stop() if should_stop is not None else None


def vocab_size(model: nn.Module) -> int | None:
    """The output vocabulary of an r1lab or Hugging Face model (for the loss-above-chance alarm)."""
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return size if isinstance(size, int) and size > 1 else None


def _record_alarm(out_dir: Path, step: int, message: str) -> None:
    with open(out_dir / "alarms.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "alarm": message}) + "\n")


class _NullLogger:
    """Metrics sink of ranks other than 0 (rank 0 writes metrics.jsonl and TensorBoard for the whole job)."""

    def log(self, step: int, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass
