"""What the shared training loop asks of data parallelism, in one object (`None` in a single process).

The loop's accumulation already weights micro-batch i by `w_i / Σw` (token or sequence counts). Under torchrun:
- every rank builds the same global micro-batch and keeps its contiguous share of rows (`shard_batch`), unless
  the stage shards itself (`stage.shards_batches = True`, e.g. RL, whose micro-batches come from a gathered
  global rollout buffer);
- Σw is all-reduced once per step (`global_weight`) and gradients are *summed* over ranks, so each step's
  gradient, loss and metrics equal those of one process with the same global batch (docs/RL.md §5);
- DDP reduces gradients only on the last micro-batch's backward (`prepare_backward`); FSDP2 reduce-scatters each;
- metrics are gathered and combined with the loop's own rules (`reduce_metrics`);
- only rank 0 writes metrics and checkpoints; checkpoints hold full (unsharded) tensors in the single-process
  layout, so any world size (or one process) resumes them (`save_checkpoint` / `load_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from r1lab.dist import env
from r1lab.dist.collectives import all_reduce_sum, gather_objects, shard_range
from r1lab.dist.config import DistConfig
from r1lab.errors import ConfigError
from r1lab.dist.wrap import wrap_modules
from r1lab.dist.expert_parallel import apply_expert_parallel
from r1lab.dist.wrap import set_gradient_sync
from r1lab.dist.checkpoint import plain_view
from r1lab.dist.checkpoint import load_into_parallel


class DataParallel:
    def __init__(self, cfg: DistConfig):
        self.cfg = cfg
        self.strategy = "ddp" if cfg.strategy == "auto" else cfg.strategy
        self.rank, self.world = env.rank(), env.world_size()
        self.is_main = self.rank == 0
        self.modules: list[nn.Module] = []

    # ----- setup -----
    def wrap(self, model: nn.Module, extra_modules: dict[str, nn.Module] | None = None,
             device: torch.device | None = None) -> None:
        """Expert parallelism (if asked), then DDP/FSDP2 on the model and on each extra trained module."""

        device = device or next(model.parameters()).device
        if self.cfg.expert_parallel:
            if self.strategy == "fsdp":
                raise ConfigError("train.dist.expert_parallel needs train.dist.strategy ddp (not fsdp)")
            if apply_expert_parallel(model) == 0:
                raise ConfigError("train.dist.expert_parallel: the model has no r1lab MoE layers")
            model.to(device)
        self.modules = [model, *(extra_modules or {}).values()]
        wrap_modules(self.modules, self.strategy, device, self.cfg.fsdp_reshard_after_forward)

    # ----- one step -----
    def shard_batch(self, stage: Any, batch: Any) -> Any:
        """This rank's rows of a global micro-batch (tensors, or dicts/tuples of tensors with equal dim 0)."""
        if getattr(stage, "shards_batches", False):
            return batch
        n = _rows(batch)
        if n < self.world:
            raise ConfigError(f"a micro-batch of {n} rows cannot be split over {self.world} ranks; "
                              f"raise the batch size to at least {self.world}")
        r = shard_range(n, self.rank, self.world)
        return _select(batch, slice(r.start, r.stop), n)

    def global_weight(self, local: float) -> float:
        return all_reduce_sum(local)

    def prepare_backward(self, last: bool) -> None:
        """DDP: reduce gradients only on the last backward of a step; FSDP2 reduce-scatters every backward."""
        if self.strategy == "ddp":
            set_gradient_sync(self.modules, last)

    def reduce_metrics(self, per_micro: list[dict], weights: list[float],
                       aggregate: Callable[[list[dict], list[float]], dict]) -> dict:
        plain = [{k: _plain(v) for k, v in m.items()} for m in per_micro]
        pairs = gather_objects(list(zip(plain, weights)))
        return aggregate([m for m, _ in pairs], [w for _, w in pairs])

    # ----- checkpoints -----
    def save_checkpoint(self, save_fn: Callable[..., Any], out_dir: Path, *, model: nn.Module,
                        optimizer: torch.optim.Optimizer, extra_modules: dict[str, nn.Module] | None = None,
                        **kwargs) -> None:
        """All ranks gather full tensors (FSDP shards, expert slices); rank 0 writes the usual layout."""

        with plain_view(model, optimizer, extra_modules or {}) as (m, opt, extra):
            if self.is_main:
                save_fn(out_dir, model=m, optimizer=opt, extra_modules=extra, **kwargs)
        env.barrier()

    def load_checkpoint(self, load_fn: Callable[..., dict], out_dir: Path, *, model: nn.Module,
                        optimizer: torch.optim.Optimizer, extra_modules: dict[str, nn.Module] | None = None
                        ) -> dict:
        """Every rank reads the full checkpoint and keeps its own shard of it."""

        return load_into_parallel(load_fn, out_dir, model, optimizer, extra_modules or {})

    def barrier(self) -> None:
        env.barrier()


def setup_data_parallel(cfg: DistConfig | None) -> DataParallel | None:
    """Join the torchrun process group when launched by torchrun with >1 process; None otherwise."""
    cfg = cfg or DistConfig()
    if not env.init_distributed(cfg.backend, cfg.timeout_s):
        return None
    if cfg.strategy == "none":
        raise ConfigError(f"train.dist.strategy is 'none' but torchrun started {env.world_size()} processes")
    return DataParallel(cfg)


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().item()) if v.numel() == 1 else v.detach().cpu().tolist()
    return v


def _rows(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = batch.values() if isinstance(batch, dict) else batch
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    raise TypeError("cannot shard a micro-batch without tensors")


def _select(batch: Any, rows: slice, n: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[rows] if batch.dim() > 0 and batch.shape[0] == n else batch
    if isinstance(batch, dict):
        return {k: _select(v, rows, n) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_select(v, rows, n) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_select(v, rows, n) for v in batch)
    return batch
