"""Pretraining of r1lab models: next-token + MTP + sequence-wise balance loss on a packed token stream.

The model returns the three losses (`out.loss = main + mtp + balance`); after every optimizer step the
aux-loss-free balance bias is updated (`model.update_balance_bias(gamma)`) from the routing counts of the
step, and the per-layer expert load and MaxVio are logged (`moe/load/L<i>`, `moe/max_vio`, ...).
Data: documents tokenized and concatenated into one stream, cut into `seq_len` rows, visited in a seeded
permutation per epoch; the rows of step s are a pure function of s, so resume needs no data state.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from r1lab.config import StrictModel
from r1lab.data.tokenizer import load_tokenizer, train_tokenizer
from r1lab.errors import DataError
from r1lab.jsonl import read_jsonl
from r1lab.train.core.config import TrainConfig
from r1lab.train.core.loop import TrainResult, train
from r1lab.train.core.model_spec import ModelSpec, build_model
from r1lab.train.core.moe_metrics import moe_metrics
from r1lab.train.core.rng import seed_everything
from r1lab.train.stages.packing import epoch_order, global_rows, stream_rows


class CorpusConfig(StrictModel):
    """A text corpus: `.jsonl` with a `text` field per document, or `.txt` (one document per line)."""

    path: str | None = Field(None, description="corpus file (.jsonl with 'text', or .txt)")
    tokenizer: str | None = Field(None, description="tokenizer dir or tokenizer.json; None: train one on the corpus")
    vocab_size: int = Field(512, ge=300, description="size of the BPE tokenizer trained when tokenizer is None")
    seq_len: int = Field(128, ge=2, description="tokens per training row")
    batch_size: int = Field(16, ge=1, description="rows per micro-batch")


class PretrainConfig(StrictModel):
    """Pretraining stage: which model, which corpus, how long; `train:` is the shared loop's config."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    data: CorpusConfig = Field(default_factory=CorpusConfig)
    epochs: float = Field(1.0, gt=0, description="passes over the corpus when train.max_steps is unset")
    balance_gamma: float = Field(1e-3, ge=0, description="bias update speed of aux-loss-free balancing")
    train: TrainConfig = Field(default_factory=TrainConfig)


def read_documents(path: str | Path) -> list[str]:
    """Documents of a `.txt` corpus (one per non-blank line) or a `.jsonl` one (its `text` fields)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        if not path.is_file():
            raise DataError(f"{path}: corpus file not found")
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    docs = []
    for n, rec in read_jsonl(path, kind="corpus file").records:
        if not isinstance(rec.get("text"), str):
            raise DataError(f"{path}:{n}: expected a JSON object with a 'text' field")
        docs.append(rec["text"])
    return docs


def tokenize_documents(docs: list[str], tokenizer: Any) -> torch.Tensor:
    """One stream `[N]`: each document encoded with the tokenizer's special tokens, then concatenated."""
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc)["input_ids"])
    return torch.tensor(ids, dtype=torch.long)


class PretrainStage:
    """Rows of a token stream; loss from the model; balance-bias update after each step."""

    def __init__(self, rows: torch.Tensor, *, batch_size: int, grad_accum: int, seed: int,
                 balance_gamma: float = 1e-3, epochs: float = 1.0, tokenizer: Any = None):
        self.rows = rows                      # [R, T]
        self.batch_size = batch_size
        self.grad_accum = grad_accum
        self.seed = seed
        self.balance_gamma = balance_gamma
        self.tokenizer = tokenizer
        self.num_steps = max(1, math.ceil(epochs * rows.shape[0] / (batch_size * grad_accum)))
        self._orders: dict[int, torch.Tensor] = {}

    def _row(self, index: int) -> torch.Tensor:
        n = self.rows.shape[0]
        epoch, i = divmod(index, n)
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(n, self.seed, epoch)}  # keep only the current epoch
        return self.rows[self._orders[epoch][i]]

    def next_batch(self, step: int, micro: int) -> torch.Tensor:
        idx = global_rows(step, micro, self.grad_accum, self.batch_size)
        return torch.stack([self._row(i) for i in idx])   # [B, T]

    def loss_fn(self, model, input_ids: torch.Tensor):
        out = model(input_ids, labels=input_ids)
        metrics = {"ce_loss": out.main_loss.detach(), "num_tokens": input_ids.numel()}
        if out.mtp_loss is not None:
            metrics["mtp_loss"] = out.mtp_loss.detach()
        if out.balance_loss is not None:
            metrics["balance_loss"] = out.balance_loss.detach()
        return out.loss, metrics

    def after_step(self, model, step: int, metrics: dict) -> dict:
        if not hasattr(model, "update_balance_bias"):
            return {}
        return moe_metrics(model.update_balance_bias(self.balance_gamma))

    def save_artifacts(self, directory: Path) -> None:
        if self.tokenizer is not None and hasattr(self.tokenizer, "save_pretrained"):
            self.tokenizer.save_pretrained(str(directory))


def pretrain(cfg: PretrainConfig, *, tokens: torch.Tensor | None = None, tokenizer: Any = None,
             model: Any = None) -> TrainResult:
    """Pretrain per `cfg`. `tokens`/`tokenizer`/`model` may be passed in directly (tests, pipelines)."""
    seed_everything(cfg.train.seed)
    if tokenizer is None and cfg.data.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.data.tokenizer)
    saved = Path(cfg.train.out_dir) / "checkpoint"
    if tokenizer is None and cfg.train.resume and (saved / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(str(saved))  # the tokenizer trained by the interrupted run
    if tokens is None:
        if cfg.data.path is None:
            raise DataError("pretrain: set data.path (a .jsonl or .txt corpus)")
        docs = read_documents(cfg.data.path)
        if tokenizer is None:
            tokenizer = train_tokenizer(docs, vocab_size=cfg.data.vocab_size)
        tokens = tokenize_documents(docs, tokenizer)
    if model is None:
        model, tokenizer = build_model(cfg.model, tokenizer)
    stage = PretrainStage(stream_rows(tokens, cfg.data.seq_len), batch_size=cfg.data.batch_size,
                          grad_accum=cfg.train.grad_accum, seed=cfg.train.seed,
                          balance_gamma=cfg.balance_gamma, epochs=cfg.epochs, tokenizer=tokenizer)
    return train(model, stage, cfg.train, run_config={"stage": "pretrain", **cfg.model_dump(mode="json")})
