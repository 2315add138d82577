"""The RL stage: GRPO-family objectives and PPO on rollouts from the engine, scored by the reward library,
optimised by the shared training loop, in three phases:

1. rollout: `RolloutCollector.collect(cycle) -> RolloutBatch` (sample, score, old / reference log-probs,
   advantages; `r1lab.train.rl.collect`);
2. batches: `RLStage.next_batch` cuts the rollout batch into mini-batches and micro-batches, each weighted by its
   count in the aggregation's normaliser (`Aggregation.weight`);
3. loss: `RLStage.loss_fn` -> `r1lab.algo.policy_loss` (+ the critic's value loss for PPO).

One *rollout cycle* = sample `prompts_per_step` prompts x `group_size` completions with the current policy,
score them, record old (and reference) log-probs, compute advantages; then `mu` passes over the batch, each
split into `mini_batches` optimizer steps (each of `train.grad_accum` micro-batches). So optimizer steps per
cycle = mu x mini_batches; with both 1 the update is exactly on-policy (ratio == 1) and the old log-probs are
the current ones detached, so no extra forward pass is spent.

Loss normalisation over micro-batches goes through the loop's `batch_weight`: each micro-batch returns its
local loss (`policy_loss` with local normalisers) weighted by its count in the aggregation's normaliser
(tokens for token_mean, sequences for seq_mean / constant), which sums to the step batch's global loss for
any micro-batch split. Metric names follow TRL (`reward`, `rewards/<fn>/mean`, `frac_reward_zero_std`,
`clip_ratio/low_mean`, `kl`, `entropy`, `completions/mean_length`, `completions/clipped_ratio`, ...).

With `model.lora` (r1lab.train.core.lora) only peft adapters train, and the reference is the policy itself with its
adapters switched off rather than a frozen copy.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch
from pydantic import Field, model_validator

from r1lab.algo import (
    ObjectiveConfig,
    get_aggregation,
    get_preset,
    policy_loss,
    value_loss,
)
from r1lab.atomic import atomic_write_json
from r1lab.config import StrictModel
from r1lab.data import get_template, load_task
from r1lab.data.prompts import PromptDataConfig
from r1lab.data.tokenizer import load_tokenizer
from r1lab.dist import is_main, shard_range
from r1lab.engine import make_sampler
from r1lab.errors import R1labError
from r1lab.eval import evaluate
from r1lab.rewards import RewardSpec, build_reward
from r1lab.seeds import derive_seed
from r1lab.sources import load_model
from r1lab.train.core.config import TrainConfig
from r1lab.train.core.loop import TrainResult, train
from r1lab.train.core.lora import apply_lora, has_lora
from r1lab.train.core.model_spec import ModelSpec, build_model
from r1lab.train.core.moe_metrics import moe_metrics
from r1lab.train.core.rng import seed_everything
from r1lab.train.rl.batch import select_rows, split_rows, trim
from r1lab.train.rl.collect import RolloutCollector
from r1lab.train.rl.forward import completion_logprobs
from r1lab.train.rl.ppo import ValueModel


AHA_FILE = "aha.json"  # the stage's first effective self-correction, for the report


class RolloutConfig(StrictModel):
    """Sampling of one rollout cycle."""

    prompts_per_step: int = Field(16, ge=1, description="groups (prompts) per rollout batch")
    group_size: int = Field(8, ge=2, description="completions per prompt (G)")
    max_new_tokens: int = Field(64, ge=1, description="completion length limit (also L_max of agg='constant')")
    temperature: float = Field(1.0, gt=0, description="sampling temperature; log-probs are taken at it too")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    stop: list[str] = Field(default_factory=list, description="extra stop strings")
    backend: str = Field("auto", description="engine backend: auto, hf, vllm")
    max_batch_rows: int = Field(64, ge=1, description="rows decoded together by the engine")
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="engine compute dtype for HF Llama-family policies (auto: bf16 when train.precision is bf16)")


def _default_rewards() -> list[RewardSpec]:
    return [RewardSpec(name="accuracy"), RewardSpec(name="format", weight=0.5)]


class HeldOutConfig(StrictModel):
    """A held-out pass@1 curve while the stage trains (the data task's `split` problems, R1 protocol)."""

    every: int = Field(0, ge=0, description="RL steps between evaluations (and after the last); 0: none")
    size: int = Field(50, ge=1, description="held-out problems")
    n: int = Field(4, ge=1, description="samples per problem")
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int | None = Field(None, ge=1, description="None: rollout.max_new_tokens")
    split: str = Field("test", description="held-out split of the data task")
    fallbacks: list[str] | None = Field(None, description=(
        "answer extractors tried when the strict <answer> tag is missing (answer_is, last_number), for a base that "
        "states its answer in prose (None: the evaluator's default); grade as the stage's accuracy reward does"))


class RLConfig(StrictModel):
    model: ModelSpec = Field(default_factory=ModelSpec, description="policy to start from (usually init_from)")
    tokenizer: str | None = Field(None, description="tokenizer dir/file when the model dir ships none")
    reference: str | None = Field(None, description="frozen reference checkpoint (None: a copy of the start policy)")
    data: PromptDataConfig = Field(default_factory=PromptDataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    rewards: list[RewardSpec] = Field(default_factory=_default_rewards, description="summed, weighted rewards")
    preset: str = Field("r1", description="objective preset: r1, grpo_deepseekmath, dr_grpo, dapo, reinforce, ppo, trl_default")
    objective: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's switches (ObjectiveConfig)")
    mini_batches: int = Field(1, ge=1, description="optimizer steps per pass over a rollout batch")
    num_rollouts: int = Field(50, ge=1, description="rollout cycles when train.max_steps is unset")
    vf_coef: float = Field(0.5, ge=0, description="value-loss weight (PPO)")
    balance_gamma: float = Field(1e-3, ge=0, description="MoE balance-bias update speed (r1lab models)")
    held_out: HeldOutConfig = Field(default_factory=HeldOutConfig, description="held-out pass@1 during training")
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _check(self) -> "RLConfig":
        self.objective_config  # validates preset + overrides
        rows = self.rollout.prompts_per_step * self.rollout.group_size
        if rows < self.mini_batches * self.train.grad_accum:
            raise ValueError(f"{rows} rollout rows cannot fill mini_batches x train.grad_accum = "
                             f"{self.mini_batches} x {self.train.grad_accum} micro-batches")
        return self

    @property
    def objective_config(self) -> ObjectiveConfig:
        try:
            return get_preset(self.preset, **self.objective)
        except KeyError as e:
            raise ValueError(str(e).strip("'\"")) from None


class RLStage:
    """The RL stage for the shared loop: rollout cycles, micro-batches and the policy (+ value) loss."""

    shards_batches = True  # next_batch returns this rank's rows already (r1lab.dist)

    def __init__(self, cfg: RLConfig, model: Any, tokenizer: Any, records: Sequence[dict], *,
                 sampler: Any = None, reward_fns: dict[str, Callable] | None = None,
                 reference: Any = None, critic: Any = None):
        self.cfg, self.obj = cfg, cfg.objective_config
        self.model, self.tokenizer = model, tokenizer
        self.records = list(records)
        if not self.records:
            raise R1labError("rl: the task gave no prompts")
        self.G = cfg.rollout.group_size
        self.template = get_template(cfg.data.template, think_prefill=cfg.data.think_prefill)
        specs = list(cfg.rewards)
        for name in self.obj.extra_rewards:  # e.g. DAPO's soft overlong punishment
            if all(s.name != name for s in specs):
                L = cfg.rollout.max_new_tokens
                params = {"max_len": L, "cache_len": max(1, L // 5)} if name == "overlong" else {}
                specs.append(RewardSpec(name=name, params=params))
        self.reward = build_reward(specs, reward_fns)
        if sampler is None:
            sampler = make_sampler(model, tokenizer, backend=cfg.rollout.backend,
                                   max_batch_rows=cfg.rollout.max_batch_rows,
                                   compute_dtype=rollout_dtype(cfg.rollout.dtype, cfg.train.precision))
        self.sampler = sampler
        self.reference = reference if self.obj.needs_reference else None
        if self.obj.needs_reference and reference is None:
            raise ValueError("this objective needs a reference model (beta != 0)")
        if self.reference is model and not has_lora(model):
            raise ValueError("the policy can be its own reference only as a LoRA policy (adapters switched off)")
        self.critic = critic if self.obj.uses_critic else None
        if self.obj.uses_critic and critic is None:
            raise ValueError("advantage='gae' needs a critic (r1lab.train.rl.ppo.ValueModel)")
        self.extra_modules = {"critic": self.critic} if self.critic is not None else {}
        self.collector = RolloutCollector(cfg, self.obj, model, tokenizer, self.records, sampler=sampler,
                                          reward=self.reward, template=self.template, reference=self.reference,
                                          critic=self.critic, pad_id=_pad_id(model, tokenizer))
        self.steps_per_cycle = self.collector.steps_per_cycle  # mu passes x mini_batches optimizer steps
        self.num_steps = cfg.num_rollouts * self.steps_per_cycle
        self.cycle = -1
        self.buffer: dict[str, torch.Tensor] | None = None  # the current cycle's RolloutBatch tensors
        self.stats: dict[str, float] = {}

    # ----- the loop's stage protocol -----
    def next_batch(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        cycle, within = divmod(step, self.steps_per_cycle)
        if cycle != self.cycle or self.buffer is None:  # phase 1: a new rollout batch
            rollout = self.collector.collect(cycle)
            self.buffer, self.stats, self.cycle = rollout.tensors, rollout.stats, cycle
            if rollout.aha is not None:
                self._keep_first_aha(step, rollout.aha)
        n = self.buffer["comp_mask"].shape[0]
        pass_index, mini = divmod(within, self.cfg.mini_batches)
        order = None
        if self.cfg.mini_batches > 1:
            g = torch.Generator().manual_seed(derive_seed(self.cfg.train.seed, pass_index, cycle=cycle))
            order = torch.randperm(n, generator=g)
        mini_rows = split_rows(n, min(self.cfg.mini_batches, n), order)[min(mini, n - 1)]
        parts = split_rows(len(mini_rows), min(self.cfg.train.grad_accum, len(mini_rows)))
        weight = get_aggregation(self.obj.agg).weight
        weights = [weight(self.buffer["comp_mask"][mini_rows[p]]) for p in parts]
        if micro >= len(parts):  # fewer rows than micro-batches (a short dynamic-sampling batch): a no-op part
            return self._no_op_batch(mini_rows[:1])
        rows = mini_rows[parts[micro]]
        mine = shard_range(len(rows))  # this rank's rows of the micro-batch (all of them in one process)
        if not len(mine):
            return self._no_op_batch(rows[:1])
        batch = trim(select_rows(self.buffer, rows[mine.start:mine.stop]))
        batch["weight"] = torch.tensor(weight(batch["comp_mask"]) if sum(weights) > 0
                                       else len(mine) / len(rows))
        return batch

    def _keep_first_aha(self, step: int, example: dict) -> None:
        """The stage's first effective self-correction (`aha.json`), quoted in the report with its step."""
        path = Path(self.cfg.train.out_dir) / AHA_FILE
        if is_main() and not path.exists():
            atomic_write_json(path, {"step": step + 1, **example})

    def _no_op_batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """A real row with every token masked and weight 0: it runs the forward (ranks stay in step) and adds
        nothing to the loss."""
        batch = trim(select_rows(self.buffer, rows))
        batch["comp_mask"] = torch.zeros_like(batch["comp_mask"])
        batch["weight"] = torch.tensor(0.0)
        return batch

    def batch_weight(self, batch: dict) -> float:
        return float(batch["weight"])

    def loss_fn(self, model: Any, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        mask = batch["comp_mask"]
        logp, entropy = completion_logprobs(model, batch, self.cfg.rollout.temperature, with_entropy=True)
        old = batch["old_logp"] if "old_logp" in batch else logp.detach()
        ref = batch.get("ref_logp") if self.obj.kl_placement == "loss" else None
        loss, metrics = policy_loss(logp, old, batch["advantages"], mask, ref,
                                    **self.obj.loss_kwargs(max_len=self.cfg.rollout.max_new_tokens))
        n = float(mask.sum())
        metrics["entropy"] = float((entropy * mask).sum() / n) if n else 0.0
        if self.critic is not None:
            values = self.critic(batch)
            v_loss, v_metrics = value_loss(values, batch["old_values"], batch["returns"], mask,
                                           clip_eps=self.obj.value_clip, agg=self.obj.agg)
            loss = loss + self.cfg.vf_coef * v_loss
            metrics["value_loss"] = float(v_loss.detach())
            metrics["vf_clipfrac"] = v_metrics["vf_clipfrac"]
        return loss, metrics

    def after_step(self, model: Any, step: int, metrics: dict) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stats)
        out["rollout"] = float(self.cycle)
        every, last = self.cfg.held_out.every, self.cfg.train.max_steps or self.num_steps
        if every and (step % every == 0 or step == last):  # `step` counts optimizer steps done, from 1
            out.update(self.evaluate_held_out(model))
        if hasattr(model, "update_balance_bias"):
            out.update(moe_metrics(model.update_balance_bias(self.cfg.balance_gamma)))
        return out

    def evaluate_held_out(self, model: Any) -> dict[str, float]:
        """`eval/*` metrics of the current policy on the held-out problems (fixed seed: the same problems and
        sampling noise at every evaluation, so the curve moves with the policy only)."""
        h = self.cfg.held_out
        sampler = self.collector.sampler
        if hasattr(sampler, "sync_weights"):
            sampler.sync_weights()
        was = model.training
        model.eval()
        try:
            result = evaluate(model, self.cfg.data.task, n=h.n, temperature=h.temperature, top_p=h.top_p,
                              max_new_tokens=h.max_new_tokens or self.cfg.rollout.max_new_tokens,
                              template=self.template, split=h.split, size=h.size, seed=self.cfg.data.seed,
                              tokenizer=self.tokenizer, sampler=sampler, name="held-out", fallbacks=h.fallbacks)
        finally:
            model.train(was)
        overall = result["overall"]
        return {f"eval/{k}": float(overall[k]) for k in ("pass@1", "mean_length", "format_rate")
                if isinstance(overall.get(k), (int, float))}

    def state_dict(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "cursor": self.collector.cursor, "buffer": self.buffer, "stats": self.stats}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cycle, self.collector.cursor = int(state["cycle"]), int(state["cursor"])
        self.buffer, self.stats = state["buffer"], dict(state["stats"])

    def save_artifacts(self, directory) -> None:
        if self.tokenizer is not None and hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(str(directory))


def rollout_dtype(dtype: str, precision: str) -> torch.dtype | None:
    """The engine's compute dtype: sampling in bf16 when training in bf16, as mixed-precision trainers do."""
    if dtype == "bf16" or (dtype == "auto" and precision == "bf16"):
        return torch.bfloat16
    return None


def _pad_id(model: Any, tokenizer: Any) -> int:
    for source in (tokenizer, getattr(model, "config", None)):
        for name in ("pad_token_id", "eos_token_id"):
            v = getattr(source, name, None)
            if isinstance(v, int):
                return v
    return 0


def freeze(model: Any) -> Any:
    """A reference policy: gradients off, eval mode; it is never handed to the optimizer."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def frozen_copy(model: Any) -> Any:
    """A frozen deep copy of the policy as it is now (the default reference: the start of the stage)."""
    return freeze(copy.deepcopy(model))


def rl(cfg: RLConfig, *, model: Any = None, tokenizer: Any = None, records: Sequence[dict] | None = None,
       sampler: Any = None, reward_fns: dict[str, Callable] | None = None) -> TrainResult:
    """Run the RL stage per `cfg`; model / tokenizer / records / sampler / reward functions may be passed in."""
    seed_everything(cfg.train.seed)
    obj = cfg.objective_config
    if tokenizer is None and cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
    if model is None:
        model, tokenizer = build_model(cfg.model, tokenizer)
    if cfg.model.lora is not None and not has_lora(model):  # a model passed in without its adapters yet
        apply_lora(model, cfg.model.lora)
    if records is None:
        records = load_task(cfg.data.task, cfg.data.split, cfg.data.size, cfg.data.seed)
    reference = None
    if obj.needs_reference:
        if cfg.reference is not None:
            reference = freeze(load_model(cfg.reference)[0])
        elif has_lora(model):  # the base model: the policy itself with its adapters off (RLStage)
            reference = model
        else:
            reference = frozen_copy(model)
    critic = None
    if obj.uses_critic:
        critic = ValueModel.from_policy(model)
    stage = RLStage(cfg, model, tokenizer, records, sampler=sampler, reward_fns=reward_fns,
                    reference=reference, critic=critic)
    run_config = {"stage": "rl", **cfg.model_dump(mode="json"), "objective_resolved": obj.model_dump(mode="json")}
    return train(model, stage, cfg.train, run_config=run_config)
