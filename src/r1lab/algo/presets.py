"""The objective as orthogonal switches (`ObjectiveConfig`) and named presets over them (docs/RL.md §9).

A preset is only a set of switch values; every algorithm name maps to the same `policy_loss`, so two
presets differ exactly where their configs differ (print `cfg.model_dump()` with every run).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import field_validator, model_validator

from r1lab.algo.advantages import get_advantage, list_advantages
from r1lab.algo.aggregation import get_aggregation, list_aggregations
from r1lab.config import StrictModel


class ObjectiveConfig(StrictModel):
    """Every switch of the GRPO-family / PPO objective. Defaults are the `r1` preset without KL."""

    advantage: str = "grpo"  # a registered outcome estimator ("grpo", "rloo") or "gae" (PPO with a critic)
    scale: Literal["group", "batch", "none"] = "group"  # std used by "grpo" advantages
    std_unbiased: bool = True  # Bessel-corrected std (TRL, verl)
    adv_eps: float = 1e-6  # (r - mean) / (std + adv_eps)
    eps_low: float | None = 0.2  # ratio clipped below at 1 - eps_low; None: no lower clip
    eps_high: float | None = 0.2  # ratio clipped above at 1 + eps_high (DAPO clip-higher: 0.28); None: no upper clip
    dual_clip: float | None = None  # c > 1: loss capped at -c*A where A < 0
    beta: float = 0.0  # KL coefficient; 0 means the reference model is never run
    kl: Literal["k1", "k2", "k3"] = "k3"
    kl_placement: Literal["loss", "reward"] = "loss"  # in the loss (GRPO) or subtracted from per-token rewards (PPO)
    kl_ratio_correction: bool = False  # multiply the in-loss KL by the ratio when mu > 1 (TRL use_bias_correction_kl)
    agg: str = "seq_mean"  # a registered loss aggregation
    max_len: int | None = None  # L_max of agg="constant"; None: the rollout's max_new_tokens
    mu: int = 1  # optimisation passes per rollout batch against the stored old log-probs
    overlong_filter: bool = False  # truncated completions leave the loss (DAPO)
    dynamic_sampling: bool = False  # drop zero-spread groups and sample until the batch is full (DAPO)
    max_sampling_rounds: int = 4  # generation rounds dynamic sampling may spend per step
    extra_rewards: list[str] = []  # reward functions the algorithm adds to the task's (DAPO: "overlong")
    gamma: float = 1.0  # GAE discount (PPO)
    lam: float = 1.0  # GAE lambda (PPO)
    value_clip: float | None = 0.2  # critic clip range (PPO); None: unclipped
    whiten_advantages: bool = True  # whiten GAE advantages over the batch (PPO)

    @field_validator("advantage")
    @classmethod
    def _known_advantage(cls, v: str) -> str:
        if v != "gae" and v not in list_advantages():
            raise ValueError(f"unknown advantage estimator {v!r}; known: gae, {', '.join(list_advantages())}")
        return v

    @field_validator("agg")
    @classmethod
    def _known_agg(cls, v: str) -> str:
        if v not in list_aggregations():
            raise ValueError(f"unknown loss aggregation {v!r}; known: {', '.join(list_aggregations())}")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> "ObjectiveConfig":
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {self.dual_clip}")
        if self.mu < 1 or self.max_sampling_rounds < 1:
            raise ValueError("mu and max_sampling_rounds must be >= 1")
        for name in ("eps_low", "eps_high", "beta", "adv_eps"):
            if (getattr(self, name) or 0.0) < 0:
                raise ValueError(f"{name} must be >= 0")
        return self

    @property
    def uses_critic(self) -> bool:
        return self.advantage == "gae"

    @property
    def needs_reference(self) -> bool:
        """The frozen reference model runs only when its KL enters the objective."""
        return self.beta != 0.0

    @property
    def invariant(self) -> bool:
        """Whether the loss is invariant to micro-batching / accumulation (False for local token-mean)."""
        return get_aggregation(self.agg).invariant

    def advantages(self, rewards: torch.Tensor, group_size: int) -> torch.Tensor:
        """Outcome advantages[N] for rewards[N] in consecutive groups (not for the GAE critic)."""
        if self.uses_critic:
            raise ValueError("advantage='gae' is computed per token from the critic; use r1lab.algo.gae")
        fn = get_advantage(self.advantage)
        if self.advantage == "grpo":
            return fn(rewards, group_size, scale=self.scale, eps=self.adv_eps, std_unbiased=self.std_unbiased)
        return fn(rewards, group_size)

    def loss_kwargs(self, max_len: int | None = None) -> dict[str, Any]:
        """Keyword arguments of `policy_loss` (max_len: the rollout limit, used when the config leaves it None)."""
        return dict(
            eps_low=self.eps_low,
            eps_high=self.eps_high,
            dual_clip=self.dual_clip,
            beta=self.beta if self.kl_placement == "loss" else 0.0,
            kl=self.kl,
            agg=self.agg,
            max_len=self.max_len if self.max_len is not None else max_len,
            kl_ratio_correction=self.kl_ratio_correction,
        )


_PRESETS: dict[str, dict[str, Any]] = {}
_ALIASES: dict[str, str] = {}


def register_preset(name: str, aliases: tuple[str, ...] = (), **switches: Any) -> None:
    """Add a named preset; its switches are validated now, so a bad preset fails at import."""
    if name in _PRESETS or name in _ALIASES:
        raise ValueError(f"preset {name!r} is already registered")
    ObjectiveConfig(**switches)
    _PRESETS[name] = switches
    for alias in aliases:
        _ALIASES[alias] = name


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> ObjectiveConfig:
    """A fresh ObjectiveConfig for `name` with `overrides` applied (and validated)."""
    key = _ALIASES.get(name, name)
    if key not in _PRESETS:
        raise KeyError(f"unknown objective preset {name!r}; known: {', '.join(list_presets())}")
    return ObjectiveConfig(**{**_PRESETS[key], **overrides})


# The R1 paper's GRPO: group std scaling, per-sequence mean, k3 KL in the loss with beta 0.001.
register_preset("r1", aliases=("r1_paper",), scale="group", agg="seq_mean", beta=0.001, kl="k3")
# DeepSeekMath §4: the same objective with beta 0.04.
register_preset("grpo_deepseekmath", scale="group", agg="seq_mean", beta=0.04, kl="k3")
# Dr. GRPO: no std (no difficulty weighting), constant normaliser B * L_max (no length bias), no KL.
register_preset("dr_grpo", scale="none", agg="constant", beta=0.0)
# DAPO: clip-higher, token-mean over the step batch, dynamic sampling, overlong filter + soft punishment.
register_preset(
    "dapo", scale="group", agg="token_mean", eps_low=0.2, eps_high=0.28, beta=0.0,
    dynamic_sampling=True, overlong_filter=True, extra_rewards=["overlong"],
)
# nanochat's on-policy REINFORCE with a group-mean baseline: no ratio clip, token mean, no KL.
register_preset("reinforce", scale="none", agg="token_mean", eps_low=None, eps_high=None, beta=0.0, mu=1)
# PPO with a GAE critic: k1 KL subtracted from per-token rewards, whitened advantages, clipped value loss.
register_preset(
    "ppo", advantage="gae", agg="token_mean", beta=0.001, kl="k1", kl_placement="reward",
    gamma=1.0, lam=1.0, value_clip=0.2, whiten_advantages=True,
)
# TRL GRPOConfig defaults (v0.22+): (r - mean) / (std + 1e-4) with Bessel, loss_type "dapo", beta 0.
register_preset("trl_default", scale="group", adv_eps=1e-4, std_unbiased=True, agg="token_mean", beta=0.0)
