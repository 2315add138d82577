"""World-size-independent checkpoints.

Two ways, both ending in Hugging Face safetensors:
- The loop's checkpoints (`plain_view`, `load_into_parallel`): all ranks gather full tensors (FSDP2 shards
  through `DTensor.full_tensor`, expert-parallel slices through `all_gather`), rank 0 writes the usual
  single-process layout (`save_pretrained` + trainer_state/), and on resume every rank reads it and keeps its
  own shard. Any world size, or one process, resumes any checkpoint. Costs one full copy in host memory.
- Sharded, for models too big for that (`save_sharded` / `load_sharded` / `export_hf`): torch.distributed.
  checkpoint (DCP) writes each rank's shards plus metadata; DCP reshards on load for any world size, and
  `export_hf` turns a DCP directory into a `save_pretrained` directory in one process.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from r1lab.dist.wrap import is_fsdp, unwrapped_class
from r1lab.dist.expert_parallel import ExpertParallelExperts


def _is_dtensor(t: Any) -> bool:
    return hasattr(t, "full_tensor") and hasattr(t, "device_mesh")


def _expert_params(model: nn.Module) -> dict[int, Any]:
    out = {}
    for m in model.modules():
        if isinstance(m, ExpertParallelExperts):
            out[id(m.gate_up_proj)] = m
            out[id(m.down_proj)] = m
    return out


def _gather_rows(t: torch.Tensor, owner: Any) -> torch.Tensor:
    import torch.distributed as dist  # distributed runs only

    parts = [torch.empty_like(t) for _ in range(owner.world)]
    dist.all_gather(parts, t.contiguous(), group=owner.group)
    return torch.cat(parts, 0)


def _full(t: Any, owner: Any = None) -> Any:
    """The full CPU tensor of a DTensor / expert slice / plain tensor (collective for the first two)."""
    if not isinstance(t, torch.Tensor):
        return t
    if _is_dtensor(t):
        return t.full_tensor().detach().cpu()
    if owner is not None and t.dim() > 0:
        return _gather_rows(t.detach(), owner).cpu()
    return t.detach().cpu()


def _local(full: torch.Tensor, like: torch.Tensor, owner: Any = None) -> torch.Tensor:
    """This rank's part of `full` shaped like `like` (a DTensor, an expert slice or a plain tensor)."""
    if _is_dtensor(like):
        from torch.distributed.tensor import distribute_tensor  # distributed runs only

        return distribute_tensor(full.to(like.dtype), like.device_mesh, like.placements)
    if owner is not None and full.dim() > 0:
        n = like.shape[0]
        full = full[owner.rank * n:(owner.rank + 1) * n]
    return full.to(device=like.device, dtype=like.dtype)


def _needs_plain_copy(model: nn.Module) -> bool:
    return is_fsdp(model) or bool(_expert_params(model))


@contextlib.contextmanager
def own_class(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily give a DDP-wrapped model its own class back (HF `save_pretrained` records the class name)."""
    wrapped = type(model)
    model.__class__ = unwrapped_class(model)
    try:
        yield model
    finally:
        model.__class__ = wrapped


def full_model_copy(model: nn.Module) -> nn.Module:
    """A plain CPU model of the same class and config with the full weights (all ranks call it)."""
    owners = _expert_params(model)
    full = {}
    for name, p in model.named_parameters():
        full[name] = _full(p, owners.get(id(p)))
    for name, b in model.named_buffers():
        full[name] = _full(b)
    plain = _fresh(model)
    plain.load_state_dict({k: v for k, v in full.items() if k in plain.state_dict()}, strict=False)
    return plain


def _fresh(model: nn.Module) -> nn.Module:
    """A new CPU instance of the model's own class from its config (r1lab `Transformer`, HF models)."""
    return unwrapped_class(model)(model.config)


class FullOptimizerView:
    """`state_dict()` of an optimizer with every state tensor full (index-keyed, single-process format)."""

    def __init__(self, optimizer: torch.optim.Optimizer, owners: dict[int, Any]):
        sd = optimizer.state_dict()
        params = [p for g in optimizer.param_groups for p in g["params"]]
        state = {}
        for i, p in enumerate(params):
            if i in sd["state"]:
                owner = owners.get(id(p))
                state[i] = {k: (_full(v, owner) if isinstance(v, torch.Tensor) and v.dim() > 0 else _full(v))
                            for k, v in sd["state"][i].items()}
        self._sd = {"state": state, "param_groups": sd["param_groups"]}

    def state_dict(self) -> dict:
        return self._sd


@contextlib.contextmanager
def plain_view(model: nn.Module, optimizer: torch.optim.Optimizer, extra: dict[str, nn.Module]):
    """(model, optimizer, extra modules) as a single process would hold them, for saving."""
    if not _needs_plain_copy(model) and not any(_needs_plain_copy(m) for m in extra.values()):
        with contextlib.ExitStack() as stack:
            stack.enter_context(own_class(model))
            for m in extra.values():
                stack.enter_context(own_class(m))
            yield model, optimizer, extra
        return
    owners = {**_expert_params(model)}
    for m in extra.values():
        owners.update(_expert_params(m))
    plain = full_model_copy(model)
    plain_extra = {k: full_model_copy(m) if _needs_plain_copy(m) else m for k, m in extra.items()}
    yield plain, FullOptimizerView(optimizer, owners), plain_extra


def _mirror_optimizer(optimizer: torch.optim.Optimizer, modules: list[tuple[nn.Module, nn.Module]]):
    """A plain AdamW over the plain modules' parameters, groups and order as in `optimizer`."""
    by_id = {}
    for real, plain in modules:
        pp = dict(plain.named_parameters())
        for name, p in real.named_parameters():
            by_id[id(p)] = pp[name]
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [by_id[id(p)] for p in g["params"]]}
              for g in optimizer.param_groups]
    return type(optimizer)(groups)


