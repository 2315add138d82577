"""The RL objective as pure functions over tensors: advantages, KL estimators, the clipped policy loss,
loss aggregation, GAE + value loss, overlong filtering, dynamic sampling and named presets."""

from r1lab.algo.advantages import (
    get_advantage,
    group_advantages,
    list_advantages,
    register_advantage,
    rloo_advantages,
    zero_spread_groups,
)
from r1lab.algo.aggregation import (
    get_aggregation,
    list_aggregations,
    register_aggregation,
)
from r1lab.algo.dynamic_sampling import FillResult, fill_batch, has_reward_spread
from r1lab.algo.gae import gae, outcome_token_rewards, whiten
from r1lab.algo.kl import kl_estimate
from r1lab.algo.logprobs import selected_logprobs, token_entropy, token_logprobs
from r1lab.algo.overlong import mask_truncated
from r1lab.algo.policy_loss import policy_loss
from r1lab.algo.presets import (
    ObjectiveConfig,
    get_preset,
    list_presets,
    register_preset,
)
from r1lab.algo.value_loss import value_loss

__all__ = [
    "FillResult", "ObjectiveConfig", "fill_batch", "gae", "get_advantage",
    "get_aggregation", "get_preset", "group_advantages", "has_reward_spread", "kl_estimate",
    "list_advantages", "list_aggregations", "list_presets", "mask_truncated",
    "outcome_token_rewards", "policy_loss", "register_advantage", "register_aggregation",
    "register_preset", "rloo_advantages", "selected_logprobs", "token_entropy", "token_logprobs", "value_loss",
    "whiten",
    "zero_spread_groups",
]
