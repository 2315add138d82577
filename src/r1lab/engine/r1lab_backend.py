"""Runner for r1lab's own DeepSeek-V3 Transformer over its absorbed-MLA compressed cache.

Prompts of different lengths are batched with *right* padding in slot space: row b's prompt occupies
positions 0..len_b-1 and its pad tokens sit after it with `key_mask=False` (invisible to every query).
Decoding then writes each row at its own next position, overwriting its pad slots; RoPE positions are
therefore exactly those of the prompt generated alone, which makes mixed-length batches reproduce
single-prompt outputs. Finished rows leave the cache through `MLACache.select`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from r1lab.engine.r1lab_step import forward as step_forward
from r1lab.engine.r1lab_step import step_inputs
from r1lab.engine.sampler import Sampler
from r1lab.engine.speculative import run_chunk_speculative
from r1lab.errors import ConfigError


@dataclass
class R1labState:
    cache: Any  # r1lab.model.MLACache
    next_pos: torch.Tensor  # [B] position the row's next token is written to
    span: int  # host-side bound: every next_pos is below it (no device sync to size the attention)

    @property
    def batch_size(self) -> int:
        return self.next_pos.shape[0]


@dataclass
class Prefill:
    """Everything a prompt pass yields; speculative decoding also needs the hidden states and ids."""

    state: R1labState
    logits: torch.Tensor  # [P, V] at each prompt's last token
    hidden: torch.Tensor  # [P, S, D] last decoder layer output (MTP input)
    ids: torch.Tensor  # [P, S] right-padded prompt ids
    positions: torch.Tensor  # [P, S]
    key_mask: torch.Tensor  # [P, S] True on real tokens
    lengths: torch.Tensor  # [P]


def right_pad(prompts: list[list[int]], pad_id: int):
    """-> ids [P, S], positions [P, S], key_mask [P, S], lengths [P]"""
    lengths = torch.tensor([len(p) for p in prompts])
    S = int(lengths.max())
    ids = torch.full((len(prompts), S), pad_id, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
    positions = torch.arange(S).expand(len(prompts), S)
    return ids, positions, positions < lengths[:, None], lengths


class R1labRunner:
    def __init__(self, model: Any):
        self.model = model
        self.vocab_size = model.config.vocab_size
        self.has_mtp = model.config.mtp_depth > 0

    def refresh(self, force: bool = False) -> None:
        """The model's own forward reads its current weights; nothing is cached."""

    def _device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def prefill_full(self, prompts: list[list[int]], max_len: int) -> Prefill:
        device = self._device()
        ids, positions, key_mask, lengths = right_pad(prompts, self.model.config.pad_token_id)
        ids, positions, key_mask, lengths = ids.to(device), positions.to(device), key_mask.to(device), lengths.to(device)
        cache = self.model.new_cache(len(prompts), max_len)
        out = self.model(ids, positions=positions, cache=cache, key_mask=key_mask, return_hidden=True)
        last = (lengths - 1)[:, None, None]
        logits = out.logits.gather(1, last.expand(-1, 1, out.logits.shape[-1])).squeeze(1)  # [P, V]
        state = R1labState(cache, lengths.clone(), ids.shape[1] + 1)
        return Prefill(state, logits, out.hidden, ids, positions, key_mask, lengths)

    def prefill(self, prompts: list[list[int]], max_len: int) -> tuple[R1labState, torch.Tensor]:
        result = self.prefill_full(prompts, max_len)
        return result.state, result.logits

    def repeat(self, state: R1labState, n: int) -> R1labState:
        if n == 1:
            return state
        return R1labState(state.cache.repeat_interleave(n), state.next_pos.repeat_interleave(n), state.span)

    def select(self, state: R1labState, rows: torch.Tensor) -> R1labState:
        rows = rows.to(state.next_pos.device)
        return R1labState(state.cache.select(rows), state.next_pos[rows], state.span)

    def decode(self, state: R1labState, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B] -> next-token logits [B, V] (lean cached step, see r1lab_step)"""
        positions = state.next_pos[:, None]
        inputs = step_inputs(self.model, state.cache, positions, state.span)
        logits, _ = step_forward(self.model, tokens[:, None].to(positions.device), inputs, state.cache)
        state.next_pos = state.next_pos + 1
        state.span += 1
        return logits[:, -1]


class R1labSampler(Sampler):
    """Plain decoding, or MTP speculative decoding when the model has an MTP module (params.speculative).

    `num_drafts`: MTP drafts per verify step (the module chained for the 2nd and later ones; see speculative.py).
    Default 3: on the benchmark's tiny model (bench_generate.py) it gave 1.3x/1.45x/1.67x over plain decoding at
    T=1 for 1/2/3 drafts with a well-trained MTP module, and the same ~1.2x for all three with a weak one
    (first-draft acceptance 0.79), since at decode sizes a longer verify step costs little more.
    Statistics of the last speculative generate call: `last_acceptance` (accepted first drafts / first drafts:
    DeepSeek-V3's acceptance rate of the second-token prediction), `last_draft_stats` (all counts).
    """

    num_drafts = 3

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.last_acceptance: float | None = None
        self.last_draft_stats: dict[str, int] = {}

    def _chunk_fn(self, params):
        use_mtp = self.runner.has_mtp if params.speculative is None else params.speculative
        if use_mtp and not self.runner.has_mtp:
            raise ConfigError("SamplingParams.speculative: this model has no MTP module (mtp_depth = 0)")
        if not use_mtp:
            return super()._chunk_fn(params)

        def run(runner, prompts, indices, params, stop, on_tokens):
            completions, stats = run_chunk_speculative(runner, prompts, indices, params, stop, on_tokens,
                                                       num_drafts=self.num_drafts)
            for key, value in stats.items():
                self.last_draft_stats[key] = self.last_draft_stats.get(key, 0) + value
            return completions

        return run

    def generate(self, prompts, params=None, *, on_tokens=None):
        self.last_draft_stats = {}
        out = super().generate(prompts, params, on_tokens=on_tokens)
        drafts = self.last_draft_stats.get("drafts", 0)
        self.last_acceptance = self.last_draft_stats["accepted"] / drafts if drafts else None
        return out
