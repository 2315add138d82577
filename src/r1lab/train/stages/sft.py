"""Supervised fine-tuning: learn completions given prompts (cold start, R1 stage 3, distillation).

Data: JSONL records with `prompt` and `completion`. By default `prompt` is already rendered (it ends with
the template's prefill, as `r1lab.data.cold_start_records` and rejection sampling write it); with
`data.template` set ("r1" | "chat" | "plain"), raw problems are rendered with `r1lab.data.get_template` (a
rejection-sampling record's `problem`, so a student can learn from a teacher that used another template).
Prompt tokens are context only (label -100); the completion (+ EOS) is learned; the loss is the token mean
over the whole global batch (micro-batches weighted by their target counts).

Packing: several examples per row with positions restarting at 0, for models whose attention then stays
inside each example (HF v5 causal LMs given `position_ids`; r1lab models that declare
`supports_packed_positions`). Other models get one example per row, right-padded to the longest in the
micro-batch (`data.packing=false` forces this).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from r1lab.config import StrictModel
from r1lab.data import get_template
from r1lab.data.tokenizer import load_tokenizer
from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl
from r1lab.train.core.config import TrainConfig
from r1lab.train.core.loop import TrainResult, train
from r1lab.train.core.model_spec import ModelSpec, build_model
from r1lab.train.core.rng import seed_everything
from r1lab.train.stages.lm_loss import causal_lm_loss, supports_packed_positions
from r1lab.train.stages.packing import (
    IGNORE_INDEX,
    Example,
    collate_rows,
    epoch_order,
    global_rows,
    pack_examples,
    sft_example,
)


class SFTDataConfig(StrictModel):
    """Prompt/completion JSONL and how it becomes rows."""

    path: str | None = Field(None, description="JSONL with 'prompt' and 'completion' per line")
    template: str | None = Field(None, description="render raw prompts with this template; None: already rendered")
    max_len: int = Field(512, ge=2, description="tokens per row (longer examples are truncated)")
    batch_size: int = Field(8, ge=1, description="rows per micro-batch")
    packing: bool = Field(True, description="pack several examples per row when the model supports it")
    add_eos: bool = Field(True, description="append the tokenizer's EOS to each completion")


class SFTConfig(StrictModel):
    """SFT stage (cold start, R1 stage 3): `model.init_from` is usually the base checkpoint to fine-tune."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    tokenizer: str | None = Field(None, description="tokenizer dir/file; default: the model's own")
    data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    epochs: float = Field(2.0, gt=0, description="passes over the data when train.max_steps is unset (R1: 2)")
    train: TrainConfig = Field(default_factory=TrainConfig)


def read_sft_records(path: str | Path) -> list[dict]:
    out = []
    for n, rec in read_jsonl(path, kind="SFT data file").records:
        if not isinstance(rec.get("prompt"), str) or not isinstance(rec.get("completion"), str):
            raise DataError(f"{path}:{n}: expected string fields 'prompt' and 'completion'")
        out.append(rec)
    if not out:
        raise DataError(f"{path}: no records")
    return out


def tokenize_records(records: list[dict], tokenizer: Any, max_len: int, *, template: str | None = None,
                     add_eos: bool = True) -> list[Example]:
    tpl = None
    if template is not None:
        tpl = get_template(template)
    eos = getattr(tokenizer, "eos_token_id", None)
    out = []
    for rec in records:
        # a record from rejection sampling keeps its raw `problem` beside the teacher's rendered prompt
        prompt = tpl.render(rec.get("problem", rec["prompt"]), tokenizer) if tpl is not None else rec["prompt"]
        # chat templates write their own special tokens
        prompt_ids = tokenizer(prompt, add_special_tokens=template != "chat")["input_ids"]
        completion_ids = tokenizer(rec["completion"], add_special_tokens=False)["input_ids"]
        if add_eos and eos is not None and (not completion_ids or completion_ids[-1] != eos):
            completion_ids = completion_ids + [eos]
        out.append(sft_example(prompt_ids, completion_ids, max_len))
    return out


class SFTStage:
    """Examples visited in a seeded order per epoch, packed or padded into rows; token-mean CE."""

    def __init__(self, examples: list[Example], *, batch_size: int, grad_accum: int, seed: int, max_len: int,
                 pad_id: int, packing: bool, epochs: float = 1.0, tokenizer: Any = None):
        if not examples:
            raise DataError("SFT: no examples")
        self.examples = examples
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed
        self.max_len, self.pad_id, self.packing = max_len, pad_id, packing
        self.tokenizer = tokenizer
        self._epochs: list[list[list[int]]] = []     # rows of example indices, per epoch
        self.num_steps = max(1, math.ceil(epochs * len(self._epoch_rows(0)) / (batch_size * grad_accum)))

    def _epoch_rows(self, epoch: int) -> list[list[int]]:
        while len(self._epochs) <= epoch:
            e = len(self._epochs)
            order = epoch_order(len(self.examples), self.seed, e).tolist()
            self._epochs.append(pack_examples(self.examples, order, self.max_len) if self.packing
                                else [[i] for i in order])
        return self._epochs[epoch]

    def _row(self, index: int) -> list[int]:
        epoch = 0
        while index >= len(self._epoch_rows(epoch)):
            index -= len(self._epoch_rows(epoch))
            epoch += 1
        return self._epoch_rows(epoch)[index]

    def next_batch(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        rows = [self._row(i) for i in global_rows(step, micro, self.grad_accum, self.batch_size)]
        batch = collate_rows(self.examples, rows, self.pad_id)
        if not self.packing:
            del batch["positions"]   # one example per row: default positions 0..T-1
        return batch

    def batch_weight(self, batch: dict[str, torch.Tensor]) -> float:
        return float((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

    def loss_fn(self, model, batch: dict[str, torch.Tensor]):
        return causal_lm_loss(model, batch["input_ids"], batch["labels"], batch.get("positions"))

    def save_artifacts(self, directory: Path) -> None:
        if self.tokenizer is not None and hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(str(directory))


def prepare_sft(cfg: SFTConfig, *, records: list[dict] | None = None, model: Any = None,
                tokenizer: Any = None) -> tuple[Any, SFTStage]:
    """(model, stage) for an SFT-style run; shared by `sft` and `distill`."""
    seed_everything(cfg.train.seed)
    if records is None:  # data first: a bad file fails before a model is loaded
        if cfg.data.path is None:
            raise DataError("SFT: set data.path (a JSONL file with 'prompt' and 'completion')")
        records = read_sft_records(cfg.data.path)
    if tokenizer is None and cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
    if model is None:
        model, tokenizer = build_model(cfg.model, tokenizer)
    if tokenizer is None:
        raise DataError("SFT: no tokenizer (set 'tokenizer' or use a model directory that ships one)")
    examples = tokenize_records(records, tokenizer, cfg.data.max_len, template=cfg.data.template,
                                add_eos=cfg.data.add_eos)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    stage = SFTStage(examples, batch_size=cfg.data.batch_size, grad_accum=cfg.train.grad_accum,
                     seed=cfg.train.seed, max_len=cfg.data.max_len, pad_id=pad_id,
                     packing=cfg.data.packing and supports_packed_positions(model), epochs=cfg.epochs,
                     tokenizer=tokenizer)
    return model, stage


def sft(cfg: SFTConfig, *, records: list[dict] | None = None, model: Any = None,
        tokenizer: Any = None) -> TrainResult:
    model, stage = prepare_sft(cfg, records=records, model=model, tokenizer=tokenizer)
    return train(model, stage, cfg.train, run_config={"stage": "sft", **cfg.model_dump(mode="json")})
