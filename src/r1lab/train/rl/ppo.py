"""PPO with a learned critic (docs/RL.md §8): the baseline GRPO removes, kept to measure what removing it saves.

The critic is a full copy of the policy's backbone with a scalar head, trained alongside the policy (the loop's
`extra_modules`, so it shares the optimizer and is checkpointed); its parameters and AdamW state are the memory
GRPO does not spend. Advantages come from GAE over per-token rewards: the outcome score on the last token minus
`beta * k1(old, ref)` on every token when the KL sits in the reward, then whitened over the batch.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from r1lab.algo import ObjectiveConfig, gae, kl_estimate, outcome_token_rewards, whiten
from r1lab.model import is_r1lab_model
from r1lab.train.rl.forward import forward_outputs, gather_positions


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    size = getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None)
    if size is None:
        raise ValueError(f"cannot tell the hidden size of {type(model).__name__}")
    return int(size)


class ValueModel(nn.Module):
    """V(state before completion token j) for every completion token: backbone + linear head, zero-initialised
    so the first advantages are plain returns."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size(backbone), 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_policy(cls, policy: nn.Module) -> "ValueModel":
        backbone = copy.deepcopy(policy)
        for p in backbone.parameters():
            p.requires_grad_(True)
        return cls(backbone)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """values[B, C] at the positions that predict each completion token."""
        _, h = forward_outputs(self.backbone, batch["input_ids"], batch["attention_mask"], hidden=True)
        if is_r1lab_model(self.backbone):
            h = self.backbone.model.norm(h)  # r1lab returns the pre-norm state
        h = gather_positions(h, batch["comp_index"] - 1)
        return self.head(h.to(self.head.weight.dtype)).squeeze(-1).float()


def gae_targets(
    rewards: torch.Tensor,
    values: torch.Tensor,
    valid: torch.Tensor,
    loss_mask: torch.Tensor,
    obj: ObjectiveConfig,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """advantages[N,C], returns[N,C] and old_values[N,C] for outcome `rewards[N]`.

    `valid` marks every generated token (GAE runs over them); `loss_mask` the tokens that enter the loss
    (whitening statistics come from those).
    """
    kl = None
    if obj.kl_placement == "reward" and obj.beta != 0.0:
        if old_logp is None or ref_logp is None:
            raise ValueError("KL in the reward needs old and reference log-probs")
        kl = kl_estimate(old_logp, ref_logp, obj.kl)
    token_rewards = outcome_token_rewards(rewards.float(), valid, kl, obj.beta)
    adv, returns = gae(token_rewards, values.float(), valid, obj.gamma, obj.lam)
    if obj.whiten_advantages:
        adv = whiten(adv, loss_mask)
    return {"advantages": adv * loss_mask, "returns": returns, "old_values": values.float() * valid}
