"""Log-probabilities of sampled completions under a policy, for r1lab `Transformer`s and HF causal LMs alike.

The RL loss needs, per completion token, log pi(token | prompt, earlier tokens) at the *sampling temperature*
(the engine reports `log_softmax(logits / T)`, so ratios compare like with like), and optionally the entropy
of that distribution. Sequences are prompt + completion, right-padded; `comp_index[b, j]` is the position of
completion token j of row b, so logits at `comp_index - 1` predict it.
"""

from __future__ import annotations

import torch
from torch import nn

from r1lab.algo import selected_logprobs
from r1lab.model import is_r1lab_model
from r1lab.train.rl import shared_prefix


def forward_outputs(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                    hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits[B,L,V], last hidden state[B,L,D] or None) for right-padded sequences."""
    if is_r1lab_model(model):
        out = model(input_ids, key_mask=attention_mask.bool(), return_hidden=hidden)
        return out.logits, out.hidden
    out = model(input_ids=input_ids, attention_mask=attention_mask.long(), output_hidden_states=hidden,
                use_cache=False)
    return out.logits, (out.hidden_states[-1] if hidden else None)


def gather_positions(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x[B,L,...] at positions[B,C] -> [B,C,...]."""
    idx = positions.clamp(min=0)
    idx = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:])
    return x.gather(1, idx)


def completion_logprobs(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    temperature: float = 1.0,
    *,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp[B,C], entropy[B,C] or None) of `batch["targets"]` at `batch["comp_index"]`, in fp32.

    `batch` needs `input_ids [B,L]`, `attention_mask [B,L]`, `comp_index [B,C]`, `targets [B,C]`.
    HF Llama-family models run each group's shared prompt once (`r1lab.train.rl.shared_prefix`).
    """

    if shared_prefix.applies(model, batch):
        return shared_prefix.completion_logprobs(model, batch, temperature, with_entropy=with_entropy)
    logits, _ = forward_outputs(model, batch["input_ids"], batch["attention_mask"])
    pred = gather_positions(logits, batch["comp_index"] - 1)  # [B, C, V]: logits that predict each token
    return selected_logprobs(pred, batch["targets"], temperature, with_entropy=with_entropy)
