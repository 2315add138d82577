"""Process-group setup from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

`init_distributed()` is idempotent and a no-op outside torchrun, so the same entry point runs as one
process or as many. NCCL on CUDA (each process on `cuda:LOCAL_RANK`), gloo on CPU.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist

from r1lab.errors import ConfigError


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def pick_backend(backend: str = "auto") -> str:
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise ConfigError("train.dist.backend: nccl needs CUDA devices (none visible); use gloo or auto")
    return backend


def init_distributed(backend: str = "auto", timeout_s: int = 1800) -> bool:
    """Join the torchrun process group (once); True when running with more than one process.

    With NCCL the process's CUDA device is set to `cuda:LOCAL_RANK` first, so `device="auto"`/"cuda" means
    the rank's own GPU.
    """
    if is_initialized():
        return world_size() > 1
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    name = pick_backend(backend)
    if name == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(name, timeout=datetime.timedelta(seconds=timeout_s))
    return world_size() > 1


def device_for_rank(name: str = "auto") -> torch.device:
    """The training device of this rank: its own GPU under NCCL, else what `name` says."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank() if is_initialized() else torch.cuda.current_device())
    return torch.device("cpu" if name == "auto" else name)


def shutdown() -> None:
    """Leave the process group (end of a torchrun script)."""
    if is_initialized():
        dist.destroy_process_group()