def load_into_parallel(load_fn: Callable[..., dict], out_dir: Path, model: nn.Module,
                       optimizer: torch.optim.Optimizer, extra: dict[str, nn.Module]) -> dict:
    """Resume a (single-process layout) checkpoint into a DDP / FSDP2 / expert-parallel model on every rank."""
    if not _needs_plain_copy(model) and not any(_needs_plain_copy(m) for m in extra.values()):
        with contextlib.ExitStack() as stack:
            stack.enter_context(own_class(model))
            for m in extra.values():
                stack.enter_context(own_class(m))
            return load_fn(out_dir, model=model, optimizer=optimizer, extra_modules=extra)
    pairs = [(model, _fresh(model))] + [(m, _fresh(m)) for m in extra.values()]
    plain_opt = _mirror_optimizer(optimizer, pairs)
    restored = load_fn(out_dir, model=pairs[0][1], optimizer=plain_opt,
                       extra_modules={k: p for k, (_, p) in zip(extra, pairs[1:])})
    owners: dict[int, Any] = {}
    with torch.no_grad():
        for real, plain in pairs:
            owners.update(_expert_params(real))
            full = plain.state_dict()
            for name, t in list(real.named_parameters()) + list(real.named_buffers()):
                if name in full:
                    t.copy_(_local(full[name], t, owners.get(id(t))))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    plain_sd = plain_opt.state_dict()
    state = {}
    for i, p in enumerate(params):
        if i in plain_sd["state"]:
            state[i] = {k: (_local(v, p, owners.get(id(p))) if isinstance(v, torch.Tensor) and v.dim() > 0 else v)
                        for k, v in plain_sd["state"][i].items()}
    optimizer.load_state_dict({"state": state, "param_groups": plain_sd["param_groups"]})
    return restored


# ----- sharded (DCP) checkpoints -----
def save_sharded(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Every rank writes its shards of model (+ optimizer) state with torch.distributed.checkpoint."""
    import torch.distributed.checkpoint as dcp  # distributed runs only
    from torch.distributed.checkpoint.state_dict import get_state_dict, get_model_state_dict  # distributed runs only

    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
    else:
        msd, osd = get_state_dict(model, optimizer)
        state = {"model": msd, "optim": osd}
    dcp.save(state, checkpoint_id=str(directory))


def load_sharded(directory: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Load a DCP checkpoint written at any world size into this (sharded or plain) model in place."""
    import torch.distributed.checkpoint as dcp  # distributed runs only
    from torch.distributed.checkpoint.state_dict import (  # distributed runs only
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
        dcp.load(state, checkpoint_id=str(directory))
        set_model_state_dict(model, state["model"])
    else:
        msd, osd = get_state_dict(model, optimizer)
        state = {"model": msd, "optim": osd}
        dcp.load(state, checkpoint_id=str(directory))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def export_hf(directory: str | Path, model: nn.Module, out_dir: str | Path) -> None:
    """Fill a plain `model` (one process, any class with `save_pretrained`) from a DCP directory and write it
    as Hugging Face safetensors (`model.save_pretrained(out_dir)`)."""
    load_sharded(directory, model)
    model.save_pretrained(str(out_dir))
