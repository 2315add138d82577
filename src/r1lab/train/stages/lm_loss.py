"""Next-token loss of a causal LM — r1lab `Transformer` or a Hugging Face causal LM — over labelled tokens only.

For HF models the output head is applied only where a label exists (prompt and pad positions never reach
the vocabulary projection), which is most of the cost of a long prompt with a large vocabulary.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from r1lab.model import is_r1lab_model
from r1lab.train.stages.packing import IGNORE_INDEX


def supports_packed_positions(model: nn.Module) -> bool:
    """True when restarted `positions` in a packed row keep examples from attending to each other.

    Hugging Face v5 models derive a block-diagonal mask from restarted `position_ids` (no attention mask, no
    cache); r1lab models declare it with a `supports_packed_positions = True` attribute.
    """
    if is_r1lab_model(model):
        return bool(getattr(model, "supports_packed_positions", False))
    try:
        from transformers import PreTrainedModel  # slow import, paid where used
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PreTrainedModel) and "position_ids" in inspect.signature(model.forward).parameters


def labelled_hidden(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states `[N, D]` that predict a label, their targets `[N]`) with the HF shift by one."""
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    return hidden[:, :-1][keep], targets[keep]


def hf_forward_hidden(model: nn.Module, input_ids: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """Last hidden state after the final norm `[B, T, D]` of an HF causal LM (its decoder, without the head)."""
    decoder = model.get_decoder()
    kwargs = {"position_ids": positions} if positions is not None else {}
    return decoder(input_ids=input_ids, use_cache=False, **kwargs).last_hidden_state


def labelled_logits(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                    positions: torch.Tensor | None = None) -> torch.Tensor:
    """Logits `[N, V]` at the positions that predict a label (HF: head applied only there)."""
    if is_r1lab_model(model):
        logits = model(input_ids, positions=positions).logits
        return logits[:, :-1][labels[:, 1:] != IGNORE_INDEX]
    h, _ = labelled_hidden(hf_forward_hidden(model, input_ids, positions), labels)
    return model.get_output_embeddings()(h)


def causal_lm_loss(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                   positions: torch.Tensor | None = None, *, return_logits: bool = False):
    """Mean CE over labelled targets of the micro-batch; r1lab models add their MTP and balance terms.

    Returns (loss, metrics), or (loss, metrics, logits `[N, V]` at the labelled positions) with `return_logits`.
    """
    n_targets = (labels[:, 1:] != IGNORE_INDEX).sum()
    if is_r1lab_model(model):
        out = model(input_ids, labels=labels, positions=positions)
        metrics = {"ce_loss": out.main_loss.detach(), "mtp_loss": out.mtp_loss.detach(),
                   "balance_loss": out.balance_loss.detach(), "num_tokens": n_targets}
        if return_logits:
            return out.loss, metrics, out.logits[:, :-1][labels[:, 1:] != IGNORE_INDEX]
        return out.loss, metrics
    hidden = hf_forward_hidden(model, input_ids, positions)
    h, targets = labelled_hidden(hidden, labels)
    logits = model.get_output_embeddings()(h)
    if targets.numel():
        loss = F.cross_entropy(logits.float(), targets, reduction="sum") / targets.numel()
    else:
        loss = hidden.sum() * 0.0
    metrics = {"ce_loss": loss.detach(), "num_tokens": n_targets}
    return (loss, metrics, logits) if return_logits else (loss, metrics)
