"""`DistConfig`: how a stage runs under torchrun (embedded as `train.dist`). Without torchrun it changes nothing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from r1lab.config import StrictModel


class DistConfig(StrictModel):
    """Data parallelism (DDP or FSDP2), expert parallelism and the collective backend."""

    strategy: Literal["auto", "ddp", "fsdp", "none"] = Field(
        "auto", description="under torchrun: ddp (replicated weights), fsdp (FSDP2 fully_shard: sharded weights, "
                            "grads, optimizer state), none (refuse to run with >1 process); auto = ddp")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto: nccl on CUDA, gloo on CPU")
    expert_parallel: bool = Field(
        False, description="r1lab MoE models: place the routed experts of every MoE layer on the ranks "
                           "(E / world_size each) and dispatch tokens with all-to-all (ddp only)")
    fsdp_reshard_after_forward: bool = Field(True, description="FSDP2: free gathered weights after forward "
                                                               "(less memory, one more all-gather in backward)")
    timeout_s: int = Field(1800, ge=10, description="collective timeout in seconds")
