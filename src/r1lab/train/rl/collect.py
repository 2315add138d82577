"""Phase 1 of the RL stage: one rollout batch per cycle.

`RolloutCollector.collect(cycle)` samples `prompts_per_step` prompts x `group_size` completions with the current
policy (dynamic sampling may take several rounds), scores them with the reward library, records the old
log-probs (when the batch is reused: mu > 1 or several mini-batches) and the reference's, and computes advantages
(group-relative, or GAE with a critic). The result is a `RolloutBatch`: the tensors of `r1lab.train.rl.batch`
plus `rewards`, `advantages`, `old_logp`, `ref_logp` (and PPO's `old_values`, `returns`), and the cycle's metrics.
Phase 2 (micro-batches) and phase 3 (the loss) are in `r1lab.train.rl.stage`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from r1lab.algo import ObjectiveConfig, fill_batch, kl_estimate, mask_truncated
from r1lab.data.completion_metrics import completion_metrics, reward_metrics
from r1lab.data.thinking_metrics import correction_metrics, first_effective, length_by_difficulty
from r1lab.dist import gather_objects, shard_list
from r1lab.dist import rank as dist_rank
from r1lab.engine import SamplingParams
from r1lab.errors import R1labError
from r1lab.seeds import derive_seed
from r1lab.train.core.loop import autocast_context
from r1lab.train.core.lora import adapters_disabled
from r1lab.train.rl.batch import build_rollout, select_rows, trim
from r1lab.train.rl.forward import completion_logprobs
from r1lab.train.rl.ppo import gae_targets
from r1lab.train.rl.scoring import ScoredGroup, score_group


@dataclass
class RolloutBatch:
    """One cycle's tensors ([N, ...] rows, prompt-major) and its metrics (reward, lengths, timings, ...)."""

    tensors: dict[str, torch.Tensor]
    stats: dict[str, float]
    aha: dict | None = None  # the batch's first effective self-correction: {"prompt", "completion"}


