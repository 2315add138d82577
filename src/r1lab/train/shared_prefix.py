"""Completion log-probs of GRPO groups with each prompt run once and no padding (HF Llama-family causal LMs).

A GRPO batch holds G completions per prompt, and a plain forward over right-padded `prompt + completion` rows
runs every prompt G times and every row to the longest completion's length; with short answers half of that
work is repeated prompts and padding. Here the completions of a group are *packed* behind one copy of their
prompt, `[prompt | completion 1 | completion 2 | ...]`, with position ids restarting after the prompt for each
completion and a block mask: a completion token sees the prompt and the earlier tokens of its own completion,
nothing else. Every token then computes exactly what it computes in its own padded row, so log-probs and
gradients equal the plain forward's up to float summation order (tests/smol check); gradients of the shared
prompt positions are summed over the group, as the plain forward sums them.

The price is attention: CPU attention kernels evaluate a packed row's whole T x T score matrix, masked or not.
A row therefore takes completions only up to `pack_tokens(config)`, the length at which that dense attention
costs ATTENTION_SHARE of the row's linear layers; a longer group continues in a new row behind another copy
of its prompt (a completion longer than the budget gets a row of its own: the plain forward, unpadded).
The output head (49k x 576 for SmolLM2) runs only where a completion token is predicted.

Used by `r1lab.train.rl_forward.completion_logprobs` when `applies(model, batch)`: an HF model of a type in
SUPPORTED_TYPES (plain decoder + head, no logit soft-capping) with an attention implementation that takes a
custom 4D mask (sdpa, eager).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

SUPPORTED_TYPES = {"llama", "qwen2", "qwen3", "mistral"}
MASKABLE_ATTENTION = {"sdpa", "eager"}
ATTENTION_SHARE = 0.15  # dense attention of a packed row may cost this share of its linear layers' FLOPs


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
            and getattr(cfg, "_attn_implementation", "sdpa") in MASKABLE_ATTENTION
            and hasattr(model, "model") and hasattr(model, "get_output_embeddings"))


def applies(model: Any, batch: dict[str, torch.Tensor]) -> bool:
    return supports(model) and "seq_len" in batch and "comp_len" in batch


def pack_tokens(config: Any) -> int:
    """Longest packed row: where T x T attention reaches ATTENTION_SHARE of the linear FLOPs of T tokens."""
    d, heads = config.hidden_size, config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    linear = 2 * (d * head_dim * (2 * heads + 2 * kv_heads) + 3 * d * config.intermediate_size)  # per token
    attention = 4 * heads * head_dim  # per query-key pair: scores and weighted values
    return max(64, int(ATTENTION_SHARE * linear / attention))


@dataclass
class PackedRows:
    """Packed model inputs and where each completion token's predicting hidden state lands."""

    input_ids: torch.Tensor  # [R, T]
    position_ids: torch.Tensor  # [R, T]
    segment: torch.Tensor  # [R, T] 0 = prompt, k = k-th completion of the row, -1 = padding
    source: torch.Tensor  # [M] index into the flattened [R * T] hidden states, one per valid completion token
    valid: torch.Tensor  # [N, C] bool: completion token j of batch row n exists

    def attention_mask(self) -> torch.Tensor:
        """[R, 1, T, T] bool: causal by position, prompt keys shared, completions private; padding sees itself."""
        pos, seg = self.position_ids, self.segment
        q_pos, k_pos = pos[:, :, None], pos[:, None, :]
        q_seg, k_seg = seg[:, :, None], seg[:, None, :]
        real = (seg >= 0)[:, None, :]
        allowed = (k_pos <= q_pos) & ((k_seg == 0) | (k_seg == q_seg)) & real & (q_seg >= 0)
        allowed |= torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)[None]
        return allowed[:, None]


