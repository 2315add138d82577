"""MoE expert parallelism: the routed experts of every MoE layer are split over the ranks of a process group
(rank r owns experts r·E/W … (r+1)·E/W − 1) and tokens travel to their experts and back with all-to-all.

Forward of one layer on rank r (`x [N,D]` its own tokens, gate values/indices `[N,K]` from the replicated router):
1. assignments sorted by expert (hence by owning rank); `send[j]` = assignments for rank j;
2. all-to-all of the per-expert counts, then of the token vectors (`torch.distributed.nn.functional.
   all_to_all_single`, differentiable: its backward is the reverse all-to-all);
3. received rows regrouped by local expert, grouped GEMM (`model.linear.expert_matmul`, FP8 policy included);
4. results sent back by the reverse all-to-all, scaled by the gate values and summed per token (`index_add`).
Every rank must run the same number of MoE forwards (training steps do; free-running generation does not).
No token is dropped. The router, balance bias and load counts stay replicated; `update_balance_bias`
all-reduces the counts. Gloo (CPU) and NCCL both implement `all_to_all_single` with uneven splits.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.nn.functional import all_to_all_single

from r1lab.errors import ConfigError
from r1lab.model.linear import expert_matmul
from r1lab.model.moe import MoE


def _a2a(x: torch.Tensor, out_rows: list[int], in_rows: list[int], group) -> torch.Tensor:
    out = x.new_empty((sum(out_rows), *x.shape[1:]))
    return all_to_all_single(out, x.contiguous(), out_rows, in_rows, group=group)


class ExpertParallelExperts(nn.Module):
    """This rank's slice of a layer's routed experts: `gate_up_proj [E/W, 2I, D]`, `down_proj [E/W, D, I]`."""

    def __init__(self, experts: nn.Module, group=None):
        super().__init__()
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.config, self.layer = experts.config, experts.layer
        E = experts.gate_up_proj.shape[0]
        if E % self.world:
            raise ConfigError(f"expert parallelism: {E} routed experts do not split over {self.world} ranks")
        self.n_local = E // self.world
        self.n_experts = E
        rows = slice(self.rank * self.n_local, (self.rank + 1) * self.n_local)
        self.gate_up_proj = nn.Parameter(experts.gate_up_proj.detach()[rows].clone())
        self.down_proj = nn.Parameter(experts.down_proj.detach()[rows].clone())

    def forward(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """`x [N,D]`, gate values `[N,K]`, global expert ids `[N,K]` -> `Σ_k g_k · FFN_{idx_k}(x)` `[N,D]`."""

        N, K = idx.shape
        W, El = self.world, self.n_local
        flat = idx.reshape(-1)
        order = flat.argsort(stable=True)                    # assignments by expert, so by owning rank
        token = order // K
        per_expert = torch.bincount(flat, minlength=self.n_experts)            # [E]
        recv_per_expert = torch.empty_like(per_expert)
        dist.all_to_all_single(recv_per_expert, per_expert, group=self.group)  # [W*El]: source-major
        send_rows = per_expert.view(W, El).sum(1).tolist()
        recv_rows = recv_per_expert.view(W, El).sum(1).tolist()
        received = _a2a(x[token], recv_rows, send_rows, self.group)           # [M, D], by source then expert
        local_expert = torch.arange(El, device=x.device).repeat(W).repeat_interleave(recv_per_expert)
        regroup = local_expert.argsort(stable=True)                            # by local expert
        offsets = recv_per_expert.view(W, El).sum(0).cumsum(0).to(torch.int32)
        h = expert_matmul(received[regroup], self.gate_up_proj, offsets, self.config, self.layer)
        g, u = h.chunk(2, dim=-1)
        y = expert_matmul(F.silu(g) * u, self.down_proj, offsets, self.config, self.layer)
        y = y[regroup.argsort()]                                               # back to arrival order
        y = _a2a(y, send_rows, recv_rows, self.group)                          # [N*K, D] in `order`
        y = y * weights.reshape(-1)[order].unsqueeze(-1).to(y.dtype)
        return y.new_zeros(N, x.shape[-1]).index_add(0, token, y)


def apply_expert_parallel(model: nn.Module, group=None) -> int:
    """Replace every MoE layer's `experts` by this rank's `ExpertParallelExperts` slice; returns layers changed.

    Call after the weights are final on every rank (same seed or a loaded checkpoint) and before wrapping
    for data parallelism or building the optimizer.
    """

    n = 0
    for module in model.modules():
        if isinstance(module, MoE) and not isinstance(module.experts, ExpertParallelExperts):
            module.experts = ExpertParallelExperts(module.experts, group)
            n += 1
    return n


def expert_parallel_names(model: nn.Module) -> dict[str, "ExpertParallelExperts"]:
    """Parameter names of the expert-parallel slices -> their module."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, ExpertParallelExperts):
            for pname in ("gate_up_proj", "down_proj"):
                out[f"{name}.{pname}" if name else pname] = module
    return out


@torch.no_grad()
def gather_expert_parallel_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` (keyed like `model.state_dict()`: weights, gradients, ...) with every expert-parallel slice
    replaced by the full `[E, ...]` tensor, concatenated in rank order (all ranks take part; each gets it)."""
    out = dict(state)
    for key, module in expert_parallel_names(model).items():
        if key in state:
            local = state[key].detach().contiguous()
            parts = [torch.empty_like(local) for _ in range(module.world)]
            dist.all_gather(parts, local, group=module.group)
            out[key] = torch.cat(parts, 0)
    return out
