"""A rollout batch as tensors: prompt + completion sequences, the completion-token view the loss reads, and
row selection / trimming for mini- and micro-batches.

Row layout (N = groups x G rows, prompt-major as the sampler returns them):
    input_ids      [N, L]  prompt tokens then completion tokens, right-padded with `pad_id`
    attention_mask [N, L]  1 on real tokens
    comp_index     [N, C]  position in input_ids of completion token j (0 on padding)
    targets        [N, C]  completion token ids (pad 0)
    comp_mask      [N, C]  1 on completion tokens that enter the loss (0 on padding, and on whole rows
                           dropped by overlong filtering)
    comp_len       [N]     completion lengths; seq_len [N] prompt + completion lengths
    sampler_logp   [N, C]  log-probs the engine reported while sampling
    truncated      [N]     stopped by the length limit (no stop/EOS token)
Stages add old_logp, ref_logp, advantages, rewards (and PPO: old_values, returns).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

Batch = dict[str, torch.Tensor]


def build_rollout(completions: Sequence[Any], pad_id: int = 0) -> Batch:
    """Tensors for a flat list of engine `Completion`s (prompt_token_ids, token_ids, logprobs, finish_reason)."""
    if not completions:
        raise ValueError("no completions to build a rollout batch from")
    n = len(completions)
    prompt_lens = [len(c.prompt_token_ids) for c in completions]
    comp_lens = [len(c.token_ids) for c in completions]
    if min(prompt_lens) < 1:
        raise ValueError("every completion needs a non-empty prompt (the first token is predicted from it)")
    L = max(p + c for p, c in zip(prompt_lens, comp_lens))
    C = max(max(comp_lens), 1)
    input_ids = torch.full((n, L), pad_id, dtype=torch.long)
    attention = torch.zeros((n, L), dtype=torch.long)
    comp_index = torch.zeros((n, C), dtype=torch.long)
    targets = torch.zeros((n, C), dtype=torch.long)
    comp_mask = torch.zeros((n, C), dtype=torch.float32)
    sampler_logp = torch.zeros((n, C), dtype=torch.float32)
    for i, c in enumerate(completions):
        p, k = prompt_lens[i], comp_lens[i]
        input_ids[i, :p] = torch.tensor(list(c.prompt_token_ids), dtype=torch.long)
        if k:
            input_ids[i, p:p + k] = torch.tensor(list(c.token_ids), dtype=torch.long)
            targets[i, :k] = torch.tensor(list(c.token_ids), dtype=torch.long)
            comp_index[i, :k] = torch.arange(p, p + k)
            comp_mask[i, :k] = 1.0
            if len(c.logprobs) == k:
                sampler_logp[i, :k] = torch.tensor(list(c.logprobs), dtype=torch.float32)
        attention[i, :p + k] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "comp_index": comp_index,
        "targets": targets,
        "comp_mask": comp_mask,
        "comp_len": torch.tensor(comp_lens, dtype=torch.long),
        "seq_len": torch.tensor([p + c for p, c in zip(prompt_lens, comp_lens)], dtype=torch.long),
        "sampler_logp": sampler_logp,
        "truncated": torch.tensor([c.finish_reason == "length" for c in completions], dtype=torch.bool),
    }


def select_rows(batch: Batch, rows: torch.Tensor | Sequence[int]) -> Batch:
    """The same batch restricted to `rows` (every tensor is indexed along dim 0)."""
    idx = torch.as_tensor(rows, dtype=torch.long)
    return {k: v[idx] for k, v in batch.items()}


def trim(batch: Batch) -> Batch:
    """Cut padding columns that no selected row uses (results are padding-invariant; compute is not)."""
    L = max(int(batch["seq_len"].max()), 1)
    C = max(int(batch["comp_len"].max()), 1)
    out = {}
    for k, v in batch.items():
        if v.dim() >= 2 and k in ("input_ids", "attention_mask"):
            out[k] = v[:, :L]
        elif v.dim() >= 2:
            out[k] = v[:, :C]
        else:
            out[k] = v
    return out


def split_rows(n: int, parts: int, order: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Split row indices 0..n-1 (in `order` when given) into `parts` nearly equal chunks, none empty."""
    if parts < 1 or parts > n:
        raise ValueError(f"cannot split {n} rows into {parts} parts")
    idx = order if order is not None else torch.arange(n)
    return [chunk for chunk in torch.tensor_split(idx, parts)]
