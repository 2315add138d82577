"""Scale-out on PyTorch's own distributed stack: torchrun process groups (gloo on CPU, NCCL on GPU), DDP and
FSDP2 wrapping for the shared training loop, gather/shard helpers for global batches and rollouts,
world-size-independent checkpoints (full tensors, or sharded DCP exported to HF safetensors), and MoE expert
parallelism with all-to-all. See docs/DISTRIBUTED.md."""

from r1lab.dist.collectives import all_reduce_sum, broadcast_object, gather_objects, shard_list, shard_range
from r1lab.dist.config import DistConfig
from r1lab.dist.data_parallel import DataParallel, setup_data_parallel
from r1lab.dist.env import (barrier, device_for_rank, init_distributed, is_initialized, is_main, local_rank, rank,
                            shutdown, world_size)

__all__ = ["DistConfig", "DataParallel", "setup_data_parallel", "init_distributed", "shutdown", "rank",
           "world_size", "local_rank", "is_main", "is_initialized", "barrier", "device_for_rank",
           "all_reduce_sum", "gather_objects", "broadcast_object", "shard_range", "shard_list"]
