"""Completion log-probs of GRPO groups with each prompt run once (HF Llama-family causal LMs).

A GRPO batch holds G completions per prompt, and a plain forward over `prompt + completion` rows runs every
prompt G times; with short answers the prompt is half of each row. Here the prompt of a group runs once, with
gradients, into a KV cache; the cache is repeated to the group's rows and the completions attend to it, so
gradients still reach the prompt positions, summed over the group exactly as the plain forward sums them. The
output head (a 49k x 576 matrix for SmolLM2) then runs only where a completion token is predicted, not on
prompt positions and padding. Values equal the plain forward up to float summation order (tests/smol check).

Used by `r1lab.train.rl_forward.completion_logprobs` when `applies(model, batch)`: an HF model of a type in
SUPPORTED_TYPES (plain decoder + head, no logit soft-capping) and a batch where some prompt is shared.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

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
    """Whether the shared-prefix forward is available and saves work (some group has two rows or more)."""
    return supports(model) and "seq_len" in batch and len(prompt_groups(batch)) < batch["input_ids"].shape[0]


def _cache_kwarg(body: Any) -> str:
    # transformers renamed `past_key_values` to `cache` (5.2x)
    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def completion_hidden(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """h[N, C, D]: the final hidden state that predicts completion token j of each row (0 past its length)."""
    from transformers import DynamicCache

    body = model.model
    kwarg = _cache_kwarg(body)
    ids, attn, comp_len = batch["input_ids"], batch["attention_mask"], batch["comp_len"]
    N, C = batch["targets"].shape
    prompt_len = batch["seq_len"] - batch["comp_len"]
    # one embedding lookup for the batch: each lookup's backward builds a dense vocab x D gradient
    embeds = body.get_input_embeddings()(ids)  # [N, L, D]
    rows = []
    for start, stop in prompt_groups(batch):
        k, p = stop - start, int(prompt_len[start])
        width = int(comp_len[start:stop].max())  # completion tokens to predict in this group
        cache = DynamicCache(config=model.config)
        prompt_out = body(inputs_embeds=embeds[start:start + 1, :p], use_cache=True, **{kwarg: cache})
        last = prompt_out.last_hidden_state[:, -1:].expand(k, 1, -1)  # predicts completion token 0
        parts = [last]
        if width > 1:  # completion tokens 0..width-2 as inputs predict tokens 1..width-1
            cache.batch_repeat_interleave(k)
            span = slice(p, p + width - 1)
            mask = torch.cat([attn.new_ones(k, p), attn[start:stop, span]], dim=1)
            positions = torch.arange(p, p + width - 1, device=ids.device).expand(k, -1)
            out = body(inputs_embeds=embeds[start:stop, span], attention_mask=mask, position_ids=positions,
                       use_cache=True, **{kwarg: cache})
            parts.append(out.last_hidden_state)
        h = torch.cat(parts, dim=1)  # [k, width, D]
        rows.append(torch.nn.functional.pad(h, (0, 0, 0, C - h.shape[1])))
    return torch.cat(rows, dim=0)


def completion_logprobs(model: Any, batch: dict[str, torch.Tensor], temperature: float = 1.0, *,
                        with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp[N,C], entropy[N,C] or None) in fp32, the head evaluated on completion tokens only."""
    hidden = completion_hidden(model, batch)
    valid = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < batch["comp_len"][:, None]  # [N, C]
    logits = model.get_output_embeddings()(hidden[valid])  # [M, V]
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
