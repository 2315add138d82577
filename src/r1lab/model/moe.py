"""DeepSeekMoE (V3 §2.1.2): shared + routed SwiGLU experts, group-limited routing, aux-loss-free balancing.

- `route(...)`: pure gating math. Scores (sigmoid or softmax, fp32) plus the balance bias choose the experts; the
  gate values come from the *unbiased* scores, are renormalised over the chosen experts and scaled by route_scale.
  Groups outside the `topk_group` best are masked with -inf (never 0: with negative biased scores a 0 fill could
  still select a masked expert — Hugging Face's router fills with 0.0, DeepSeek's reference with -inf).
- `Experts`: stacked weights `gate_up_proj [E, 2I, D]` (gate rows first) and `down_proj [E, D, I]` — the HF v5
  in-memory layout. Tokens are sorted by expert and multiplied group-wise (`linear.expert_matmul`); no token is dropped.
- Balancing: `Gate.load_counts` accumulates assignments in training mode (no host sync) until
  `Transformer.update_balance_bias(gamma)` applies `b += gamma·sign(mean(c) - c)` and zeroes them.
- `sequence_balance_loss`: V3 Eqs. 17-20 with the *realised* (bias-influenced) top-K as the indicator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model.config import ModelConfig
from r1lab.model.linear import expert_matmul, make_linear


def route(scores: torch.Tensor, bias: torch.Tensor | None, *, top_k: int, n_group: int, topk_group: int,
          route_scale: float, renormalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate values `[N,K]` and expert indices `[N,K]` from scores `[N,E]` (fp32) and a selection-only bias `[E]`."""
    choice = scores if bias is None else scores + bias
    N, E = choice.shape
    if n_group > 1:
        grouped = choice.view(N, n_group, E // n_group)
        group_scores = grouped.topk(2, dim=-1).values.sum(-1)  # [N, G]
        keep = group_scores.topk(topk_group, dim=-1).indices
        group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, keep, True)
        choice = grouped.masked_fill(~group_mask.unsqueeze(-1), float("-inf")).view(N, E)
    idx = choice.topk(top_k, dim=-1).indices
    weights = scores.gather(1, idx)
    if renormalize:
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
    return weights * route_scale, idx