def pack(batch: dict[str, torch.Tensor], max_tokens: int) -> PackedRows:
    """Pack each prompt group as `[prompt | completion inputs ...]` rows of at most `max_tokens` tokens."""
    ids, targets, comp_len = batch["input_ids"], batch["targets"], batch["comp_len"].tolist()
    prompt_len = (batch["seq_len"] - batch["comp_len"]).tolist()
    N, C = targets.shape
    rows: list[tuple[list[int], list[int], list[int]]] = []  # tokens, positions, segments
    where: list[tuple[int, int]] = []  # (packed row, index) predicting each valid completion token, row-major
    for start, stop in prompt_groups(batch):
        p = prompt_len[start]
        prompt = ids[start, :p].tolist()
        row = None
        for n in range(start, stop):
            length = comp_len[n]
            inputs = targets[n, : max(length - 1, 0)].tolist()  # the last completion token is never an input
            if row is None or (len(row[0]) + len(inputs) > max_tokens and len(row[0]) > p):
                rows.append((list(prompt), list(range(p)), [0] * p))
                row = rows[-1]
            r, offset, segment = len(rows) - 1, len(row[0]), row[2][-1] + 1
            row[0].extend(inputs)
            row[1].extend(range(p, p + len(inputs)))
            row[2].extend([segment] * len(inputs))
            if length > 0:
                where.append((r, p - 1))  # the prompt's last token predicts completion token 0
                where.extend((r, offset + j) for j in range(length - 1))
    T = max(len(r[0]) for r in rows)
    input_ids = torch.zeros(len(rows), T, dtype=torch.long)
    position_ids = torch.zeros(len(rows), T, dtype=torch.long)
    segment = torch.full((len(rows), T), -1, dtype=torch.long)
    for i, (tokens, positions, segments) in enumerate(rows):
        input_ids[i, : len(tokens)] = torch.tensor(tokens)
        position_ids[i, : len(tokens)] = torch.tensor(positions)
        segment[i, : len(tokens)] = torch.tensor(segments)
    source = torch.tensor([r * T + t for r, t in where], dtype=torch.long)
    valid = torch.arange(C)[None, :] < batch["comp_len"][:, None]
    device = ids.device
    return PackedRows(input_ids.to(device), position_ids.to(device), segment.to(device), source.to(device),
                      valid.to(device))


def _mask_for(model: Any, allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """SDPA takes the boolean mask; eager attention adds the mask to its scores, so it needs 0 / -inf."""
    if getattr(model.config, "_attn_implementation", "sdpa") == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


def completion_hidden(model: Any, batch: dict[str, torch.Tensor], max_tokens: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(h[M, D], valid[N, C]): the final hidden state predicting each valid completion token, row-major."""
    packed = pack(batch, max_tokens or pack_tokens(model.config))
    body = model.model
    dtype = body.get_input_embeddings().weight.dtype
    out = body(input_ids=packed.input_ids, position_ids=packed.position_ids,
               attention_mask=_mask_for(model, packed.attention_mask(), dtype), use_cache=False)
    hidden = out.last_hidden_state.flatten(0, 1)  # [R * T, D]
    return hidden[packed.source], packed.valid


def completion_logprobs(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0, *,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp[N,C], entropy[N,C] or None) in fp32, the head evaluated on completion tokens only."""
    hidden, valid = completion_hidden(model, batch)
    logits = model.get_output_embeddings()(hidden)  # [M, V]
    logits = (logits.float() if logits.dtype != torch.float64 else logits) / (temperature if temperature > 0 else 1.0)
    log_probs = torch.log_softmax(logits, dim=-1)  # [M, V], shared by the log-probs and the entropy
    logp_valid = log_probs.gather(-1, batch["targets"][valid].unsqueeze(-1)).squeeze(-1)  # [M]
    logp = logp_valid.new_zeros(valid.shape).masked_scatter(valid, logp_valid)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            ent_valid = -(log_probs.exp() * log_probs).sum(-1)
        entropy = ent_valid.new_zeros(valid.shape).masked_scatter(valid, ent_valid)
    return logp, entropy