class RolloutCollector:
    """Samples and scores rollout batches for the RL stage; `cursor` is its position in the prompt order."""

    def __init__(self, cfg: Any, obj: ObjectiveConfig, model: Any, tokenizer: Any, records: Sequence[dict], *,
                 sampler: Any, reward: Any, template: Any, reference: Any, critic: Any, pad_id: int):
        self.cfg, self.obj = cfg, obj
        self.model, self.tokenizer = model, tokenizer
        self.records = list(records)
        self.sampler, self.reward, self.template = sampler, reward, template
        self.reference, self.critic, self.pad_id = reference, critic, pad_id
        self.G = cfg.rollout.group_size
        self.steps_per_cycle = obj.mu * cfg.mini_batches
        self.cursor = 0

    def _next_records(self, k: int) -> list[dict]:
        n, out = len(self.records), []
        for _ in range(k):
            epoch, i = divmod(self.cursor, n)
            g = torch.Generator().manual_seed(derive_seed(self.cfg.data.seed, epoch))
            out.append(self.records[int(torch.randperm(n, generator=g)[i])])
            self.cursor += 1
        return out

    def _sample_round(self, cycle: int, round_index: int) -> list[ScoredGroup]:
        r = self.cfg.rollout
        records = self._next_records(r.prompts_per_step)
        # under torchrun each rank samples and scores its share of the prompts; the groups are gathered in
        # prompt order, so advantages, statistics and normalisers are those of the global batch (r1lab.dist)
        records = shard_list(records)
        prompts = [self.template.render(rec["prompt"], self.tokenizer) for rec in records]
        params = SamplingParams(n=self.G, max_new_tokens=r.max_new_tokens, temperature=r.temperature,
                                top_p=r.top_p, top_k=r.top_k, stop=list(r.stop),
                                seed=derive_seed(self.cfg.train.seed, round_index, cycle=cycle, rank=dist_rank()))
        outs = self.sampler.generate(prompts, params) if prompts else []
        return gather_objects([score_group(rec, comps, self.reward, self.template.prefill)
                               for rec, comps in zip(records, outs)])

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _per_token(self, fn: Callable[[dict], torch.Tensor], buffer: dict) -> torch.Tensor:
        """fn over the buffer in micro-batch-sized chunks, reassembled to [N, C] on CPU."""
        N, C = buffer["comp_mask"].shape
        out = torch.zeros(N, C)
        size = max(1, -(-N // (self.cfg.mini_batches * self.cfg.train.grad_accum)))
        for start in range(0, N, size):
            rows = torch.arange(start, min(N, start + size))
            part = trim(select_rows(buffer, rows))
            part = {k: v.to(self._device()) for k, v in part.items()}
            with autocast_context(self.cfg.train.precision, self._device()):  # as the policy's training forward
                vals = fn(part).float().cpu()
            out[rows, : vals.shape[1]] = vals
        return out

    def _logprobs(self, module: Any, buffer: dict) -> torch.Tensor:
        was = module.training
        module.eval()
        try:
            return self._per_token(lambda b: completion_logprobs(module, b, self.cfg.rollout.temperature)[0], buffer)
        finally:
            module.train(was)

    def _reference_logprobs(self, buffer: dict) -> torch.Tensor:
        if self.reference is self.model:  # a LoRA policy's reference is its base: the adapters off, no copy
            with adapters_disabled(self.model):
                return self._logprobs(self.model, buffer)
        self.reference.to(self._device())
        return self._logprobs(self.reference, buffer)

    def collect(self, cycle: int) -> RolloutBatch:
        """Rollout cycle `cycle`: sample, score, old / reference log-probs, advantages and statistics."""
        t0 = time.perf_counter()
        stats: dict[str, float] = {}
        was = self.model.training
        self.model.eval()
        try:
            if hasattr(self.sampler, "sync_weights"):
                self.sampler.sync_weights()
            with torch.no_grad():
                if self.obj.dynamic_sampling:
                    n = self.cfg.rollout.prompts_per_step
                    res = fill_batch(lambda i: self._sample_round(cycle, i), n, self.obj.max_sampling_rounds)
                    if not res.groups:
                        raise R1labError(f"rl: {res.describe(n)}; every group was all-correct or all-wrong "
                                         f"(make the task easier/harder or raise objective.max_sampling_rounds)")
                    groups = res.groups
                    stats.update({"dynamic_sampling/rounds": res.rounds, "dynamic_sampling/ok": float(res.ok),
                                  "dynamic_sampling/kept_fraction": len(groups) / max(res.sampled, 1)})
                else:
                    groups = self._sample_round(cycle, 0)
        finally:
            self.model.train(was)
        t_gen = time.perf_counter() - t0

        comps = [c for g in groups for c in g.completions]
        buffer = build_rollout(comps, self.pad_id)
        rewards = torch.tensor([r for g in groups for r in g.rewards], dtype=torch.float32)
        valid = buffer["comp_mask"].clone()
        if self.obj.overlong_filter:
            buffer["comp_mask"] = mask_truncated(buffer["comp_mask"], buffer["truncated"])
        buffer["rewards"] = rewards
        need_old = self.steps_per_cycle > 1 or (self.obj.uses_critic and self.obj.beta != 0)
        if need_old:
            buffer["old_logp"] = self._logprobs(self.model, buffer)
            live = valid > 0
            stats["logprob_mismatch/mean"] = float((buffer["old_logp"] - buffer["sampler_logp"])[live].abs().mean())
        if self.reference is not None:
            buffer["ref_logp"] = self._reference_logprobs(buffer)
            if self.obj.kl_placement == "reward":  # KL is not in the loss metrics then: report it here
                live = buffer["comp_mask"] > 0
                kl = kl_estimate(buffer["old_logp"], buffer["ref_logp"], "k3")
                stats["kl"] = float(kl[live].mean()) if live.any() else 0.0
        if self.critic is not None:
            was_c = self.critic.training
            self.critic.eval()
            values = self._per_token(lambda b: self.critic(b), buffer)
            self.critic.train(was_c)
            buffer.update(gae_targets(rewards, values, valid, buffer["comp_mask"], self.obj,
                                      buffer.get("old_logp"), buffer.get("ref_logp")))
        else:
            buffer["advantages"] = self.obj.advantages(rewards, self.G)
        texts = [c.text for c in comps]
        correct = None if groups[0].correct is None else [c for g in groups for c in g.correct]
        per_fn: dict[str, list] = {}
        for g in groups:
            for name, vals in g.per_function.items():
                per_fn.setdefault(name, []).extend(vals)
        stats.update(reward_metrics(rewards.tolist(), per_fn, self.G, correct))
        lengths = buffer["comp_len"].tolist()
        stats.update(completion_metrics(texts, lengths, buffer["truncated"].tolist(), correct))
        records = [g.record for g in groups for _ in g.completions]
        stats.update(length_by_difficulty(lengths, records, correct))
        aha = None
        if correct is not None:
            stats.update(correction_metrics(texts, records, correct))
            first = first_effective(texts, records, correct)
            if first is not None:
                aha = {"prompt": records[first].get("prompt"), "completion": texts[first]}
        stats["num_completions"] = float(len(comps))
        stats["time/generation_s"] = t_gen
        stats["time/rollout_s"] = time.perf_counter() - t0
        return RolloutBatch(buffer, stats, aha)
