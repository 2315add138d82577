"""Completion log-probs of GRPO groups with each prompt run once and no padding (HF Llama-family causal LMs).

A GRPO batch holds G completions per prompt, and a plain forward over right-padded `prompt + completion` rows
runs every prompt G times and every row to the longest completion's length; with short answers half of that
work is repeated prompts and padding. Here the completions of a group are *packed* behind one copy of their
prompt, `[prompt | completion 1 | completion 2 | ...]`, with position ids restarting after the prompt for each
completion; attention (`r1lab.train.rl.packed_attention`) lets a completion token see the prompt and the earlier
tokens of its own completion, nothing else. Every token then computes exactly what it computes in its own
padded row, so log-probs and gradients equal the plain forward's up to float summation order (tests/smol
check); gradients of the shared prompt positions are summed over the group, as the plain forward sums them.
The output head (49k x 576 for SmolLM2) runs only where a completion token is predicted.

Used by `r1lab.train.rl.forward.completion_logprobs` when `applies(model, batch)`: an HF model of a type in
SUPPORTED_TYPES (plain decoder + head, no logit soft-capping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from r1lab.algo import selected_logprobs
from r1lab.train.rl.packed_attention import RowLayout, use_packed_attention

SUPPORTED_TYPES = {"llama", "qwen2", "qwen3", "mistral"}


def prompt_groups(batch: dict[str, torch.Tensor]) -> list[tuple[int, int]]:
    """Runs [start, stop) of consecutive rows whose prompt tokens are identical."""
    ids = batch["input_ids"]
    prompt_len = (batch["seq_len"] - batch["comp_len"]).tolist()
    groups, start = [], 0
    for i in range(1, ids.shape[0] + 1):
        if i == ids.shape[0] or prompt_len[i] != prompt_len[start] \
                or not torch.equal(ids[i, : prompt_len[i]], ids[start, : prompt_len[start]]):
            groups.append((start, i))
            start = i
    return groups


def supports(model: Any) -> bool:
    cfg = getattr(model, "config", None)
    return (getattr(cfg, "model_type", None) in SUPPORTED_TYPES
            and getattr(cfg, "final_logit_softcapping", None) is None
            and hasattr(model, "model") and hasattr(model, "get_output_embeddings"))


def applies(model: Any, batch: dict[str, torch.Tensor]) -> bool:
    return supports(model) and "seq_len" in batch and "comp_len" in batch


@dataclass
class PackedRows:
    """Packed model inputs (one row per prompt group) and where each completion token's predictor lands."""

    input_ids: torch.Tensor  # [R, T]
    position_ids: torch.Tensor  # [R, T]
    rows: list[RowLayout]  # the attention structure of each packed row
    source: torch.Tensor  # [M] index into the flattened [R * T] hidden states, one per valid completion token
    valid: torch.Tensor  # [N, C] bool: completion token j of batch row n exists


def pack(batch: dict[str, torch.Tensor]) -> PackedRows:
    """One row `[prompt | completion inputs ...]` per group of consecutive rows sharing a prompt."""
    ids, targets, comp_len = batch["input_ids"], batch["targets"], batch["comp_len"].tolist()
    prompt_len = (batch["seq_len"] - batch["comp_len"]).tolist()
    device = ids.device
    rows: list[tuple[list[int], list[int]]] = []  # tokens, positions
    layouts: list[RowLayout] = []
    where: list[tuple[int, int]] = []  # (packed row, index) predicting each valid completion token, row-major
    for r, (start, stop) in enumerate(prompt_groups(batch)):
        p = prompt_len[start]
        tokens, positions, lengths = ids[start, :p].tolist(), list(range(p)), []
        for n in range(start, stop):
            inputs = targets[n, : max(comp_len[n] - 1, 0)].tolist()  # the last completion token is never an input
            if comp_len[n] > 0:
                where.append((r, p - 1))  # the prompt's last token predicts completion token 0
                where.extend((r, len(tokens) + j) for j in range(len(inputs)))
            tokens.extend(inputs)
            positions.extend(range(p, p + len(inputs)))
            lengths.append(len(inputs))
        rows.append((tokens, positions))
        layouts.append(RowLayout.build(p, lengths, device))
    T = max(len(tokens) for tokens, _ in rows)
    input_ids = torch.zeros(len(rows), T, dtype=torch.long)
    position_ids = torch.zeros(len(rows), T, dtype=torch.long)
    for i, (tokens, positions) in enumerate(rows):
        input_ids[i, : len(tokens)] = torch.tensor(tokens)
        position_ids[i, : len(tokens)] = torch.tensor(positions)
    source = torch.tensor([r * T + t for r, t in where], dtype=torch.long)
    valid = torch.arange(targets.shape[1])[None, :] < batch["comp_len"][:, None]
    return PackedRows(input_ids.to(device), position_ids.to(device), layouts, source.to(device), valid.to(device))


def completion_hidden(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(h[M, D], valid[N, C]): the final hidden state predicting each valid completion token, row-major."""
    packed = pack(batch)
    with use_packed_attention(model.config):
        out = model.model(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False,
                          packed_rows=packed.rows)
    hidden = out.last_hidden_state.flatten(0, 1)  # [R * T, D]
    return hidden[packed.source], packed.valid


def completion_logprobs(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0, *,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp[N,C], entropy[N,C] or None) in fp32, the head evaluated on completion tokens only."""
    hidden, valid = completion_hidden(model, batch)
    logits = model.get_output_embeddings()(hidden)  # [M, V]
    logp_valid, ent_valid = selected_logprobs(logits, batch["targets"][valid], temperature, with_entropy=with_entropy)
    logp = logp_valid.new_zeros(valid.shape).masked_scatter(valid, logp_valid)
    entropy = ent_valid.new_zeros(valid.shape).masked_scatter(valid, ent_valid) if with_entropy else None
    return logp, entropy