def sequence_balance_loss(scores: torch.Tensor, idx: torch.Tensor, n_experts: int,
                          token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`mean_b Σ_i f_i P_i` (without α) for `scores [B,S,E]`, chosen `idx [B,S,K]`, optional `token_mask [B,S]`.

    `f_i = E/(K·T) Σ_t 1[i ∈ TopK_t]` (no gradient), `P_i = (1/T) Σ_t s_{i,t} / Σ_j s_{j,t}`; T counts valid tokens.
    """
    B, S, K = idx.shape
    mask = torch.ones(B, S, device=scores.device, dtype=scores.dtype) if token_mask is None else token_mask.to(scores.dtype)
    tokens = mask.sum(1).clamp(min=1)  # [B]
    hits = torch.zeros(B, n_experts, device=scores.device, dtype=scores.dtype)
    hits.scatter_add_(1, idx.reshape(B, S * K), mask.repeat_interleave(K, dim=1))
    f = hits * n_experts / (K * tokens.unsqueeze(1))
    probs = scores / scores.sum(-1, keepdim=True)
    P = (probs * mask.unsqueeze(-1)).sum(1) / tokens.unsqueeze(1)
    return (f.detach() * P).sum(-1).mean()


class MLP(nn.Module):
    """SwiGLU `down(silu(gate(x)) * up(x))`; the dense FFN and the shared experts."""

    def __init__(self, dim: int, hidden: int, config: ModelConfig, *, role: str, layer: int):
        super().__init__()
        self.gate_proj = make_linear(dim, hidden, config, role=f"{role}.gate_proj", layer=layer)
        self.up_proj = make_linear(dim, hidden, config, role=f"{role}.up_proj", layer=layer)
        self.down_proj = make_linear(hidden, dim, config, role=f"{role}.down_proj", layer=layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """Router: fp32 weight `[E, D]`, fp32 buffer `e_score_correction_bias [E]` (no gradient, selection only)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        E = config.n_routed_experts
        self.weight = nn.Parameter(torch.empty(E, config.dim, dtype=torch.float32))
        self.register_buffer("e_score_correction_bias", torch.zeros(E, dtype=torch.float32))
        self.register_buffer("load_counts", torch.zeros(E, dtype=torch.float32), persistent=False)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # router logits stay fp32 under bf16 autocast
            logits = F.linear(x.float(), self.weight.float())
        return logits.sigmoid() if self.config.score_func == "sigmoid" else logits.softmax(-1)

    def forward(self, x: torch.Tensor):
        """`x [N,D]` -> gate values `[N,K]` (fp32), indices `[N,K]`, scores `[N,E]` (fp32)."""
        c = self.config
        scores = self.scores(x)
        weights, idx = route(scores, self.e_score_correction_bias if c.balance_bias else None,
                             top_k=c.n_activated_experts, n_group=c.n_expert_groups, topk_group=c.n_limited_groups,
                             route_scale=c.route_scale, renormalize=c.norm_topk_prob)
        return weights, idx, scores


class Experts(nn.Module):
    """Routed experts with stacked weights; `forward` groups tokens by expert (sort + grouped GEMM + index_add)."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config, self.layer = config, layer
        E, D, I = config.n_routed_experts, config.dim, config.moe_inter_dim
        self.gate_up_proj = nn.Parameter(torch.empty(E, 2 * I, D))
        self.down_proj = nn.Parameter(torch.empty(E, D, I))

    def forward(self, x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """`x [N,D]`, gate values `[N,K]`, expert ids `[N,K]` -> `Σ_k g_k · FFN_{idx_k}(x)` `[N,D]`."""
        N, K = idx.shape
        flat = idx.reshape(-1)
        order = flat.argsort(stable=True)  # assignments sorted by expert
        token = order // K
        offsets = torch.bincount(flat, minlength=self.gate_up_proj.shape[0]).cumsum(0).to(torch.int32)
        h = expert_matmul(x[token], self.gate_up_proj, offsets, self.config, self.layer)
        g, u = h.chunk(2, dim=-1)
        y = expert_matmul(F.silu(g) * u, self.down_proj, offsets, self.config, self.layer)
        y = y * weights.reshape(-1)[order].unsqueeze(-1).to(y.dtype)
        return y.new_zeros(N, x.shape[-1]).index_add(0, token, y)


class MoE(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.config = config
        self.gate = Gate(config)
        self.experts = Experts(config, layer)
        self.shared_experts = (MLP(config.dim, config.n_shared_experts * config.moe_inter_dim, config,
                                   role="shared", layer=layer) if config.n_shared_experts else None)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None):
        """`x [B,S,D]` -> output `[B,S,D]` and the sequence balance loss (already times α; 0 when off)."""
        B, S, D = x.shape
        flat = x.reshape(-1, D)
        weights, idx, scores = self.gate(flat)
        out = self.experts(flat, weights, idx).view(B, S, D)
        if self.shared_experts is not None:
            out = out + self.shared_experts(x)
        balance = x.new_zeros((), dtype=torch.float32)
        if self.training:
            with torch.no_grad():
                mask = None if token_mask is None else token_mask.reshape(-1, 1).expand_as(idx).reshape(-1).float()
                self.gate.load_counts += torch.bincount(idx.reshape(-1), weights=mask,
                                                        minlength=self.config.n_routed_experts).float()
            if self.config.balance_alpha > 0:
                balance = self.config.balance_alpha * sequence_balance_loss(
                    scores.view(B, S, -1), idx.view(B, S, -1), self.config.n_routed_experts, token_mask)
        return out.to(x.dtype), balance


def bias_update(bias: torch.Tensor, counts: torch.Tensor, gamma: float) -> torch.Tensor:
    """Aux-loss-free rule: `b + gamma · sign(mean(c) - c)` (overloaded experts get a lower bias)."""
    return bias + gamma * torch.sign(counts.mean() - counts)


def max_violation(counts: torch.Tensor) -> torch.Tensor:
    """MaxVio = (max load - mean load) / mean load (0 for an all-zero load)."""
    mean = counts.float().mean()
    return torch.where(mean > 0, (counts.float().max() - mean) / mean.clamp(min=1e-12), torch.zeros_like(mean))
