"""Wrap a model for data parallelism in place, so stages keep calling `model(...)`, `model.config`,
`isinstance(model, Transformer)` and `model.update_balance_bias(...)` unchanged.

- ddp: `torch.distributed._composable.replicate` (DDP's reducer: bucketed all-reduce overlapped with backward),
  with a *sum* communication hook. Losses are scaled by each micro-batch's share of the global batch
  (`w_i / W_global`), so the sum over ranks is the exact single-process gradient (docs/RL.md §5; no ×world
  correction). Buffers are not broadcast (MoE load counts are per rank until the bias update all-reduces them);
  parameters that a forward does not use (MTP modules in RL) are tolerated.
- fsdp: FSDP2 `fully_shard` on every decoder layer and then on the root; gradient divide factor 1 (sum), for
  the same reason.
- Expert-parallel experts hold a rank's own slice of the experts; their gradients already sum every rank's
  tokens through the all-to-all backward, so they are left out of the data-parallel reduction.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from r1lab.errors import ConfigError
from r1lab.dist.expert_parallel import ExpertParallelExperts


def _sum_allreduce_hook(process_group, bucket):
    """DDP communication hook: all-reduce SUM (DDP's default divides by the world size)."""
    group = process_group if process_group is not None else dist.group.WORLD
    fut = dist.all_reduce(bucket.buffer(), group=group, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks FSDP shards one by one: r1lab's main layers (MTP modules are entered through
    methods other than `forward`, so they stay with the root), else the first `ModuleList` named `layers`."""
    if hasattr(model, "main_layers"):
        return list(model.main_layers)
    for name, module in model.named_modules():
        if name.split(".")[-1] == "layers" and isinstance(module, nn.ModuleList):
            return list(module)
    return []


def expert_parallel_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, ExpertParallelExperts)]


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    from torch.distributed._composable import replicate  # distributed runs only

    if not any(p.requires_grad for p in module.parameters()):
        return module
    kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
    replicate(module, ignored_modules=expert_parallel_modules(module), find_unused_parameters=True,
              broadcast_buffers=False, **kwargs)
    module.register_comm_hook(None, _sum_allreduce_hook)
    return module


def wrap_fsdp(module: nn.Module, reshard_after_forward: bool = True) -> nn.Module:
    from torch.distributed.fsdp import fully_shard  # distributed runs only

    if expert_parallel_modules(module):
        raise ConfigError("train.dist: expert_parallel works with strategy ddp, not fsdp")
    if not any(p.requires_grad for p in module.parameters()):
        return module
    sharded = []
    for layer in decoder_layers(module):
        sharded.append(fully_shard(layer, reshard_after_forward=reshard_after_forward))
    sharded.append(fully_shard(module, reshard_after_forward=reshard_after_forward))
    for m in sharded:  # plain SUM reduce-scatter (gloo has no PREMUL_SUM)
        m.set_gradient_divide_factor(1.0)
        m.set_force_sum_reduction_for_comms(True)
    return module


def wrap_modules(modules: Iterable[nn.Module], strategy: str, device: torch.device,
                 reshard_after_forward: bool = True) -> None:
    for m in modules:
        if strategy == "fsdp":
            wrap_fsdp(m, reshard_after_forward)
        else:
            wrap_ddp(m, device)


def set_gradient_sync(modules: Iterable[nn.Module], enabled: bool) -> None:
    """Skip (False) or do (True) the gradient reduction of the next backward: DDP's no_sync for accumulation."""
    for m in modules:
        fn = getattr(m, "set_requires_gradient_sync", None)
        if fn is not None:
            fn(enabled)


def is_fsdp(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule  # distributed runs only

    return isinstance(module, FSDPModule)


def unwrapped_class(module: nn.Module) -> type:
    """The model's own class under the DDP/FSDP wrapper classes that `replicate`/`fully_shard` create."""
    from torch.distributed._composable.replicate import DDP  # distributed runs only
    from torch.distributed.fsdp import FSDPModule  # distributed runs only

    for cls in type(module).__mro__:
        if cls not in (DDP, FSDPModule) and not (cls.__name__.startswith(("DDP", "FSDP"))
                                                  and cls.__mro__[1] in (DDP, FSDPModule)):
            return cls
    return type(module)
